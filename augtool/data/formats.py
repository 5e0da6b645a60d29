"""Every dataset format augtool reads, as one stream of rows.

JSONL stays the native format. CSV and TSV files, Parquet files, Hugging Face datasets
saved with ``save_to_disk`` (a folder, ``FOLDER:SPLIT`` for a ``DatasetDict``) and
``hf://NAME[:CONFIG][:SPLIT]`` (through ``datasets.load_dataset``, honouring
``HF_HUB_OFFLINE``) are turned into what :func:`augtool.data.jsonl.iter_json_lines`
yields for JSONL: ``(number, raw text, dict)``, so every command reads them all.

The number is the line for text files (JSONL, CSV, TSV: the CSV header is line 1, a
quoted cell spanning lines counts from the record's first line) and the 1-based row for
Parquet and Hugging Face datasets. Errors name ``source:number`` as for JSONL.

Values: CSV cells are strings; an empty id or label cell means none (a derived id, an
unlabelled row). Parquet and datasets values keep their types, ``ClassLabel`` integers
become their names (``-1`` is no label) and NaN becomes null. A ``label_dist`` or
``aug`` string that holds a JSON object is decoded, in every format.

Parquet needs ``pyarrow``, datasets folders and ``hf://`` need ``datasets``; both come
with ``pip install 'augtool[formats]'`` and a missing one is a one-line hint.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from augtool.data.jsonl import (
    RecordSpec,
    Rejected,
    json_error_reason,
    loads_line,
    reject_row,
)
from augtool.data.records import CANONICAL_KEYS
from augtool.errors import AugtoolError, DataError, source_name

#: File suffixes read as something other than JSONL (any other suffix is JSONL).
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: Formats ``--format`` writes.
OUTPUT_FORMATS = ("jsonl", "csv", "tsv", "parquet")
#: Fields holding JSON objects: a string cell that holds one is decoded.
OBJECT_FIELDS = ("label_dist", "aug")
EXTRA_HINT = "pip install 'augtool[formats]'"
_BATCH = 1024
_BOM = b"\xef\xbb\xbf"
_WHAT = {"parquet": "Parquet files", "disk": "datasets folders", "hub": "hf:// datasets"}


@dataclass(frozen=True)
class Source:
    """Where rows come from: ``kind`` (jsonl, csv, tsv, parquet, disk, hub), the file or
    folder (``path``; the dataset name for hub), the name messages use, and for datasets
    the split and config chosen."""

    kind: str
    path: Path
    name: str
    stem: str
    split: str | None = None
    config: str | None = None

    @property
    def is_text(self) -> bool:
        """Numbered by line (JSONL, CSV, TSV) rather than by row."""
        return self.kind in ("jsonl", "csv", "tsv")


def source_of(path: str | Path) -> Source:
    """What ``path`` names, without reading it: a file by its suffix, a folder,
    ``FOLDER:SPLIT`` or ``hf://...`` (also as a :class:`~pathlib.Path`, which collapses
    the ``//``)."""
    text = str(path)
    if text.startswith("hf:/"):
        return _hub_source(text)
    path = Path(path)
    if path.is_dir():
        return Source("disk", path, text, path.stem)
    if not path.exists() and ":" in path.name:
        folder, _, split = text.rpartition(":")
        if folder and split and Path(folder).is_dir():
            return Source("disk", Path(folder), text, path.stem, split=split)
    return Source(SUFFIXES.get(path.suffix.lower(), "jsonl"), path, text, path.stem)


def _hub_source(text: str) -> Source:
    name = source_name(text)
    rest = name[len("hf://") :]
    parts = rest.split(":")
    if len(parts) > 3 or not all(parts):
        raise DataError(name, "expected hf://NAME, hf://NAME:SPLIT or hf://NAME:CONFIG:SPLIT")
    config = parts[1] if len(parts) == 3 else None
    split = parts[-1] if len(parts) > 1 else None
    dataset = parts[0]
    if not Path(dataset).is_dir() and Path("/" + dataset).is_dir():
        dataset = "/" + dataset  # hf:///abs/folder (Path collapses the slashes)
    return Source("hub", Path(dataset), name, Path(text).stem, split=split, config=config)


