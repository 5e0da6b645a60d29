"""Safe outputs: refuse to clobber, write incrementally to ``<out>.partial``, resume, rename.

A long job opens a :class:`JsonlWriter`, skips the ids in ``writer.done_ids`` (rows a
previous, interrupted run already wrote), writes the rest batch by batch and calls
:meth:`JsonlWriter.commit` at the end. Until then the output path itself never exists,
so nothing half-written can be mistaken for a finished file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from augtool.data.jsonl import Rejected
from augtool.data.lock import OutputLock, lock_output
from augtool.data.records import FieldMap, Record
from augtool.errors import AugtoolError, OutputExistsError


def sidecar(path: str | Path, suffix: str) -> Path:
    """``<path><suffix>``, e.g. ``out.jsonl`` -> ``out.jsonl.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + suffix)


def prepare_output(
    path: str | Path,
    *,
    overwrite: bool = False,
    inputs: Sequence[str | Path] = (),
    option: str = "--output",
) -> Path:
    """Check an output path before any work: not an input, not existing unless overwriting.

    Creates the parent directory. Inputs are never overwritten, even with ``overwrite``.
    """
    path = Path(path)
    for source in inputs:
        if Path(source).resolve() == path.resolve():
            raise AugtoolError(f"{option} {path}: is also an input; refusing to overwrite inputs")
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AugtoolError(f"{option} {path}: cannot create its folder ({exc.strerror})") from exc
    return path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a whole text file so that readers see the old file or the new one, never half."""
    path = Path(path)
    tmp = sidecar(path, ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def finite_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by ``null``: bare ``NaN`` is not JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(value) for value in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (non-finite numbers become ``null``)."""
    text = json.dumps(finite_json(obj), indent=2, ensure_ascii=False, default=str)
    atomic_write_text(path, text + "\n")


