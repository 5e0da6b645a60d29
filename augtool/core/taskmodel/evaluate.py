"""Evaluation and prediction with a trained task model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from augtool.core.progress import SILENT, Reporter
from augtool.data.records import FieldMap, Record

if TYPE_CHECKING:
    from augtool.core.taskmodel.model import TaskModel


def classification_metrics(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision / recall / F1 / support."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = list(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        list(gold), list(predicted), labels=labels, zero_division=0
    )
    present = [i for i, count in enumerate(support) if count > 0]
    correct = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p)
    return {
        "n": len(gold),
        "accuracy": round(correct / len(gold), 6) if gold else 0.0,
        "macro_f1": round(float(np.mean([f1[i] for i in present])), 6) if present else 0.0,
        "per_class": {
            label: {
                "precision": round(float(precision[i]), 6),
                "recall": round(float(recall[i]), 6),
                "f1": round(float(f1[i]), 6),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }


def gold_label(record: Record) -> str:
    """The hard gold label of a row (the argmax of ``label_dist`` for soft-labelled rows)."""
    if record.label is not None:
        return record.label
    assert record.label_dist, "records are validated to carry a label"
    return max(record.label_dist.items(), key=lambda item: item[1])[0]


def evaluate_model(
    model: TaskModel,
    records: list[Record],
    *,
    batch_size: int = 64,
    reporter: Reporter = SILENT,
) -> dict[str, Any]:
    """Metrics of ``model`` on labelled ``records`` (labels must be known to the model)."""
    advance = reporter.task("evaluating", len(records))
    logits = model.logits([r.text or "" for r in records], batch_size=batch_size, progress=advance)
    predicted = [model.labels[int(i)] for i in logits.argmax(axis=1)]
    gold = [gold_label(r) for r in records]
    return classification_metrics(gold, predicted, model.labels)


#: Decimals of the probabilities and logits ``predict`` writes. Batched matrix products
#: differ in the last float32 bits with the batch's size and the CPU's kernels; at four
#: decimals the written values do not depend on ``--batch-size`` or the machine.
PREDICTION_DECIMALS = 4


def prediction_row(
    record: Record, labels: Sequence[str], logits: np.ndarray, fields: FieldMap | None = None
) -> dict[str, Any]:
    """The input row plus ``pred_label``, ``pred_probs`` ({label: p}) and ``pred_logits``,
    rounded to :data:`PREDICTION_DECIMALS`."""
    from augtool.core.taskmodel.model import softmax

    probs = softmax(logits[None, :])[0]
    row = record.to_dict(fields)
    row["pred_label"] = labels[int(np.argmax(logits))]
    digits = PREDICTION_DECIMALS
    row["pred_probs"] = {
        label: round(float(p), digits) for label, p in zip(labels, probs, strict=True)
    }
    row["pred_logits"] = [round(float(x), digits) for x in logits]
    return row
