"""The record schema shared by every augtool command (see docs/data-format.md)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

#: Canonical keys of a record, in the order they are written.
CANONICAL_KEYS = (
    "id",
    "text",
    "text_pair",
    "label",
    "label_dist",
    "instruction",
    "input",
    "output",
    "aug",
)


@dataclass(frozen=True)
class FieldMap:
    """Where the canonical fields live in a user's JSONL schema.

    ``FieldMap(text="sentence", label="y")`` reads ``{"sentence": ..., "y": ...}`` as
    ``text`` and ``label``, and writes records back under the same names, so a file keeps
    its schema through every augtool stage.
    """

    id: str = "id"
    text: str = "text"
    label: str = "label"
    text_pair: str = "text_pair"

    def to_source(self) -> dict[str, str]:
        """Canonical name -> name in the file, for the fields that are renamed."""
        return {
            canonical: source
            for canonical, source in (
                ("id", self.id),
                ("text", self.text),
                ("label", self.label),
                ("text_pair", self.text_pair),
            )
            if canonical != source
        }


@dataclass
class Record:
    """One row: a classification example, a pair example or an instruction sample.

    ``extra`` keeps every field augtool does not know, so rows round-trip unchanged.
    """

    id: str
    text: str | None = None
    label: str | None = None
    label_dist: dict[str, float] | None = None
    text_pair: str | None = None
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    aug: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def target(self, labels: list[str]) -> list[float]:
        """The training target over ``labels``: ``label_dist`` if set, else one-hot."""
        if self.label_dist:
            return [float(self.label_dist.get(name, 0.0)) for name in labels]
        if self.label is None:
            raise ValueError(f"record {self.id!r} has neither label nor label_dist")
        return [1.0 if name == self.label else 0.0 for name in labels]

    def to_dict(self, fields: FieldMap | None = None) -> dict[str, Any]:
        """A JSON-ready dict; unset optional fields are left out, renamed ones mapped back."""
        out: dict[str, Any] = {}
        for key in CANONICAL_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if fields is not None:
            for canonical, source in fields.to_source().items():
                if canonical in out:
                    out[source] = out.pop(canonical)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


def labels_of(records: list[Record]) -> list[str]:
    """Every label named by hard labels or soft-label keys, sorted."""
    names: set[str] = set()
    for record in records:
        if record.label is not None:
            names.add(record.label)
        if record.label_dist:
            names.update(record.label_dist)
    return sorted(names)


def child_id(parent: str, suffix: str, taken: Collection[str] = ()) -> str:
    """The id of a row generated from ``parent``: ``<parent>-<suffix>``, made unique
    against ``taken`` (the input's ids) by appending ``-1``, ``-2``, ...

    With ``--keep-original`` an input id such as ``q1-eda0`` would otherwise clash with
    the first EDA row of ``q1``. Generated ids cannot clash with each other: they end in
    the method's suffix, whose parent part differs.
    """
    candidate = f"{parent}-{suffix}"
    number = 0
    while candidate in taken:
        number += 1
        candidate = f"{parent}-{suffix}-{number}"
    return candidate
