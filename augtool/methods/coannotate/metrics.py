"""How far annotators agree, and how accurate they are against people's labels.

Computed from a labelled file (``augtool coannotate`` or ``merge`` output), whose rows
carry ``annotations`` ({annotator: label or null}):

- accuracy of each annotator against the *reference* label of a row: a reviewer's
  decision (rows ``merge`` folded back), else the answer of the human annotators
  (``field:`` ones) other than the one measured, where they agree;
- the aggregate's accuracy against the same reference (for merged rows, the label the
  aggregate had proposed);
- Cohen's kappa for every pair of annotators (scikit-learn), over rows both answered;
- Fleiss' kappa over the rows every annotator answered;
- Krippendorff's alpha (nominal, the ``krippendorff`` package), which uses every
  answer, missing ones included;
- a confusion matrix per annotator against the reference (or against the aggregate when
  no row has a reference).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

ANNOTATIONS = "annotations"
PROVENANCE = "coannotation"


@dataclass
class AgreementReport:
    """Every figure of ``augtool coannotate report`` (see :func:`agreement_report`)."""

    rows: int
    annotators: list[str]
    humans: list[str]
    labels: list[str]
    per_annotator: dict[str, dict[str, Any]]
    aggregate: dict[str, Any]
    cohen_kappa: list[dict[str, Any]]
    fleiss_kappa: dict[str, Any]
    krippendorff_alpha: dict[str, Any]
    confusion: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "annotators": self.annotators,
            "humans": self.humans,
            "labels": self.labels,
            "per_annotator": self.per_annotator,
            "aggregate": self.aggregate,
            "cohen_kappa": self.cohen_kappa,
            "fleiss_kappa": self.fleiss_kappa,
            "krippendorff_alpha": self.krippendorff_alpha,
            "confusion": self.confusion,
        }


def _finite(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def annotators_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Annotator names in the order they first appear in ``annotations``."""
    names: dict[str, None] = {}
    for row in rows:
        for name in row.get(ANNOTATIONS) or {}:
            names.setdefault(str(name), None)
    return list(names)


def _answer(row: Mapping[str, Any], name: str) -> str | None:
    value = (row.get(ANNOTATIONS) or {}).get(name)
    return None if value is None else str(value)


def _reviewed(row: Mapping[str, Any]) -> bool:
    provenance = row.get(PROVENANCE)
    return isinstance(provenance, dict) and provenance.get("source") == "human"


def reference(
    row: Mapping[str, Any], humans: Sequence[str], label_field: str, exclude: str | None = None
) -> str | None:
    """The row's reference label: a reviewer's decision, else what the human annotators
    (but ``exclude``) answered when they agree; ``None`` when there is none."""
    if _reviewed(row):
        value = row.get(label_field)
        return None if value is None else str(value)
    given = {_answer(row, name) for name in humans if name != exclude} - {None}
    return given.pop() if len(given) == 1 else None


def aggregate_label(row: Mapping[str, Any], label_field: str) -> str | None:
    """The aggregate's label of a row (before any reviewer's decision)."""
    provenance = row.get(PROVENANCE)
    if _reviewed(row) and isinstance(provenance, dict):
        value = provenance.get("aggregate_label")
    else:
        value = row.get(label_field)
    return None if value is None else str(value)