def is_dataset_source(path: str | Path) -> bool:
    """True for an existing file, a datasets folder (``FOLDER[:SPLIT]``) or ``hf://``:
    what provenance fingerprints."""
    try:
        source = source_of(path)
    except DataError:
        return False
    if source.kind == "hub":
        return True
    if source.kind == "disk":
        return _is_datasets_folder(source.path)
    return source.path.is_file()


def _is_datasets_folder(folder: Path) -> bool:
    """A folder ``save_to_disk`` wrote: a ``DatasetDict`` index, or a dataset's state."""
    if (folder / "dataset_dict.json").is_file():
        return True
    return (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()


def check_source(path: str | Path) -> Source:
    """The source ``path`` names, or a one-line error: missing, a folder that holds no
    dataset, a ``DatasetDict`` without a split, a dataset that cannot be loaded, a
    missing ``pyarrow``/``datasets``."""
    source = source_of(path)
    if source.kind == "hub":
        _load_dataset(source)  # an unknown name or split fails here, before any work
        return source
    if source.kind == "disk":
        if not _is_datasets_folder(source.path):
            raise DataError(
                source.name,
                "is a directory, expected a dataset file (JSONL, CSV, TSV, Parquet) or a "
                "folder written by datasets' save_to_disk",
            )
        _require("datasets", source)
        _disk_split(source)
        return source
    if not source.path.exists():
        raise DataError(source.name, "file not found")
    if source.path.is_dir():
        raise DataError(source.name, "is a directory, expected a JSONL file")
    if source.kind == "parquet":
        _require("pyarrow", source)
    return source


def _require(module: str, source: Source) -> Any:
    """Import ``module`` or fail with the install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise AugtoolError(
            f"{source.name}: reading {_WHAT[source.kind]} needs the {module!r} package: "
            f"{EXTRA_HINT}"
        ) from None


def _disk_split(source: Source) -> str | None:
    """The split to read from a ``save_to_disk`` folder (None: a plain ``Dataset``)."""
    index = source.path / "dataset_dict.json"
    if not index.is_file():
        if source.split is not None:
            raise DataError(source.name, f"{source.path} holds one dataset, not splits")
        return None
    try:
        splits = [str(s) for s in json.loads(index.read_text(encoding="utf-8"))["splits"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(index, f"not a datasets DatasetDict index ({exc})") from None
    return _choose_split(source, splits, f"{source.path}")


def _choose_split(source: Source, splits: Sequence[str], base: str) -> str:
    listed = ", ".join(splits) or "none"
    if source.split is None:
        if len(splits) == 1:
            return splits[0]
        example = f"{base}:{splits[0]}" if splits else f"{base}:SPLIT"
        raise DataError(
            source.name, f"a DatasetDict with splits {listed}; choose one, e.g. {example}"
        )
    if source.split not in splits:
        raise DataError(source.name, f'no split "{source.split}" (splits: {listed})')
    return source.split


# ---------------------------------------------------------------------------- reading


def iter_rows(
    source: Source,
    *,
    rejects: list[Rejected] | None = None,
    spec: RecordSpec | None = None,
) -> Iterator[tuple[int, str, Any]]:
    """``(number, raw text, row dict)`` of a CSV, TSV, Parquet or datasets source.

    ``spec`` (when a command validates records) names the text, id and label columns: a
    source without the text column is refused at its header, and CSV cells of the id and
    label columns read empty as null. Bad rows raise :class:`DataError` or go to
    ``rejects``, as for JSONL.
    """
    if source.kind in ("csv", "tsv"):
        yield from _iter_csv(source, rejects, spec)
    elif source.kind == "parquet":
        yield from _iter_parquet(source, rejects, spec)
    elif source.kind in ("disk", "hub"):
        yield from _iter_dataset(source, rejects, spec)
    else:  # pragma: no cover - JSONL is read by augtool.data.jsonl
        raise ValueError(f"not a tabular source: {source.kind}")


def describe_empty(path: str | Path) -> str:
    """Why a source gave no rows, for ``no records (...)``."""
    source = source_of(path)
    if source.kind in ("csv", "tsv"):
        try:
            header = _csv_header(source)
        except DataError:
            header = None
        if header:
            return f"only a header: {', '.join(header)}"
        return "the file is empty"
    if source.kind == "jsonl":
        return "the file is empty"
    return "the dataset has no rows"


def _check_text_column(source: Source, columns: Sequence[str], spec: RecordSpec | None) -> None:
    if spec is None or not spec.require_text or spec.fields.text in columns:
        return
    listed = ", ".join(columns) or "none"
    raise DataError(
        source.name,
        f'no column "{spec.fields.text}" (columns: {listed}; map another one with --text-field)',
        line=1 if source.is_text else None,
    )


def _object_cell(name: str, value: Any) -> Any:
    """A ``label_dist``/``aug`` string holding a JSON object, decoded."""
    if not isinstance(value, str) or not value.lstrip().startswith("{"):
        return value
    try:
        return loads_line(value)
    except json.JSONDecodeError as exc:
        raise _CellError(f'field "{name}": {json_error_reason(exc)}') from None


class _CellError(Exception):
    pass


# ---- CSV and TSV


class _CsvLines:
    """Decoded lines of a CSV file for :func:`csv.reader`, remembering where the current
    record started (line and byte) and its raw text."""

    def __init__(self, handle: BinaryIO, line: int = 0, offset: int = 0) -> None:
        self.handle = handle
        self.line = line
        self.offset = offset
        self.raw: list[str] = []
        self.start_line = line + 1
        self.start_offset = offset
        self.problem: str | None = None

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        data = self.handle.readline()
        if not data:
            raise StopIteration
        if not self.raw:
            self.start_line, self.start_offset = self.line + 1, self.offset
        self.line += 1
        self.offset += len(data)
        if self.line == 1 and data.startswith(_BOM):
            data = data[len(_BOM) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.problem = self.problem or f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
            text = data.decode("utf-8", "replace")
        self.raw.append(text)
        return text

    def take(self) -> tuple[int, int, str, str | None]:
        """Start line, start byte, raw text and UTF-8 problem of the record just read."""
        taken = (self.start_line, self.start_offset, "".join(self.raw), self.problem)
        self.raw, self.problem = [], None
        self.start_line, self.start_offset = self.line + 1, self.offset
        return taken


def _csv_reader(lines: _CsvLines, source: Source) -> Iterator[list[str]]:
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # long texts are fine
    return csv.reader(lines, delimiter="\t" if source.kind == "tsv" else ",", strict=True)


def _csv_error(exc: csv.Error) -> str:
    message = str(exc)
    if "unexpected end of data" in message:
        return "not valid CSV (a quoted cell opened here is never closed)"
    return f"not valid CSV ({message})"


def _read_header(reader: Iterator[list[str]], lines: _CsvLines, source: Source) -> list[str] | None:
    """The header (the first non-blank record), or None for an empty file."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise DataError(source.name, _csv_error(exc), line=lines.take()[0]) from None
        line, _, raw, problem = lines.take()
        if not raw.strip():
            continue
        if problem:
            raise DataError(source.name, problem, line=line)
        header = [cell.strip() for cell in cells]
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise DataError(source.name, f'duplicate column "{name}" in the header', line=line)
            seen.add(name)
        return header


def _csv_header(source: Source) -> list[str] | None:
    with source.path.open("rb") as handle:
        lines = _CsvLines(handle)
        return _read_header(_csv_reader(lines, source), lines, source)


def _csv_row(header: Sequence[str], cells: Sequence[str], spec: RecordSpec | None) -> dict:
    """Cells are text; an empty one is null, but in the text column (so that an empty
    text is reported as such)."""
    text = (spec or RecordSpec()).fields.text
    row: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        if cell == "" and name != text:
            row[name] = None
        elif name in OBJECT_FIELDS:
            row[name] = _object_cell(name, cell)
        else:
            row[name] = cell
    return _drop_null_extras(row, spec)


def _drop_null_extras(row: dict[str, Any], spec: RecordSpec | None) -> dict[str, Any]:
    """A table has every column in every row: a null in a column augtool does not know
    means the row has no such field, as a JSONL row would leave it out."""
    fields = (spec or RecordSpec()).fields
    known = {fields.id, fields.text, fields.label, fields.text_pair, *CANONICAL_KEYS}
    return {k: v for k, v in row.items() if v is not None or k in known}


def _iter_csv(
    source: Source, rejects: list[Rejected] | None, spec: RecordSpec | None
) -> Iterator[tuple[int, str, Any]]:
    with source.path.open("rb") as handle:
        for line, _, raw, row in _csv_records(handle, source, rejects, spec):
            yield line, raw, row


def _csv_records(
    handle: BinaryIO,
    source: Source,
    rejects: list[Rejected] | None,
    spec: RecordSpec | None,
    *,
    header: list[str] | None = None,
    start: tuple[int, int] = (0, 0),
) -> Iterator[tuple[int, int, str, dict[str, Any]]]:
    """``(line, byte offset, raw, row)`` of each record; reads the header first unless
    given (reading on from ``start``, a line and byte offset)."""
    lines = _CsvLines(handle, *start)
    reader = _csv_reader(lines, source)
    if header is None:
        header = _read_header(reader, lines, source)
        if header is None:
            return
        _check_text_column(source, header, spec)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line, _, raw, _ = lines.take()
            reject_row(source.name, line, _csv_error(exc), raw, rejects)
            continue
        line, offset, raw, problem = lines.take()
        if not raw.strip():
            continue
        if problem:
            reject_row(source.name, line, problem, raw, rejects)
            continue
        if len(cells) != len(header):
            reason = f"{len(cells)} cells, but the header has {len(header)} columns"
            reject_row(source.name, line, reason, raw, rejects)
            continue
        try:
            row = _csv_row(header, cells, spec)
        except _CellError as exc:
            reject_row(source.name, line, str(exc), raw, rejects)
            continue
        yield line, offset, raw, row


# ---- Parquet and Hugging Face datasets (both Arrow)


def _plain(value: Any) -> Any:
    """An Arrow value as JSON would hold it: NaN is null, dates are ISO strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, tuple) and len(item) == 2 for item in value):
            return {str(k): _plain(v) for k, v in value}  # an Arrow map
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    try:
        number = float(value)  # Decimal
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def _arrow_row(
    row: dict[str, Any], class_names: dict[str, list[str]], spec: RecordSpec | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name.startswith("__index_level_"):
            continue  # a pandas index written along
        names = class_names.get(name)
        if names is not None and isinstance(value, int) and not isinstance(value, bool):
            value = names[value] if 0 <= value < len(names) else None if value == -1 else value
        value = _plain(value)
        if name in OBJECT_FIELDS:
            value = _object_cell(name, value)
            if name == "label_dist" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if v is not None}  # struct padding
        out[name] = value
    return _drop_null_extras(out, spec)


def _class_names(features: dict[str, Any]) -> dict[str, list[str]]:
    """ClassLabel columns -> their names, from datasets' feature dict (JSON form)."""
    found = {}
    for name, feature in features.items():
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
            found[name] = [str(n) for n in feature.get("names") or []]
    return found


def _arrow_rows(
    source: Source,
    batches: Iterable[Any],
    class_names: dict[str, list[str]],
    rejects: list[Rejected] | None,
    spec: RecordSpec | None,
) -> Iterator[tuple[int, str, Any]]:
    number = 0
    for batch in batches:
        for row in batch.to_pylist():
            number += 1
            try:
                obj = _arrow_row(row, class_names, spec)
            except _CellError as exc:
                raw = json.dumps(row, ensure_ascii=False, default=str)
                reject_row(source.name, number, str(exc), raw, rejects)
                continue
            yield number, json.dumps(obj, ensure_ascii=False, default=str), obj


def _parquet_file(source: Source) -> Any:
    _require("pyarrow", source)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source.path)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).split(". ")[0].strip().rstrip(".")
        raise DataError(source.name, f"not a Parquet file ({first})") from None


