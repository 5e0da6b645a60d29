"""--align-threshold auto: the threshold comes from the mixture's own cosines (targets
against their own inputs vs other rows' inputs), with the figures that justify it."""

from __future__ import annotations

import numpy as np
import pytest

from augtool.errors import AugtoolError, OptionError
from augtool.methods.lmmixup.calibrate import alignment_cosines, calibrate_alignment
from augtool.methods.lmmixup.config import GRPOTrainConfig, parse_threshold


def topic_embed(texts: list[str]) -> np.ndarray:
    """Texts about topic k point along axis k, plus a little per-text noise."""
    rng = np.random.default_rng(0)
    out = []
    for text in texts:
        vector = np.zeros(8)
        vector[int(text.split(":")[0])] = 1.0
        vector += 0.3 * rng.standard_normal(8) * (len(text) % 3 + 1)
        out.append(vector)
    return np.array(out)


def mixture(rows: int = 6) -> tuple[list[str], list[list[str]]]:
    targets = [f"{k}:clean {k}" for k in range(rows)]
    inputs = [[f"{k}:noisy {k} a", f"{k}:noisy {k} bb", f"{k}:noisy {k} ccc"] for k in range(rows)]
    return targets, inputs


def test_own_inputs_are_closer_than_other_rows_and_the_threshold_is_their_quantile() -> None:
    targets, inputs = mixture()
    own, other = alignment_cosines(targets, inputs, topic_embed, seed=1)
    assert len(own) == len(other) == 18
    assert own.mean() > other.mean() + 0.3
    threshold, figures = calibrate_alignment(targets, inputs, topic_embed, quantile=0.5, seed=1)
    assert threshold == pytest.approx(float(np.quantile(own, 0.5)), abs=1e-4)
    assert figures["own_inputs"]["q50"] == pytest.approx(threshold, abs=1e-4)
    assert figures["own_at_or_above"] >= 0.5
    assert figures["other_at_or_above"] < figures["own_at_or_above"]
    lower, _ = calibrate_alignment(targets, inputs, topic_embed, quantile=0.25, seed=1)
    assert lower <= threshold
    # the same seed draws the same other rows
    assert calibrate_alignment(targets, inputs, topic_embed, seed=1)[1] == figures


def test_calibration_refuses_what_it_cannot_measure() -> None:
    with pytest.raises(AugtoolError, match="at least 2"):
        calibrate_alignment(["0:a"], [["0:b"]], topic_embed)
    with pytest.raises(AugtoolError, match="quantile"):
        calibrate_alignment(*mixture(), topic_embed, quantile=1.0)


def test_threshold_option_is_auto_or_a_cosine() -> None:
    assert parse_threshold("auto") is None and parse_threshold("AUTO") is None
    assert parse_threshold("0.8") == 0.8
    for bad in ("high", "0", "1.5"):
        with pytest.raises(OptionError, match="--align-threshold"):
            parse_threshold(bad)
    assert GRPOTrainConfig().fixed_threshold is None
    assert GRPOTrainConfig(align_threshold="0.7").fixed_threshold == 0.7
    with pytest.raises(OptionError, match="--align-quantile"):
        GRPOTrainConfig(align_quantile=1.0)
