"""The alignment threshold, calibrated to the encoder on the mixture itself.

The public code counts a fused sample as aligned when its BGE-M3 cosine to the reference
reaches 0.8. Cosines live on each encoder's own scale (MiniLM's are lower than BGE-M3's
for the same pair of texts), so ``--align-threshold auto`` derives the threshold from the
mixture with the encoder in use: the cosines between each clean target and its *own*
degraded inputs (what a faithful fusion should at least reach) against those between a
target and the inputs of *another* row (what an unrelated answer reaches). The threshold
is a quantile of the first distribution; both distributions, and how many of each side
clear the threshold, go into the run's meta.json.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from augtool.errors import AugtoolError

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _summary(values: np.ndarray) -> dict[str, Any]:
    return {
        "n": int(len(values)),
        "mean": round(float(values.mean()), 4),
        **{f"q{round(q * 100):02d}": round(float(np.quantile(values, q)), 4) for q in QUANTILES},
    }


def alignment_cosines(
    targets: Sequence[str],
    inputs: Sequence[Sequence[str]],
    embed: Callable[[list[str]], Any],
    *,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(own, other)`` cosines: every target against each of its own inputs, and against
    one input of a seeded random other row per own input. Needs two rows at least."""
    if len(targets) != len(inputs):
        raise AugtoolError(f"{len(targets)} targets for {len(inputs)} input groups")
    if len(targets) < 2:
        raise AugtoolError("alignment calibration needs at least 2 mixture rows")
    index: dict[str, int] = {}
    for text in [*targets, *(t for group in inputs for t in group)]:
        index.setdefault(text, len(index))
    vectors = np.asarray(embed(list(index)), dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rng = random.Random(seed)
    own, other = [], []
    for row, (target, group) in enumerate(zip(targets, inputs, strict=True)):
        t = vectors[index[target]]
        for text in group:
            own.append(float(t @ vectors[index[text]]))
            pick = rng.randrange(len(targets) - 1)
            pick += pick >= row
            foreign = inputs[pick]
            if foreign:
                other.append(float(t @ vectors[index[rng.choice(list(foreign))]]))
    if not own or not other:
        raise AugtoolError("alignment calibration: the mixture rows have no inputs")
    return np.array(own), np.array(other)


def calibrate_alignment(
    targets: Sequence[str],
    inputs: Sequence[Sequence[str]],
    embed: Callable[[list[str]], Any],
    *,
    quantile: float = 0.5,
    seed: int = 0,
) -> tuple[float, dict[str, Any]]:
    """The threshold (the ``quantile`` of the own-input cosines) and the figures that
    justify it: both distributions and the share of each at or above the threshold."""
    if not 0 < quantile < 1:
        raise AugtoolError(f"quantile must be in (0, 1), got {quantile}")
    own, other = alignment_cosines(targets, inputs, embed, seed=seed)
    threshold = round(float(np.quantile(own, quantile)), 4)
    figures = {
        "source": "auto",
        "threshold": threshold,
        "quantile": quantile,
        "own_inputs": _summary(own),
        "other_rows": _summary(other),
        "own_at_or_above": round(float((own >= threshold).mean()), 4),
        "other_at_or_above": round(float((other >= threshold).mean()), 4),
    }
    return threshold, figures
