"""K-shot sampling and stratified splits."""

from __future__ import annotations

from collections import Counter

import pytest

from augtool.data import Record, dataset_stats, k_shot, train_dev_split
from augtool.errors import AugtoolError, OptionError


def dataset(sizes: dict[str, int]) -> list[Record]:
    records = []
    for label, size in sizes.items():
        records += [
            Record(id=f"{label}{i}", text=f"{label} text {i}", label=label) for i in range(size)
        ]
    return records


def test_k_shot_takes_k_per_label_in_input_order_and_is_seeded() -> None:
    records = dataset({"a": 10, "b": 7, "c": 5})
    sample = k_shot(records, 3, seed=1)
    assert Counter(r.label for r in sample) == {"a": 3, "b": 3, "c": 3}
    positions = [records.index(r) for r in sample]
    assert positions == sorted(positions)
    assert k_shot(records, 3, seed=1) == sample
    assert k_shot(records, 3, seed=2) != sample


def test_a_class_sample_does_not_depend_on_other_classes() -> None:
    with_c = k_shot(dataset({"a": 10, "c": 5}), 2, seed=4)
    without_c = k_shot(dataset({"a": 10}), 2, seed=4)
    assert [r.id for r in with_c if r.label == "a"] == [r.id for r in without_c]


def test_k_larger_than_a_class_errors_or_takes_all() -> None:
    records = dataset({"a": 10, "b": 2})
    with pytest.raises(OptionError, match=r"--k: 4 is more than some classes have: b \(2\)"):
        k_shot(records, 4, seed=0)
    sample = k_shot(records, 4, seed=0, if_short="all")
    assert Counter(r.label for r in sample) == {"a": 4, "b": 2}


def test_k_zero_and_unlabelled_rows_are_errors() -> None:
    with pytest.raises(OptionError, match="--k: must be at least 1"):
        k_shot(dataset({"a": 3}), 0, seed=0)
    with pytest.raises(AugtoolError, match="has no label"):
        k_shot([Record(id="x", text="t")], 1, seed=0)
    assert len(k_shot(dataset({"a": 3}), None, seed=0)) == 3


def test_split_is_stratified_and_disjoint() -> None:
    records = dataset({"a": 20, "b": 10, "c": 1})
    train, dev = train_dev_split(records, 0.2, seed=0)
    assert Counter(r.label for r in dev) == {"a": 4, "b": 2}
    assert {r.id for r in train}.isdisjoint({r.id for r in dev})
    assert len(train) + len(dev) == len(records)
    assert train_dev_split(records, 0.2, seed=0) == (train, dev)
    with pytest.raises(OptionError, match="--dev-fraction"):
        train_dev_split(records, 1.5, seed=0)


def test_stats() -> None:
    records = dataset({"a": 2, "b": 1}) + [Record(id="u", text="a text 0")]
    stats = dataset_stats(records)
    assert stats["rows"] == 4 and stats["labelled"] == 3 and stats["unlabelled"] == 1
    assert stats["labels"] == {"a": 2, "b": 1}
    assert stats["duplicate_texts"] == 1
    assert stats["words"]["max"] == 3