def _parquet_class_names(parquet: Any) -> dict[str, list[str]]:
    """ClassLabel names that datasets' ``to_parquet`` keeps in the schema metadata."""
    metadata = parquet.schema_arrow.metadata or {}
    try:
        info = json.loads(metadata[b"huggingface"])
        return _class_names(info["info"]["features"])
    except (KeyError, ValueError, TypeError):
        return {}


def _visible(columns: Iterable[str]) -> list[str]:
    return [name for name in columns if not name.startswith("__index_level_")]


def _iter_parquet(
    source: Source, rejects: list[Rejected] | None, spec: RecordSpec | None
) -> Iterator[tuple[int, str, Any]]:
    import pyarrow as pa

    parquet = _parquet_file(source)
    _check_text_column(source, _visible(parquet.schema_arrow.names), spec)
    try:
        batches = parquet.iter_batches(batch_size=_BATCH)
        yield from _arrow_rows(source, batches, _parquet_class_names(parquet), rejects, spec)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(source.name, f"cannot read the Parquet file ({exc})") from None


@contextmanager
def _quiet_datasets() -> Iterator[Any]:
    """``datasets`` without progress bars or warnings on the CLI's stderr."""
    import datasets
    from datasets.utils import logging as ds_logging

    bars = ds_logging.is_progress_bar_enabled()
    verbosity = ds_logging.get_verbosity()
    ds_logging.disable_progress_bar()
    ds_logging.set_verbosity_error()
    try:
        yield datasets
    finally:
        ds_logging.set_verbosity(verbosity)
        if bars:
            ds_logging.enable_progress_bar()


