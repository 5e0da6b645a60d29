"""Aggregating several annotators' answers into one label per row (crowd-kit).

:func:`aggregate` takes precomputed answers, ``{annotator: [label or None per row]}``,
so it runs without any model (and tests can feed it simulated annotators):

- ``majority``: the most frequent answer; confidence is its vote share.
- ``weighted``: Wawa, votes weighted by each annotator's agreement with the majority;
  confidence is the weighted vote share.
- ``dawid-skene``: Dawid and Skene's EM over one confusion matrix per annotator;
  confidence is the posterior of the chosen label, and each annotator's accuracy is
  estimated from its confusion matrix (``sum_k prior_k * P(answer k | true k)``).
- ``glad``: Whitehill et al.'s GLAD (annotator skill and row difficulty); confidence is
  the posterior, the estimated accuracy the mean ``sigmoid(alpha * exp(beta))`` over the
  rows an annotator answered.

Agreement of a row is the share of the annotators that answered it who gave the
aggregate label. A row nobody answered has no label, agreement or confidence.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from augtool.errors import OptionError

METHODS = ("majority", "weighted", "dawid-skene", "glad")


@dataclass
class Aggregation:
    """One aggregate label per row, with its confidence and agreement, and what the
    method learned about each annotator."""

    method: str
    labels: list[str | None]
    confidence: list[float | None]
    agreement: list[float | None]
    #: Share of an annotator's answers equal to the aggregate label.
    agreement_with_aggregate: dict[str, float | None] = field(default_factory=dict)
    #: The method's estimate of each annotator's accuracy (dawid-skene, glad; else None).
    estimated_accuracy: dict[str, float | None] = field(default_factory=dict)

    def annotators(self) -> dict[str, dict[str, float | None]]:
        """Per-annotator figures for reports and the meta file."""
        return {
            name: {
                "agreement_with_aggregate": self.agreement_with_aggregate.get(name),
                "estimated_accuracy": self.estimated_accuracy.get(name),
            }
            for name in self.agreement_with_aggregate
        }


def _frame(answers: Mapping[str, Sequence[str | None]]) -> Any:
    import pandas as pd

    rows = [
        (index, name, str(label))
        for name, labels in answers.items()
        for index, label in enumerate(labels)
        if label is not None
    ]
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


def aggregate(
    answers: Mapping[str, Sequence[str | None]],
    method: str = "dawid-skene",
    *,
    iterations: int = 100,
) -> Aggregation:
    """Aggregate ``answers`` (annotator name -> one label or ``None`` per row)."""
    if method not in METHODS:
        raise OptionError("aggregate", f"must be one of {', '.join(METHODS)} (got {method!r})")
    lengths = {len(labels) for labels in answers.values()}
    if len(lengths) > 1:
        raise ValueError("every annotator needs one answer per row")
    count = lengths.pop() if lengths else 0
    data = _frame(answers)
    estimated: dict[str, float | None] = dict.fromkeys(answers)
    if data.empty:
        labels: list[str | None] = [None] * count
        confidence: list[float | None] = [None] * count
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probas, estimated = _fit(data, method, iterations, list(answers))
        labels, confidence = [], []
        for index in range(count):
            if index not in probas.index:
                labels.append(None)
                confidence.append(None)
                continue
            row = probas.loc[index]
            best = str(row.idxmax())
            labels.append(best)
            confidence.append(_rounded(row[best]))
    agreement = [_row_agreement(answers, index, labels[index]) for index in range(count)]
    with_aggregate = {name: _agreement_of(values, labels) for name, values in answers.items()}
    return Aggregation(method, labels, confidence, agreement, with_aggregate, estimated)


def _fit(
    data: Any, method: str, iterations: int, names: list[str]
) -> tuple[Any, dict[str, float | None]]:
    """The posterior (or vote-share) table, rows by task, and estimated accuracies."""
    import numpy as np
    from crowdkit.aggregation import GLAD, DawidSkene, MajorityVote
    from crowdkit.aggregation.utils import get_accuracy

    estimated: dict[str, float | None] = dict.fromkeys(names)
    if method == "majority":
        return MajorityVote().fit(data).probas_, estimated
    if method == "weighted":
        # Wawa (crowd-kit's recipe, spelled out: its class trips over newer scikit-learn).
        majority = MajorityVote().fit(data)
        skills = get_accuracy(data, true_labels=majority.labels_, by="worker")
        return MajorityVote().fit(data, skills=skills).probas_, estimated
    if method == "dawid-skene":
        model = DawidSkene(n_iter=iterations).fit(data)
        priors = model.priors_
        errors = model.errors_
        for name in names:
            if name not in set(data["worker"]):
                continue
            total = 0.0
            for label, prior in priors.items():
                key = (name, label)
                if key in errors.index and label in errors.columns:
                    total += float(prior) * float(errors.loc[key, label])
            estimated[name] = _rounded(total)
        return model.probas_, estimated
    model = GLAD(n_iter=iterations).fit(data)
    difficulty = np.exp(model.betas_)
    for name in names:
        tasks = data.loc[data["worker"] == name, "task"]
        if tasks.empty:
            continue
        alpha = float(model.alphas_[name])
        values = 1.0 / (1.0 + np.exp(-alpha * difficulty.loc[tasks.values].to_numpy()))
        estimated[name] = _rounded(float(values.mean()))
    return model.probas_, estimated


def _rounded(value: Any) -> float | None:
    number = float(value)
    return round(number, 4) if math.isfinite(number) else None


def _row_agreement(
    answers: Mapping[str, Sequence[str | None]], index: int, label: str | None
) -> float | None:
    if label is None:
        return None
    given = [values[index] for values in answers.values() if values[index] is not None]
    if not given:
        return None
    return round(sum(1 for value in given if value == label) / len(given), 4)


def _agreement_of(values: Sequence[str | None], labels: Sequence[str | None]) -> float | None:
    pairs = [(v, y) for v, y in zip(values, labels, strict=True) if v is not None and y is not None]
    if not pairs:
        return None
    return round(sum(1 for v, y in pairs if v == y) / len(pairs), 4)


def needs_review(
    agreement: float | None,
    confidence: float | None,
    *,
    min_agreement: float,
    min_confidence: float = 0.0,
) -> bool:
    """Whether a row goes to the review file: no aggregate label, agreement under
    ``min_agreement`` or confidence under ``min_confidence``."""
    if agreement is None:
        return True
    if agreement < min_agreement:
        return True
    return confidence is not None and confidence < min_confidence
