"""Streaming JSONL reading with validation that names the file and line of every problem."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augtool.data.records import FieldMap, Record
from augtool.errors import DataError, source_name

_INSTRUCTION_KEYS = ("instruction", "input", "output")


@dataclass(frozen=True)
class RecordSpec:
    """What a command needs from each row.

    ``require_text``: rows must carry a non-empty text (classification data).
    ``require_label``: rows must carry a label or a soft label (training, evaluation).
    ``known_labels``: labels outside this set are rejected (evaluating a trained model).
    """

    fields: FieldMap = FieldMap()
    require_text: bool = True
    require_label: bool = False
    known_labels: frozenset[str] | None = None


@dataclass
class Rejected:
    """A row that failed validation and was skipped under ``--skip-invalid``."""

    path: str
    line: int
    reason: str
    raw: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "error": self.reason, "raw": self.raw}


class _RowError(Exception):
    pass


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _optional_string(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _RowError(f'field "{key}" must be a string, got {_type_name(value)}')
    return value


def _parse_label(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _RowError(f'field "{key}" must be a string (or integer), got {_type_name(value)}')
    label = str(value)
    if not label.strip():
        raise _RowError(f'field "{key}" is empty')
    return label


def _parse_label_dist(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise _RowError('field "label_dist" must be a non-empty object {label: weight}')
    dist: dict[str, float] = {}
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise _RowError(f'label_dist["{name}"] must be a number, got {_type_name(weight)}')
        if not math.isfinite(weight) or weight < 0:
            raise _RowError(f'label_dist["{name}"] must be a finite, non-negative number')
        dist[str(name)] = float(weight)
    total = sum(dist.values())
    if total <= 0:
        raise _RowError('field "label_dist" has no positive weight')
    return {name: weight / total for name, weight in dist.items()}


def parse_row(obj: Any, spec: RecordSpec, default_id: str) -> Record:
    """Validate one decoded JSON value and turn it into a :class:`Record`."""
    if not isinstance(obj, dict):
        raise _RowError(f"expected a JSON object, got {_type_name(obj)}")
    fields = spec.fields
    row = dict(obj)

    raw_id = row.pop(fields.id, None)
    if raw_id is None:
        record_id = default_id
    elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise _RowError(f'field "{fields.id}" must be a string, got {_type_name(raw_id)}')
    else:
        record_id = str(raw_id)
        if not record_id.strip():
            raise _RowError(f'field "{fields.id}" is empty')

    has_text_key = fields.text in row
    text = _optional_string(row, fields.text)
    row.pop(fields.text, None)
    if spec.require_text:
        if not has_text_key:
            hint = ", ".join(sorted(obj)) or "none"
            raise _RowError(
                f'missing field "{fields.text}" (fields present: {hint}; '
                "map another one with --text-field)"
            )
        if text is None:
            raise _RowError(f'field "{fields.text}" must be a string, got null')
    if text is not None and not text.strip():
        raise _RowError(f'field "{fields.text}" is empty')

    has_label_key = fields.label in row
    label = _parse_label(row.pop(fields.label, None), fields.label)
    label_dist = _parse_label_dist(row.pop("label_dist", None))
    if spec.require_label and label is None and label_dist is None:
        if not has_label_key:
            raise _RowError(f'missing field "{fields.label}" (map another one with --label-field)')
        raise _RowError(f'field "{fields.label}" is null but a label is required')
    if spec.known_labels is not None:
        named = ([label] if label is not None else []) + sorted(label_dist or {})
        for name in named:
            if name not in spec.known_labels:
                known = ", ".join(sorted(spec.known_labels))
                raise _RowError(f'unknown label "{name}" (known labels: {known})')

    text_pair = _optional_string(row, fields.text_pair)
    row.pop(fields.text_pair, None)
    instruction_fields = {key: _optional_string(row, key) for key in _INSTRUCTION_KEYS}
    for key in _INSTRUCTION_KEYS:
        row.pop(key, None)
    aug = row.pop("aug", None)
    if aug is not None and not isinstance(aug, dict):
        raise _RowError(f'field "aug" must be an object, got {_type_name(aug)}')

    return Record(
        id=record_id,
        text=text,
        label=label,
        label_dist=label_dist,
        text_pair=text_pair,
        aug=aug,
        extra=row,
        **instruction_fields,
    )


_CONSTANTS = ("NaN", "-Infinity", "Infinity")


def _constant_position(raw: str, constant: str) -> int:
    """Where ``constant`` first stands outside a string in ``raw`` (0 if not found)."""
    inside, escaped = False, False
    for index, char in enumerate(raw):
        if inside:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                inside = False
        elif char == '"':
            inside = True
        elif raw.startswith(constant, index):
            return index
    return 0


def loads_line(raw: str) -> Any:
    """Decode one JSONL line strictly: ``NaN`` and ``Infinity`` are not JSON and are
    refused (Python's parser accepts them), with the position of the offending token.

    Raises :class:`json.JSONDecodeError`; its ``colno`` counts within the line.
    """
    line = raw.rstrip("\r\n")

    def refuse(constant: str) -> Any:
        raise _ConstantError(constant, line, _constant_position(line, constant))

    return json.loads(line, parse_constant=refuse)


class _ConstantError(json.JSONDecodeError):
    """``NaN`` or an infinity where JSON allows only numbers, strings, ..."""


def json_error_reason(exc: json.JSONDecodeError) -> str:
    """``invalid JSON (message at column N)``: the parser's own position, said once."""
    if isinstance(exc, _ConstantError):
        return f"invalid JSON ({exc.msg} at column {exc.colno} is not JSON; write null or a number)"
    return f"invalid JSON ({exc.msg} at column {exc.colno})"


def check_input_file(path: str | Path) -> Path:
    """The path as a :class:`Path`, or a one-line error if it is not a readable dataset:
    a JSONL, CSV, TSV or Parquet file, a ``save_to_disk`` folder or ``hf://...`` (see
    :mod:`augtool.data.formats`)."""
    from augtool.data.formats import check_source

    check_source(path)
    return Path(path)


def iter_json_lines(
    path: str | Path,
    *,
    rejects: list[Rejected] | None = None,
    spec: RecordSpec | None = None,
) -> Iterator[tuple[int, str, Any]]:
    """Yield ``(line number, raw line, decoded value)`` of a JSONL file, streaming.

    Blank lines are ignored; a line that is not UTF-8 or not JSON raises
    :class:`DataError` naming the file and line, or goes to ``rejects`` when given.
    Callers validate the values (see :func:`reject_row`). Other formats (CSV, TSV,
    Parquet, datasets) give the same stream, numbered by line or row
    (:func:`augtool.data.formats.iter_rows`; ``spec`` names their text column).
    """
    from augtool.data.formats import check_source, iter_rows

    source = check_source(path)
    if source.kind != "jsonl":
        yield from iter_rows(source, rejects=rejects, spec=spec)
        return
    path = source.path
    with path.open("rb") as handle:
        for line_number, raw_bytes in enumerate(handle, start=1):
            if line_number == 1 and raw_bytes.startswith(b"\xef\xbb\xbf"):
                raw_bytes = raw_bytes[3:]
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
                reject_row(path, line_number, reason, raw_bytes.decode("utf-8", "replace"), rejects)
                continue
            if not raw.strip():
                continue
            try:
                obj = loads_line(raw)
            except json.JSONDecodeError as exc:
                reject_row(path, line_number, json_error_reason(exc), raw, rejects)
                continue
            yield line_number, raw, obj


def iter_numbered_records(
    path: str | Path,
    spec: RecordSpec | None = None,
    *,
    rejects: list[Rejected] | None = None,
) -> Iterator[tuple[int, str, Record]]:
    """Yield ``(line number, raw line, record)`` from a JSONL file, streaming.

    Blank lines are ignored. An invalid row raises :class:`DataError` naming the file
    and line, unless ``rejects`` is given: then the row is appended there and skipped.
    Ids missing from the file are derived as ``<file stem>-<line>`` (``-<row>`` for
    Parquet and datasets).
    """
    from augtool.data.formats import check_source

    spec = spec or RecordSpec()
    source = check_source(path)
    for line_number, raw, obj in iter_json_lines(path, rejects=rejects, spec=spec):
        try:
            record = parse_row(obj, spec, f"{source.stem}-{line_number}")
        except _RowError as exc:
            reject_row(source.name, line_number, str(exc), raw, rejects)
            continue
        yield line_number, raw, record


def iter_records(
    path: str | Path,
    spec: RecordSpec | None = None,
    *,
    rejects: list[Rejected] | None = None,
) -> Iterator[Record]:
    """Yield validated records from a JSONL file (see :func:`iter_numbered_records`)."""
    for _, _, record in iter_numbered_records(path, spec, rejects=rejects):
        yield record


def reject_row(
    path: str | Path, line: int, reason: str, raw: str, rejects: list[Rejected] | None
) -> None:
    """Fail on a bad row (one line naming the file and line), or record it in ``rejects``."""
    if rejects is None:
        raise DataError(path, reason, line=line)
    rejects.append(Rejected(source_name(path), line, reason, raw.rstrip("\r\n")))


def read_records(
    paths: str | Path | Iterable[str | Path],
    spec: RecordSpec | None = None,
    *,
    rejects: list[Rejected] | None = None,
) -> list[Record]:
    """Read and validate whole files, before any expensive work starts.

    Besides per-row checks this rejects duplicate ids (across all ``paths``) and files
    with no valid record. Pass ``rejects`` to skip bad rows instead of failing.
    """
    from augtool.data.formats import describe_empty, source_of

    if isinstance(paths, (str, Path)):
        paths = [paths]
    records: list[Record] = []
    seen: dict[str, tuple[str, int]] = {}
    for path in paths:
        path = check_input_file(path)
        name = source_name(path)
        unit = "line" if source_of(path).is_text else "row"
        count_before = len(records)
        rejected_before = len(rejects) if rejects is not None else 0
        for line, raw, record in iter_numbered_records(path, spec, rejects=rejects):
            first = seen.get(record.id)
            if first is not None:
                where = f"{unit} {first[1]}" if first[0] == name else f"{first[0]}:{first[1]}"
                reason = f'duplicate id "{record.id}" (first seen at {where})'
                reject_row(path, line, reason, raw, rejects)
                continue
            seen[record.id] = (name, line)
            records.append(record)
        if len(records) == count_before:
            rejected = (len(rejects) - rejected_before) if rejects is not None else 0
            if rejected:
                raise DataError(path, f"no valid records ({rejected} rows rejected)")
            raise DataError(path, f"no records ({describe_empty(path)})")
    return records
