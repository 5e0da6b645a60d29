"""A JSONL corpus indexed once and read back from disk a batch at a time.

Trainers that loop over a corpus for many epochs (``invmix warm-lm``, ``pinr
train-decoder``) validate the file once and keep only the byte offset of each good row
(8 bytes a row); a batch's texts are parsed again from disk when it is drawn, so memory
stays flat in the corpus size instead of holding every text.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from augtool.data.jsonl import (
    RecordSpec,
    Rejected,
    check_input_file,
    iter_numbered_records,
    loads_line,
    parse_row,
    reject_row,
)
from augtool.data.records import FieldMap, Record
from augtool.errors import DataError

#: A row check beyond the spec's: the reason to reject the record, or None to keep it.
RowCheck = Callable[[Record], str | None]
#: The text a record trains on (default: its ``text``).
RowText = Callable[[Record], str]


@dataclass
class CorpusIndex:
    """Byte offsets of the corpus rows to train on; texts are read back a batch at a time."""

    path: Path
    offsets: np.ndarray
    spec: RecordSpec
    text_of: RowText | None = None
    #: Where rows come from when the corpus is not JSONL (CSV, Parquet, datasets: see
    #: :mod:`augtool.data.formats`); offsets are then CSV byte offsets or row indices.
    source: Any = None

    def __len__(self) -> int:
        return len(self.offsets)

    @contextmanager
    def open(self) -> Iterator[Any]:
        """The corpus file (or a :class:`~augtool.data.formats.RowAccess`), for :meth:`read`."""
        if self.source is not None:
            from augtool.data.formats import RowAccess

            access = RowAccess(self.source, self.spec)
            try:
                yield access
            finally:
                access.close()
            return
        with self.path.open("rb") as handle:
            yield handle

    def raw(self, handle: Any, offset: int) -> str:
        """The raw text of the row at ``offset`` (for a rejects file)."""
        if self.source is not None:
            return handle.row(offset)[0]
        handle.seek(offset)
        return handle.readline().decode("utf-8", "replace")

    def read(self, handle: Any, rows: list[int]) -> list[str]:
        """The texts of ``rows`` (indices into the index), read from the open file."""
        texts = []
        for row in rows:
            record = self._record(handle, int(self.offsets[row]))
            texts.append(self.text_of(record) if self.text_of else record.text or "")
        return texts

    def subset(self, rows: np.ndarray | list[int]) -> CorpusIndex:
        """The index of ``rows`` only, in that order (e.g. a seeded sample, a head)."""
        return replace(self, offsets=self.offsets[np.asarray(rows, dtype=np.int64)].copy())

    def head(self, count: int) -> CorpusIndex:
        """The index of the first ``count`` rows."""
        return replace(self, offsets=self.offsets[:count].copy())

    def _record(self, handle: Any, offset: int, line: int = 0) -> Record:
        """The row at ``offset`` (``line`` names its id when the row has none)."""
        if self.source is not None:
            return parse_row(handle.row(offset)[1], self.spec, f"{self.source.stem}-{line}")
        handle.seek(offset)
        raw = handle.readline()
        if offset == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        return parse_row(loads_line(raw.decode("utf-8")), self.spec, f"{self.path.stem}-{line}")


def index_corpus(
    path: str | Path,
    text_field: str = "text",
    *,
    limit: int | None = None,
    rejects: list[Rejected] | None = None,
    spec: RecordSpec | None = None,
    check: RowCheck | None = None,
    text_of: RowText | None = None,
    unique_ids: bool = False,
) -> CorpusIndex:
    """Validate the corpus (every row up to the ``limit``-th good one) and note where each
    good row starts; a bad row is a one-line error naming the file and line, or goes to
    ``rejects``. Holds one integer per line, never the texts.

    ``spec`` replaces the default (text required, read from ``text_field``); ``check``
    rejects rows the spec lets through; ``text_of`` turns a record into the text trained
    on. ``unique_ids`` rejects a row whose id an earlier good row has, as
    :func:`~augtool.data.jsonl.read_records` does, from an 8-byte hash a row (ids equal
    under the hash are compared in full before a row is rejected).
    """
    from augtool.data.formats import row_offset, source_of

    path = check_input_file(path)
    source = source_of(path)
    spec = spec or RecordSpec(fields=FieldMap(text=text_field), require_text=True)
    starts = array("q")
    position = 0
    if source.is_text:
        with source.path.open("rb") as handle:
            for line in handle:
                starts.append(position)
                position += len(line)
    kept = array("q")
    lines = array("q")
    hashes = array("q")
    rejected_before = len(rejects) if rejects is not None else 0

    def indexed() -> CorpusIndex:
        offsets = np.frombuffer(kept, dtype=np.int64).copy()
        tabular = source if source.kind != "jsonl" else None
        index = CorpusIndex(path, offsets, spec, text_of, tabular)
        if unique_ids and len(kept):
            line_numbers = np.frombuffer(lines, dtype=np.int64)
            index = _drop_duplicate_ids(index, line_numbers, hashes, rejects, rejected_before)
        return index

    try:
        for line_number, raw, record in iter_numbered_records(path, spec, rejects=rejects):
            reason = check(record) if check is not None else None
            if reason is not None:
                reject_row(path, line_number, reason, raw, rejects)
                continue
            kept.append(row_offset(source, line_number, starts))
            if unique_ids:
                lines.append(line_number)
                hashes.append(_id_hash(record.id))
            if limit is not None and len(kept) >= limit:
                break
    except DataError:
        indexed()  # a duplicate id on an earlier line is the first error, as read_records says
        raise
    index = indexed()
    if not len(index):
        from augtool.data.formats import describe_empty

        rejected = (len(rejects) - rejected_before) if rejects is not None else 0
        if rejected:
            raise DataError(path, f"no valid records ({rejected} rows rejected)")
        raise DataError(path, f"no records ({describe_empty(path)})")
    return index


def _id_hash(record_id: str) -> int:
    digest = hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _drop_duplicate_ids(
    index: CorpusIndex,
    lines: np.ndarray,
    hashes: array,
    rejects: list[Rejected] | None,
    rejected_before: int,
) -> CorpusIndex:
    """The index without the rows whose id an earlier row has; those are rejected (in line
    order, with the line of the first) as :func:`~augtool.data.jsonl.read_records` does."""
    keys = np.frombuffer(hashes, dtype=np.int64)
    order = np.argsort(keys, kind="stable")  # equal hashes stay in line order
    sorted_keys = keys[order]
    groups: list[list[int]] = []  # rows sharing a hash, in line order
    for position in np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1]) + 1:
        if groups and groups[-1][-1] == int(order[position - 1]):
            groups[-1].append(int(order[position]))
        else:
            groups.append([int(order[position - 1]), int(order[position])])
    dropped: list[tuple[int, int, str, str]] = []  # line, row, reason, raw
    with index.open() as handle:
        for group in groups:
            first_line: dict[str, int] = {}
            for row in group:
                offset, line = int(index.offsets[row]), int(lines[row])
                record_id = index._record(handle, offset, line).id
                if record_id not in first_line:
                    first_line[record_id] = line
                    continue
                raw = index.raw(handle, offset)
                unit = "line" if index.source is None or index.source.is_text else "row"
                first = first_line[record_id]
                reason = f'duplicate id "{record_id}" (first seen at {unit} {first})'
                dropped.append((line, row, reason, raw))
    if not dropped:
        return index
    dropped.sort()
    for line, _, reason, raw in dropped:
        reject_row(index.path, line, reason, raw, rejects)  # raises without ``rejects``
    if rejects is not None:
        rejects[rejected_before:] = sorted(rejects[rejected_before:], key=lambda r: r.line)
    gone = sorted(row for _, row, _, _ in dropped)
    return index.subset(np.delete(np.arange(len(index)), gone))