def _offline() -> str | None:
    """The variable that makes ``datasets`` offline, if one does (``datasets`` reads them
    when imported; HF_DATASETS_OFFLINE, when set, wins over HF_HUB_OFFLINE)."""
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        value = os.environ.get(name)
        if value is not None:
            return name if value.upper() in ("1", "ON", "YES", "TRUE") else None
    try:
        from datasets import config
    except ImportError:
        return None
    return "HF_HUB_OFFLINE" if config.HF_HUB_OFFLINE else None


#: Datasets loaded in this process: a command checks, fingerprints and reads its input,
#: and ``load_dataset`` takes a while even from the cache. Keyed by the source and the
#: state of local files, so a folder edited between two commands is loaded again.
_LOADED: dict[tuple[Any, ...], Any] = {}


def _load_dataset(source: Source) -> Any:
    """The ``datasets.Dataset`` of a folder or ``hf://`` source (one split)."""
    datasets = _require("datasets", source)
    cache = str(datasets.config.HF_DATASETS_CACHE)
    key = (source, _offline(), cache, _files_state(source.path))
    if key not in _LOADED:
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = _load_dataset_uncached(source)
    return _LOADED[key]


def _files_state(folder: Path) -> tuple[Any, ...]:
    """Sizes and modification times of a local folder's files (empty for a Hub name)."""
    if not folder.is_dir():
        return ()
    return tuple(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    )


