"""The offline label-fidelity judge: out-of-fold predictions plus cleanlab (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cleanlab")
pytest.importorskip("sklearn")

from augtool.audit.fidelity import (  # noqa: E402
    fidelity_figures,
    hard_label,
    lambda_bin,
    oof_label_issues,
)
from augtool.errors import AugtoolError  # noqa: E402

LABELS = ["a", "b", "c", "d"]


def clusters(
    n_ref: int = 400, n_aug: int = 400, dims: int = 32, spread: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, list[str], np.ndarray, list[str], np.ndarray]:
    """Gaussian clusters per label; 10% of the augmented labels moved to another label."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(LABELS), dims)) * spread
    y_ref, y_aug = rng.integers(4, size=n_ref), rng.integers(4, size=n_aug)
    x_ref = centres[y_ref] + rng.normal(size=(n_ref, dims))
    x_aug = centres[y_aug] + rng.normal(size=(n_aug, dims))
    flipped = np.zeros(n_aug, dtype=bool)
    flipped[rng.choice(n_aug, size=n_aug // 10, replace=False)] = True
    given = y_aug.copy()
    given[flipped] = (y_aug[flipped] + rng.integers(1, 4, size=int(flipped.sum()))) % 4
    return (
        x_ref,
        [LABELS[i] for i in y_ref],
        x_aug,
        [LABELS[i] for i in given],
        flipped,
    )


def test_flipped_labels_are_found_with_few_false_alarms() -> None:
    x_ref, y_ref, x_aug, given, flipped = clusters()
    ids = [f"aug-{i}" for i in range(len(given))]
    result = oof_label_issues(x_ref, y_ref, ids, x_aug, given, seed=0)
    issue = np.array([row.issue for row in result.rows])
    assert issue[flipped].mean() >= 0.8
    assert issue[~flipped].mean() <= 0.1
    assert result.figures["rows"] == 400
    assert result.figures["issues"] == int(issue.sum())
    assert result.figures["rate"] == pytest.approx(issue.mean(), abs=1e-6)
    assert [f["id"] for f in result.flagged] == [r.id for r in result.rows if r.issue]
    assert {f["kind"] for f in result.flagged} == {"label"}
    row = result.rows[0]
    assert row.id == "aug-0" and row.label == given[0] and row.predicted in LABELS
    assert 0.0 <= row.self_confidence <= 1.0
    json.dumps(result.to_dict())  # JSON-serialisable
    again = oof_label_issues(x_ref, y_ref, ids, x_aug, given, seed=0)
    assert again.to_dict() == result.to_dict()  # seeded


def test_labels_the_reference_lacks_are_an_error() -> None:
    x_ref, y_ref, x_aug, given, _ = clusters(n_ref=40, n_aug=4)
    given = ["a", "zeta", {"omega": 0.9, "a": 0.1}, "b"]
    with pytest.raises(AugtoolError, match="reference lacks: omega, zeta"):
        oof_label_issues(x_ref, y_ref, ["1", "2", "3", "4"], x_aug, given)


def test_soft_labels_are_audited_by_their_argmax() -> None:
    assert hard_label({"a": 0.3, "b": 0.7}) == "b"
    assert hard_label({"b": 0.5, "a": 0.5}) == "a"  # ties: first in sorted order
    assert hard_label("c") == "c"
    x_ref, y_ref, x_aug, given, flipped = clusters(n_aug=200)
    soft = [{label: 0.7, LABELS[(LABELS.index(label) + 1) % 4]: 0.3} for label in given]
    ids = [str(i) for i in range(len(soft))]
    by_soft = oof_label_issues(x_ref, y_ref, ids, x_aug, soft)
    by_hard = oof_label_issues(x_ref, y_ref, ids, x_aug, given)
    assert [r.label for r in by_soft.rows] == given
    assert [r.issue for r in by_soft.rows] == [r.issue for r in by_hard.rows]
    issue = np.array([r.issue for r in by_soft.rows])
    assert issue[flipped].mean() >= 0.8


def test_figures_by_method_and_lambda_bin() -> None:
    issues = [True, False, False, True, False, True]
    methods = ["eda", "eda", "invmix", "invmix", "invmix", None]
    lams = [None, None, 0.05, 0.33, 0.38, 1.0]
    figures = fidelity_figures(issues, methods, lams)
    assert figures["rows"] == 6 and figures["issues"] == 3 and figures["rate"] == 0.5
    assert figures["by_method"] == {
        "-": {"rows": 1, "issues": 1, "rate": 1.0},
        "eda": {"rows": 2, "issues": 1, "rate": 0.5},
        "invmix": {"rows": 3, "issues": 1, "rate": 0.333333},
    }
    assert figures["by_lambda"] == [
        {"lambda": [0.0, 0.1], "rows": 1, "issues": 0, "rate": 0.0},
        {"lambda": [0.3, 0.4], "rows": 2, "issues": 1, "rate": 0.5},
        {"lambda": [0.9, 1.0], "rows": 1, "issues": 1, "rate": 1.0},
    ]
    assert lambda_bin(0.3) == (0.3, 0.4) and lambda_bin(0.7) == (0.7, 0.8)
    plain = fidelity_figures(issues)
    assert "by_method" not in plain and "by_lambda" not in plain


def test_methods_and_lambdas_reach_the_rows_and_figures() -> None:
    x_ref, y_ref, x_aug, given, _ = clusters(n_aug=20)
    methods = ["eda"] * 10 + ["invmix"] * 10
    lams = [None] * 10 + [0.25] * 10
    ids = [str(i) for i in range(20)]
    result = oof_label_issues(x_ref, y_ref, ids, x_aug, given, methods=methods, lams=lams)
    assert set(result.figures["by_method"]) == {"eda", "invmix"}
    assert [b["lambda"] for b in result.figures["by_lambda"]] == [[0.2, 0.3]]
    assert result.figures["by_lambda"][0]["rows"] == 10
    assert result.rows[15].method == "invmix" and result.rows[15].lam == 0.25
    with pytest.raises(AugtoolError, match="methods has 3 entries for 20 rows"):
        oof_label_issues(x_ref, y_ref, ids, x_aug, given, methods=["eda"] * 3)


@pytest.mark.slow
def test_flipped_labels_on_real_sentence_embeddings() -> None:
    from augtool.core.encoders import load_encoder

    data = Path(__file__).resolve().parents[1] / "examples" / "data"
    rows = [
        json.loads(line)
        for name in ("intents-train.jsonl", "intents-test.jsonl")
        for line in (data / name).read_text(encoding="utf-8").splitlines()
    ]
    labels = sorted({r["label"] for r in rows})  # account, billing, shipping, technical
    embeddings = load_encoder(cache=False).encode([r["text"] for r in rows])
    ref, aug = rows[::2], rows[1::2]
    given = [r["label"] for r in aug]
    flipped = list(range(0, len(aug), 10))
    for i in flipped:
        given[i] = labels[(labels.index(given[i]) + 1) % len(labels)]
    result = oof_label_issues(
        embeddings[::2], [r["label"] for r in ref], [r["id"] for r in aug], embeddings[1::2], given
    )
    found = {i for i, row in enumerate(result.rows) if row.issue}
    assert len(found & set(flipped)) >= 0.75 * len(flipped)
    assert len(found - set(flipped)) <= 0.1 * (len(aug) - len(flipped))
