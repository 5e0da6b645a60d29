"""Label fidelity, judged offline: does each augmented row still carry its label?

The model-free judge of issue 20. Features are precomputed sentence embeddings (no
encoder in here, as in BERTopic): a logistic regression gives out-of-fold predicted
probabilities over the reference plus the augmented rows (cleanlab's recommended
``cross_val_predict`` pattern, stratified and seeded folds), and
``cleanlab.filter.find_label_issues`` marks the rows whose given label the held-out model
finds unlikely. Only the augmented rows are reported; the reference rows are there to
teach the model and to calibrate cleanlab's per-class thresholds.

Needs the optional ``cleanlab`` and ``scikit-learn`` packages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from augtool.errors import AugtoolError

LAMBDA_BIN_WIDTH = 0.1


@dataclass
class RowFidelity:
    """The verdict on one augmented row."""

    id: str
    label: str
    predicted: str
    self_confidence: float
    issue: bool
    method: str | None = None
    lam: float | None = None
    #: False when the judge gave no verdict (an unparsed or failed LLM reply): never an
    #: issue, and left out of the rates.
    judged: bool = True


@dataclass
class LabelFidelity:
    """Per-row verdicts, summary figures and the flagged rows (all JSON-serialisable)."""

    rows: list[RowFidelity]
    figures: dict[str, Any]
    flagged: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [asdict(row) for row in self.rows],
            "figures": self.figures,
            "flagged": self.flagged,
        }


def hard_label(label: str | Mapping[str, float]) -> str:
    """A hard label as is; a soft label (``label_dist``) by its argmax (ties: first name
    in sorted order), since the judge audits one class per row."""
    if isinstance(label, Mapping):
        if not label:
            raise AugtoolError("an augmented row has an empty soft label (label_dist)")
        return max(sorted(label), key=lambda name: label[name])
    return str(label)


def _rate(issues: int, rows: int) -> float | None:
    return round(issues / rows, 6) if rows else None


def lambda_bin(lam: float, width: float = LAMBDA_BIN_WIDTH) -> tuple[float, float]:
    """The ``[low, high)`` bin of width ``width`` over [0, 1] holding ``lam`` (1 falls in
    the last bin). Raw lambda, not folded: unlike ``audit.intrusion.by_lambda_bin``,
    which counts LLM verdicts over ``max(lambda, 1 - lambda)``, this groups any rows."""
    count = round(1 / width)
    index = min(count - 1, max(0, int(lam / width + 1e-9)))
    return round(index * width, 4), round((index + 1) * width, 4)


def fidelity_figures(
    issues: Sequence[bool],
    methods: Sequence[str | None] | None = None,
    lams: Sequence[float | None] | None = None,
    judged: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Rows, issues, issue rate and fidelity (1 - rate) overall, by method and by lambda
    bin (non-empty bins only, in order; rows without lambda are left out of the bins).

    With ``judged``, rows without a verdict are counted as ``unjudged`` and left out of
    every rate."""
    unjudged = 0
    if judged is not None:
        keep = [i for i, j in enumerate(judged) if j]
        unjudged = len(issues) - len(keep)
        issues = [issues[i] for i in keep]
        methods = None if methods is None else [methods[i] for i in keep]
        lams = None if lams is None else [lams[i] for i in keep]
    count = int(sum(bool(i) for i in issues))
    rate = _rate(count, len(issues))
    figures: dict[str, Any] = {
        "rows": len(issues),
        "issues": count,
        "rate": rate,
        "fidelity": None if rate is None else round(1.0 - rate, 6),
        "unjudged": unjudged,
    }
    if methods is not None:
        groups: dict[str, list[bool]] = {}
        for method, issue in zip(methods, issues, strict=True):
            groups.setdefault(str(method) if method is not None else "-", []).append(issue)
        figures["by_method"] = {
            name: {"rows": len(g), "issues": sum(g), "rate": _rate(sum(g), len(g))}
            for name, g in sorted(groups.items())
        }
    if lams is not None:
        bins: dict[tuple[float, float], list[bool]] = {}
        for lam, issue in zip(lams, issues, strict=True):
            if lam is not None and not math.isnan(float(lam)):
                bins.setdefault(lambda_bin(float(lam)), []).append(issue)
        figures["by_lambda"] = [
            {"lambda": [low, high], "rows": len(g), "issues": sum(g), "rate": _rate(sum(g), len(g))}
            for (low, high), g in sorted(bins.items())
        ]
    return figures