def dumps_row(obj: dict[str, Any]) -> str:
    """One JSONL line; a row holding NaN or an infinity is refused (it would not parse)."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        row_id = obj.get("id", "?") if isinstance(obj, dict) else "?"
        raise AugtoolError(
            f"row {row_id}: holds NaN or an infinity, which JSON cannot represent; "
            "refusing to write it"
        ) from exc


def notify_discard(message: str) -> None:
    """Say on stderr that unfinished work was thrown away (the CLI's warning style)."""
    from augtool.cli.console import print_warning

    print_warning(message)


def announce_discard(where: str | Path, what: str, old_parts: Any, new_key: str) -> None:
    """One warning line: ``WHERE: discarded WHAT of an unfinished earlier run that differs
    from this one (--seed 7 -> 8); starting over`` (the differences as far as the earlier
    run recorded its key's parts)."""
    from augtool.data.provenance import key_differences

    new_parts = getattr(new_key, "parts", None)
    changes = (
        key_differences(old_parts, new_parts)
        if isinstance(old_parts, dict) and isinstance(new_parts, dict)
        else []
    )
    why = "; ".join(changes) if changes else "other settings, inputs or models"
    notify_discard(
        f"{where}: discarded {what} of an unfinished earlier run that differs from this one "
        f"({why}); starting over"
    )


def write_rejects(output: str | Path, rejects: Sequence[Rejected]) -> Path | None:
    """Write rows skipped under ``--skip-invalid`` to ``<output>.rejects.jsonl``
    (``<output>/rejects.jsonl`` when the output is a folder)."""
    if not rejects:
        return None
    output = Path(output)
    path = output / "rejects.jsonl" if output.is_dir() else sidecar(output, ".rejects.jsonl")
    lines = [json.dumps(item.to_dict(), ensure_ascii=False) for item in rejects]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def completion_record(output: str | Path, run_key: str) -> dict[str, Any]:
    """Meta fields that let a rerun recognise a finished output (see :func:`output_is_current`)."""
    output = Path(output)
    size = None if output.is_dir() else output.stat().st_size
    return {"run_key": str(run_key), "output_bytes": size}


def output_is_current(output: str | Path, run_key: str) -> bool:
    """True when ``output`` is a finished run of this very job (same key in its meta file,
    same size as written; for a folder, its ``meta.json``), so rerunning it would only redo
    the same work."""
    output = Path(output)
    meta_path = output / "meta.json" if output.is_dir() else sidecar(output, ".meta.json")
    if not output.exists() or not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    size = None if output.is_dir() else output.stat().st_size
    return (
        isinstance(meta, dict)
        and meta.get("run_key") == str(run_key)
        and meta.get("output_bytes") == size
    )


def key_state(key: str) -> dict[str, Any]:
    """What a job records about its run key: the key and its parts (to explain discards)."""
    return {"run_key": str(key), "key_parts": getattr(key, "parts", None)}


def announce_stale(where: str | Path, state_file: str | Path, key: str) -> None:
    """Warn, before unfinished work in ``where`` is thrown away, when ``state_file``
    records another job's key (a missing or unreadable state says nothing)."""
    try:
        state = json.loads(Path(state_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(state, dict) and state.get("run_key") not in (None, str(key)):
        announce_discard(where, "the work", state.get("key_parts"), key)


def reset_staging(staging: Path, state_file: Path, key: str, *, resuming: bool) -> None:
    """Create a trainer's staging folder; unless ``resuming`` this run's checkpoint, first
    throw away what is there (announced when it was another job's)."""
    if not resuming and staging.exists():
        announce_stale(staging, state_file, key)
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)


class JsonlWriter:
    """Append-only JSONL output with resume.

    ``run_key`` identifies the job (config and inputs): an interrupted partial file with
    the same key is resumed (its complete rows are kept and their ids reported in
    :attr:`done_ids`); one with another key is discarded, since mixing the outputs of two
    different jobs would be wrong, and a warning names what differs. The output is locked
    (``<out>.lock``) from here to :meth:`close`/:meth:`commit`: a second run writing the
    same output is refused.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        run_key: str,
        fields: FieldMap | None = None,
        overwrite: bool = False,
        inputs: Sequence[str | Path] = (),
        option: str = "--output",
    ) -> None:
        self.path = prepare_output(path, overwrite=overwrite, inputs=inputs, option=option)
        self.partial = sidecar(self.path, ".partial")
        self.state_path = sidecar(self.path, ".partial.json")
        self.run_key = run_key
        self.fields = fields
        self.done_ids: set[str] = set()
        #: The rows kept from an interrupted run, as written.
        self.resumed_rows: list[dict[str, Any]] = []
        self.discarded_partial = False
        self.written = 0
        self._lock: OutputLock = lock_output(self.path, option=option)
        try:
            self._load_partial()
            state = {"run_key": str(run_key), "parts": getattr(run_key, "parts", None)}
            atomic_write_text(self.state_path, json.dumps(state, default=str))
            self._handle = self.partial.open("a", encoding="utf-8")
        except BaseException:
            self._lock.release()
            raise

    @property
    def resumed(self) -> int:
        """How many rows were kept from an interrupted run."""
        return len(self.done_ids)

    def _load_partial(self) -> None:
        if not self.partial.exists():
            return
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        if state.get("run_key") != self.run_key:
            self._discard(state)
            return
        keep = 0
        with self.partial.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # a line cut short by the interruption
                try:
                    row = json.loads(raw)
                except ValueError:
                    break
                self.resumed_rows.append(row)
                row_id = row.get(self.fields.id if self.fields else "id")
                if row_id is not None:
                    self.done_ids.add(str(row_id))
                keep += len(raw)
        with self.partial.open("r+b") as handle:
            handle.truncate(keep)

    def _discard(self, state: dict[str, Any]) -> None:
        """Drop a partial output made by a different job, saying what differed."""
        with self.partial.open("rb") as handle:
            rows = sum(1 for raw in handle if raw.endswith(b"\n"))
        self.partial.unlink()
        self.discarded_partial = True
        announce_discard(self.partial, f"{rows} rows", state.get("parts"), self.run_key)

    def write(self, rows: Iterable[Record | dict[str, Any]]) -> int:
        """Append rows and flush them to disk; returns how many were written."""
        count = 0
        lines = []
        for row in rows:
            obj = row.to_dict(self.fields) if isinstance(row, Record) else row
            lines.append(dumps_row(obj) + "\n")
            count += 1
        if lines:
            self._handle.write("".join(lines))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        self.written += count
        return count

    def close(self) -> None:
        """Close without finishing: the partial file stays for a later resume."""
        if not self._handle.closed:
            self._handle.close()
        self._lock.release()

    def commit(self) -> Path:
        """Finish: rename the partial file onto the output path."""
        if not self._handle.closed:
            self._handle.close()
        try:
            os.replace(self.partial, self.path)
            self.state_path.unlink(missing_ok=True)
        finally:
            self._lock.release()
        return self.path

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_output_folder(
    path: str | Path, *, overwrite: bool, marker: str, kind: str = "model"
) -> Path:
    """A model folder to write: refused if it exists without ``overwrite``, and never
    replaced when it holds something else (no ``marker`` file in it)."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise OutputExistsError(path)
        if path.is_file() or (any(path.iterdir()) and not (path / marker).is_file()):
            raise AugtoolError(
                f"--output {path}: exists and is not an augtool {kind} folder; "
                "refusing to replace it"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def publish_folder(staging: str | Path, output: str | Path) -> Path:
    """Move a finished ``<out>.partial`` folder onto ``<out>`` (replacing an old one)."""
    import shutil

    output = Path(output)
    if output.exists():
        shutil.rmtree(output)
    os.replace(staging, output)
    return output