def fleiss_kappa(items: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa of items each rated by the same number (two or more) of raters."""
    if not items:
        return None
    raters = len(items[0])
    if raters < 2 or any(len(item) != raters for item in items):
        return None
    categories = sorted({label for item in items for label in item})
    counts = [Counter(item) for item in items]
    per_item = [
        (sum(c[k] ** 2 for k in categories) - raters) / (raters * (raters - 1)) for c in counts
    ]
    observed = sum(per_item) / len(items)
    shares = [sum(c[k] for c in counts) / (len(items) * raters) for k in categories]
    expected = sum(p * p for p in shares)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha(units: Sequence[Sequence[str | None]]) -> float | None:
    """Krippendorff's alpha (nominal) of raters x units answers (``None``: missing)."""
    import numpy as np

    labels = sorted({value for rater in units for value in rater if value is not None})
    if not units or len(labels) < 1:
        return None
    code = {label: index for index, label in enumerate(labels)}
    data = np.array(
        [[np.nan if v is None else code[v] for v in rater] for rater in units], dtype=float
    )
    if len(labels) == 1:
        return None  # one value everywhere: alpha is undefined (no variation)
    import krippendorff

    try:
        value = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    except (ValueError, ZeroDivisionError):
        return None
    return float(value)


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' answers on the same items (scikit-learn)."""
    import warnings

    from sklearn.metrics import cohen_kappa_score

    if len(first) < 2:
        return None
    if len(set(first) | set(second)) == 1:
        return None  # both always gave the one label: undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(list(first), list(second)))


def agreement_report(
    rows: Sequence[Mapping[str, Any]],
    *,
    humans: Sequence[str] = (),
    label_field: str = "label",
) -> AgreementReport:
    """Per-annotator accuracy against people's labels, kappas, alpha and confusions."""
    names = annotators_of(rows)
    humans = [name for name in humans if name in names]
    labels = sorted(
        {a for row in rows for name in names if (a := _answer(row, name)) is not None}
        | {a for row in rows if (a := aggregate_label(row, label_field)) is not None}
        | {r for row in rows if (r := reference(row, humans, label_field)) is not None}
    )
    per_annotator: dict[str, dict[str, Any]] = {}
    for name in names:
        answered = [row for row in rows if _answer(row, name) is not None]
        with_aggregate = [
            (_answer(row, name), aggregate_label(row, label_field))
            for row in answered
            if aggregate_label(row, label_field) is not None
        ]
        pairs = [
            (_answer(row, name), ref)
            for row in answered
            if (ref := reference(row, humans, label_field, exclude=name)) is not None
        ]
        per_annotator[name] = {
            "human": name in humans,
            "answered": len(answered),
            "coverage": _finite(len(answered) / len(rows)) if rows else None,
            "agreement_with_aggregate": _finite(
                sum(a == b for a, b in with_aggregate) / len(with_aggregate)
            )
            if with_aggregate
            else None,
            "accuracy": _finite(sum(a == b for a, b in pairs) / len(pairs)) if pairs else None,
            "compared": len(pairs),
        }
    agg_pairs = [
        (label, ref)
        for row in rows
        if (label := aggregate_label(row, label_field)) is not None
        and (ref := reference(row, humans, label_field)) is not None
    ]
    aggregate = {
        "accuracy": _finite(sum(a == b for a, b in agg_pairs) / len(agg_pairs))
        if agg_pairs
        else None,
        "compared": len(agg_pairs),
        "reviewed_rows": sum(1 for row in rows if _reviewed(row)),
    }
    kappas = []
    for first, second in combinations(names, 2):
        both = [
            (_answer(row, first), _answer(row, second))
            for row in rows
            if _answer(row, first) is not None and _answer(row, second) is not None
        ]
        value = cohen_kappa([a for a, _ in both], [b for _, b in both]) if both else None
        kappas.append({"a": first, "b": second, "kappa": _finite(value), "items": len(both)})
    complete = [
        [_answer(row, name) for name in names]
        for row in rows
        if all(_answer(row, name) is not None for name in names)
    ]
    fleiss = {"kappa": _finite(fleiss_kappa(complete)), "items": len(complete)}  # type: ignore[arg-type]
    units = [[_answer(row, name) for row in rows] for name in names]
    alpha = {"alpha": _finite(krippendorff_alpha(units)), "items": len(rows)}
    return AgreementReport(
        rows=len(rows),
        annotators=names,
        humans=list(humans),
        labels=labels,
        per_annotator=per_annotator,
        aggregate=aggregate,
        cohen_kappa=kappas,
        fleiss_kappa=fleiss,
        krippendorff_alpha=alpha,
        confusion=confusions(rows, names, humans, labels, label_field),
    )


def confusions(
    rows: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    humans: Sequence[str],
    labels: Sequence[str],
    label_field: str,
) -> dict[str, Any]:
    """One confusion matrix per annotator (rows: reference, columns: the annotator's
    answer) against the reference where rows have one, else against the aggregate."""
    has_reference = any(reference(row, humans, label_field) is not None for row in rows)
    index = {label: i for i, label in enumerate(labels)}
    matrices = {}
    for name in names:
        matrix = [[0] * len(labels) for _ in labels]
        for row in rows:
            answer = _answer(row, name)
            truth = (
                reference(row, humans, label_field, exclude=name)
                if has_reference
                else aggregate_label(row, label_field)
            )
            if answer is not None and truth is not None:
                matrix[index[truth]][index[answer]] += 1
        matrices[name] = matrix
    return {
        "against": "reference" if has_reference else "aggregate",
        "labels": list(labels),
        "matrices": matrices,
    }