def _load_dataset_uncached(source: Source) -> Any:
    with _quiet_datasets() as datasets:
        if source.kind == "disk":
            split = _disk_split(source)
            try:
                loaded = datasets.load_from_disk(str(source.path))
            except Exception as exc:  # noqa: BLE001 - any failure is the folder's
                reason = f"cannot load the dataset ({_one_line(exc)})"
                raise DataError(source.name, reason) from None
            return loaded[split] if split is not None else loaded
        try:
            loaded = datasets.load_dataset(str(source.path), source.config, split=source.split)
        except Exception as exc:  # noqa: BLE001 - reported in one line below
            raise _hub_error(source, exc) from None
        if isinstance(loaded, dict):  # a DatasetDict: no split given
            base = source.name.rsplit(":", 1)[0] if source.config else source.name
            return loaded[_choose_split(source, list(loaded), base)]
        return loaded


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _hub_error(source: Source, exc: BaseException) -> DataError:
    message = _one_line(exc)
    offline = _offline()
    if offline and (isinstance(exc, (ConnectionError, FileNotFoundError)) or "Offline" in message):
        return DataError(
            source.name,
            f"not in the local datasets cache ({offline} is set, so nothing is downloaded; "
            "run once online to cache it, or name a local folder)",
        )
    if type(exc).__name__ == "DatasetNotFoundError":
        return DataError(source.name, f"no such dataset ({message})")
    if "Unknown split" in message:
        return DataError(source.name, f'no split "{source.split}" ({message})')
    return DataError(source.name, f"cannot load the dataset ({message})")


