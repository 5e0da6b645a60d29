"""Records, JSONL reading/validation/writing, sampling and provenance."""

from __future__ import annotations

from augtool.data.jsonl import (
    RecordSpec,
    Rejected,
    iter_numbered_records,
    iter_records,
    read_records,
)
from augtool.data.provenance import build_meta, make_aug, run_key, write_meta
from augtool.data.records import FieldMap, Record, labels_of
from augtool.data.sampling import k_shot, train_dev_split
from augtool.data.stats import dataset_stats
from augtool.data.writer import JsonlWriter, prepare_output, write_json, write_rejects

__all__ = [
    "FieldMap",
    "JsonlWriter",
    "Record",
    "RecordSpec",
    "Rejected",
    "build_meta",
    "dataset_stats",
    "iter_numbered_records",
    "iter_records",
    "k_shot",
    "labels_of",
    "make_aug",
    "prepare_output",
    "read_records",
    "run_key",
    "train_dev_split",
    "write_json",
    "write_meta",
    "write_rejects",
]
