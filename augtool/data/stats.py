"""Dataset statistics for ``augtool data stats``."""

from __future__ import annotations

from collections import Counter
from statistics import mean, median
from typing import Any

from augtool.data.records import Record


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "mean": 0.0, "median": 0.0, "max": 0}
    return {
        "min": min(values),
        "mean": round(mean(values), 2),
        "median": float(median(values)),
        "max": max(values),
    }


def dataset_stats(records: list[Record]) -> dict[str, Any]:
    """Rows, label counts, text lengths in characters and words, duplicate texts."""
    texts = [record.text for record in records if record.text is not None]
    labels = Counter(record.label for record in records if record.label is not None)
    text_counts = Counter(texts)
    return {
        "rows": len(records),
        "labelled": sum(labels.values()),
        "unlabelled": sum(1 for r in records if r.label is None and not r.label_dist),
        "soft_labelled": sum(1 for record in records if record.label_dist),
        "with_text_pair": sum(1 for record in records if record.text_pair is not None),
        "augmented": sum(1 for record in records if record.aug is not None),
        "labels": dict(sorted(labels.items())),
        "chars": _summary([len(text) for text in texts]),
        "words": _summary([len(text.split()) for text in texts]),
        "duplicate_texts": sum(count - 1 for count in text_counts.values() if count > 1),
    }