def _dataset_table(dataset: Any) -> Any:
    """The dataset's rows as one Arrow table (indices applied)."""
    if getattr(dataset, "_indices", None) is not None:
        dataset = dataset.flatten_indices()
    return dataset.data.table


def _dataset_class_names(dataset: Any) -> dict[str, list[str]]:
    try:
        return _class_names(dataset.features.to_dict())
    except Exception:  # noqa: BLE001 - features that do not serialise carry no labels
        return {}


def _iter_dataset(
    source: Source, rejects: list[Rejected] | None, spec: RecordSpec | None
) -> Iterator[tuple[int, str, Any]]:
    dataset = _load_dataset(source)
    _check_text_column(source, _visible(dataset.column_names), spec)
    table = _dataset_table(dataset)
    batches = table.to_batches(max_chunksize=_BATCH)
    yield from _arrow_rows(source, batches, _dataset_class_names(dataset), rejects, spec)


# ---------------------------------------------------------------------- random access


class RowAccess:
    """Rows of a CSV, Parquet or datasets source read back one at a time by the offset
    :func:`row_offset` gave (a byte offset in a CSV file, a row index otherwise), so a
    trainer holds one integer a row rather than Python strings: a CSV is read from disk,
    a dataset is memory-mapped, a Parquet file is held as one columnar Arrow table."""

    def __init__(self, source: Source, spec: RecordSpec | None = None) -> None:
        self.source = source
        self.spec = spec
        self._handle: BinaryIO | None = None
        self._header: list[str] | None = None
        self._table: Any = None
        self._class_names: dict[str, list[str]] = {}
        if source.kind in ("csv", "tsv"):
            self._handle = source.path.open("rb")
            self._header = _csv_header(source) or []
        elif source.kind == "parquet":
            parquet = _parquet_file(source)
            self._class_names = _parquet_class_names(parquet)
            self._table = parquet.read()
        else:
            dataset = _load_dataset(source)
            self._class_names = _dataset_class_names(dataset)
            self._table = _dataset_table(dataset)

    def row(self, offset: int) -> tuple[str, dict[str, Any]]:
        """The raw text and row dict at ``offset``."""
        if self._handle is not None:
            self._handle.seek(offset)
            records = _csv_records(
                self._handle, self.source, None, self.spec, header=self._header, start=(1, offset)
            )
            _, _, raw, row = next(records)
            return raw, row
        row = self._table.slice(offset, 1).to_pylist()[0]
        obj = _arrow_row(row, self._class_names, self.spec)
        return json.dumps(obj, ensure_ascii=False, default=str), obj

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def row_offset(source: Source, number: int, line_starts: Sequence[int]) -> int:
    """Where row ``number`` (as :func:`iter_rows` numbers it) starts, for :class:`RowAccess`:
    the byte offset of its first line in a text file, its 0-based index otherwise."""
    return line_starts[number - 1] if source.is_text else number - 1