def oof_probabilities(
    features: np.ndarray, targets: np.ndarray, *, folds: int = 5, seed: int = 0, C: float = 10.0
) -> np.ndarray:
    """Out-of-fold class probabilities from a logistic regression (stratified, seeded).

    Fewer folds are used when the rarest class has fewer rows than ``folds``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    smallest = int(np.bincount(targets).min())
    splits = max(2, min(folds, smallest))
    if smallest < 2:
        raise AugtoolError("label fidelity needs at least 2 rows of every label")
    model = LogisticRegression(C=C, max_iter=1000)
    cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, targets, cv=cv, method="predict_proba")


def oof_label_issues(
    ref_emb: np.ndarray,
    ref_labels: Sequence[str],
    aug_ids: Sequence[str],
    aug_emb: np.ndarray,
    aug_labels: Sequence[str | Mapping[str, float]],
    *,
    methods: Sequence[str | None] | None = None,
    lams: Sequence[float | None] | None = None,
    folds: int = 5,
    seed: int = 0,
    C: float = 10.0,
    filter_by: str = "both",
) -> LabelFidelity:
    """Judge each augmented row's label with out-of-fold predictions and cleanlab.

    ``ref_emb``/``aug_emb`` are sentence embeddings (rows x dims) of the reference and
    augmented texts. Soft labels (``label_dist`` dicts) are audited by their argmax: the
    row is an issue when cleanlab finds that class unlikely. ``self_confidence`` is the
    out-of-fold probability of the (argmax) given label. ``methods`` and ``lams`` (one per
    augmented row, ``None`` when absent) add rates by method and by lambda bin of width
    0.1. ``filter_by`` is cleanlab's rule; ``"both"`` (noise-rate pruning and confident
    learning agreeing) gave the fewest false alarms at the same recall on synthetic
    tests. cleanlab runs over all rows, so the clean reference steadies its per-class
    thresholds. A label the reference lacks raises :class:`AugtoolError`.
    """
    from cleanlab.filter import find_label_issues

    ref_emb, aug_emb = np.asarray(ref_emb, dtype=float), np.asarray(aug_emb, dtype=float)
    n_aug = len(aug_ids)
    if len(ref_labels) != len(ref_emb) or not (n_aug == len(aug_emb) == len(aug_labels)):
        raise AugtoolError("label fidelity: embeddings and labels differ in length")
    for name, extra in (("methods", methods), ("lams", lams)):
        if extra is not None and len(extra) != n_aug:
            raise AugtoolError(f"label fidelity: {name} has {len(extra)} entries for {n_aug} rows")
    if ref_emb.ndim != 2 or aug_emb.ndim != 2 or ref_emb.shape[1] != aug_emb.shape[1]:
        raise AugtoolError("label fidelity: reference and augmented embeddings differ in shape")
    classes = sorted({str(label) for label in ref_labels})
    given = [hard_label(label) for label in aug_labels]
    unknown = sorted(set(given) - set(classes))
    if unknown:
        raise AugtoolError(f"augmented rows carry labels the reference lacks: {', '.join(unknown)}")
    if len(classes) < 2:
        raise AugtoolError("label fidelity needs at least 2 labels in the reference")
    index = {name: i for i, name in enumerate(classes)}
    targets = np.array([index[str(x)] for x in ref_labels] + [index[x] for x in given])
    features = np.vstack([ref_emb, aug_emb])
    probs = oof_probabilities(features, targets, folds=folds, seed=seed, C=C)
    mask = find_label_issues(targets, probs, filter_by=filter_by)
    aug_probs, aug_targets, aug_mask = probs[-n_aug:], targets[-n_aug:], mask[-n_aug:]
    rows = []
    for i in range(n_aug):
        rows.append(
            RowFidelity(
                id=str(aug_ids[i]),
                label=given[i],
                predicted=classes[int(aug_probs[i].argmax())],
                self_confidence=round(float(aug_probs[i, aug_targets[i]]), 6),
                issue=bool(aug_mask[i]),
                method=None if methods is None else methods[i],
                lam=None if lams is None or lams[i] is None else float(lams[i]),
            )
        )
    figures = fidelity_figures([r.issue for r in rows], methods, lams)
    figures.update(
        {
            "judge": "cleanlab",
            "filter_by": filter_by,
            "classes": classes,
            "reference_rows": len(ref_labels),
        }
    )
    flagged = [
        {
            "id": r.id,
            "kind": "label",
            "reason": f"given {r.label!r} (p={r.self_confidence:.3f}), "
            f"out-of-fold model predicts {r.predicted!r}",
        }
        for r in rows
        if r.issue
    ]
    return LabelFidelity(rows=rows, figures=figures, flagged=flagged)
