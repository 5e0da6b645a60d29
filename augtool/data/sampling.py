"""K-shot sampling and train/dev splits, seeded and stable."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Literal

from augtool.data.records import Record
from augtool.errors import AugtoolError, OptionError


def _by_label(records: list[Record], purpose: str) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        if record.label is None:
            raise AugtoolError(f'record "{record.id}" has no label; {purpose} needs labelled rows')
        groups[record.label].append(index)
    return dict(sorted(groups.items()))


def _rng(seed: int, label: str) -> random.Random:
    # Seeded per class from a string, so a class's sample does not depend on other classes.
    return random.Random(f"augtool:{seed}:{label}")


def k_shot(
    records: list[Record],
    k: int | None,
    seed: int,
    *,
    if_short: Literal["error", "all"] = "error",
) -> list[Record]:
    """K examples per label, drawn with ``seed``; ``k=None`` keeps everything.

    A class with fewer than ``k`` rows is an error, or (``if_short="all"``) kept whole.
    The result keeps the input order.
    """
    if k is None:
        return list(records)
    if k < 1:
        raise OptionError("k", f"must be at least 1 (got {k})")
    chosen: list[int] = []
    short = []
    for label, indices in _by_label(records, "K-shot sampling").items():
        if len(indices) < k:
            if if_short == "error":
                short.append(f"{label} ({len(indices)})")
                continue
            chosen.extend(indices)
            continue
        chosen.extend(_rng(seed, label).sample(indices, k))
    if short:
        raise OptionError(
            "k",
            f"{k} is more than some classes have: {', '.join(short)}; "
            "pass --if-short all to take every row of those classes",
        )
    return [records[index] for index in sorted(chosen)]


def train_dev_split(
    records: list[Record], dev_fraction: float, seed: int
) -> tuple[list[Record], list[Record]]:
    """Stratified split: about ``dev_fraction`` of each class (at least one row from
    every class with two or more) goes to dev. Both parts keep the input order."""
    if not 0.0 < dev_fraction < 1.0:
        raise OptionError("dev_fraction", f"must be between 0 and 1 (got {dev_fraction})")
    dev: set[int] = set()
    for label, indices in _by_label(records, "a stratified split").items():
        if len(indices) < 2:
            continue
        n_dev = min(len(indices) - 1, max(1, round(len(indices) * dev_fraction)))
        dev.update(_rng(seed, label).sample(indices, n_dev))
    if not dev:
        raise OptionError("dev_fraction", "no class has enough rows to hold some out for dev")
    train = [record for index, record in enumerate(records) if index not in dev]
    held_out = [record for index, record in enumerate(records) if index in dev]
    return train, held_out