# ---------------------------------------------------------------------- fingerprints


def dataset_fingerprint(path: str | Path) -> dict[str, Any]:
    """``{"path", "bytes", "sha256"}`` of a datasets folder (the content of its files) or
    an ``hf://`` dataset (the name, config, split and datasets' own fingerprint, which
    follows the cached data)."""
    source = source_of(path)
    digest = hashlib.sha256()
    size = 0
    if source.kind == "disk":
        split = _disk_split(source)
        folder = source.path / split if split is not None else source.path
        if not folder.is_dir():  # a DatasetDict saved elsewhere than its split folders
            folder = source.path
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(folder)).encode("utf-8") + b"\0")
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            size += file.stat().st_size
    else:
        dataset = _load_dataset(source)
        identity = [str(source.path), source.config, source.split, dataset._fingerprint]
        digest.update(json.dumps(identity).encode("utf-8"))
        size = sum(int(Path(f["filename"]).stat().st_size) for f in dataset.cache_files)
    return {"path": source.name, "bytes": size, "sha256": digest.hexdigest()}


# ---------------------------------------------------------------------------- writing


def output_format(path: str | Path, chosen: str = "auto") -> str:
    """The format to write: ``chosen``, or for ``auto`` the output's suffix (JSONL unless
    .csv, .tsv or .parquet)."""
    if chosen != "auto":
        return chosen
    kind = SUFFIXES.get(Path(path).suffix.lower(), "jsonl")
    return kind


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def write_table(
    path: str | Path, rows: Sequence[dict[str, Any]], fmt: str, *, option: str = "--output"
) -> None:
    """Write rows (dicts as JSONL would hold them) as CSV, TSV or Parquet, all at once:
    to ``<out>.tmp`` and renamed, so a failure leaves nothing half-written.

    Columns are the union of the rows' keys, in first-seen order; ``label_dist`` and
    ``aug`` are JSON strings (read back as objects); CSV cells are text.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    columns = _columns(rows)
    try:
        if fmt in ("csv", "tsv"):
            with tmp.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, delimiter="\t" if fmt == "tsv" else ",")
                writer.writerow(columns)
                for row in rows:
                    writer.writerow([_cell(row.get(name)) for name in columns])
                handle.flush()
                os.fsync(handle.fileno())
        elif fmt == "parquet":
            _write_parquet(tmp, rows, columns, option)
        else:  # pragma: no cover - callers write JSONL with JsonlWriter
            raise ValueError(f"unknown table format {fmt!r}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_parquet(
    tmp: Path, rows: Sequence[dict[str, Any]], columns: list[str], option: str
) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise AugtoolError(
            f"{option}: writing Parquet needs the 'pyarrow' package: {EXTRA_HINT}"
        ) from None
    data: dict[str, list[Any]] = {}
    for name in columns:
        values = [row.get(name) for row in rows]
        if name in OBJECT_FIELDS:
            values = [None if v is None else _cell(v) for v in values]
        data[name] = values
    try:
        table = pa.table({name: pa.array(values) for name, values in data.items()})
    except (pa.ArrowException, ValueError, TypeError) as exc:
        bad = next((n for n, v in data.items() if not _arrow_ok(pa, v)), "?")
        raise AugtoolError(
            f'{option}: cannot write Parquet: column "{bad}" mixes types ({_one_line(exc)}); '
            "write JSONL instead"
        ) from None
    pq.write_table(table, tmp)


def _arrow_ok(pa: Any, values: list[Any]) -> bool:
    try:
        pa.array(values)
    except (pa.ArrowException, ValueError, TypeError):
        return False
    return True
