"""Float32 vectors on disk: a ``.npy`` file written once in chunks, read a few rows at a time.

A trainer that needs a vector per corpus row (``pinr train-decoder``: each text's
embedding) computes them once into ``<name>.npy`` beside its checkpoint and reads each
batch's rows back with plain reads. The file is never mapped: the pages of a mapped file
that a process has touched count in its resident memory, so an epoch over a mapped
array would grow it by the array's size. ``np.load(path, mmap_mode="r")`` opens the file
for a look.

A sidecar ``<name>.json`` records the row count, the width, a fingerprint of what the
vectors are of and how many rows are written, so an interrupted fill resumes where it
stopped and a file for other texts (or another encoder) is recomputed, never reused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_DTYPE = np.dtype("<f4")


class VectorFile:
    """``rows`` float32 vectors of one ``fingerprint`` at ``path`` (a ``.npy``)."""

    def __init__(self, path: str | Path, rows: int, fingerprint: str) -> None:
        self.path = Path(path)
        self.meta_path = self.path.with_suffix(".json")
        self.rows = int(rows)
        self.fingerprint = fingerprint

    def _meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("rows") != self.rows or meta.get("fingerprint") != self.fingerprint:
            return None
        return meta

    @property
    def done(self) -> int:
        """Rows already written for this fingerprint (0 when the file is absent or of other
        vectors, or is shorter than its record says)."""
        meta = self._meta()
        if meta is None or not self.path.is_file():
            return 0
        done = int(meta.get("done", 0))
        expected = int(meta.get("offset", 0)) + done * int(meta.get("dim", 0)) * _DTYPE.itemsize
        return done if done and self.path.stat().st_size >= expected else 0

    @property
    def complete(self) -> bool:
        return self.done == self.rows

    def write(self, start: int, block: np.ndarray) -> None:
        """Write ``block`` as rows ``start`` onwards; row 0 starts a new file. Rows must be
        written in order, a chunk after the last one written (or from 0)."""
        block = np.ascontiguousarray(block, dtype=_DTYPE)
        if block.ndim != 2 or start + len(block) > self.rows:
            raise ValueError(f"cannot write {block.shape} at row {start} of {self.rows}")
        if start == 0:
            self.remove()
            with self.path.open("wb") as handle:
                header = {"descr": _DTYPE.str, "fortran_order": False}
                np.lib.format.write_array_header_1_0(
                    handle, {**header, "shape": (self.rows, block.shape[1])}
                )
                meta = {"offset": handle.tell(), "dim": int(block.shape[1])}
            meta.update(rows=self.rows, fingerprint=self.fingerprint, done=0)
        else:
            meta = self._meta()
            if meta is None or meta["done"] != start or meta["dim"] != block.shape[1]:
                raise ValueError(f"row {start} does not follow the rows written")
        with self.path.open("r+b") as handle:
            handle.seek(meta["offset"] + start * meta["dim"] * _DTYPE.itemsize)
            handle.write(block.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        meta["done"] = start + len(block)
        staging = self.meta_path.with_name(self.meta_path.name + ".tmp")
        staging.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(staging, self.meta_path)

    @contextmanager
    def reader(self) -> Iterator[VectorReader]:
        """The complete file, open for reading rows."""
        meta = self._meta()
        if meta is None or meta["done"] != self.rows:
            raise ValueError(f"{self.path}: not all {self.rows} rows are written")
        with self.path.open("rb") as handle:
            yield VectorReader(handle, meta["offset"], self.rows, meta["dim"])

    def remove(self) -> None:
        """Delete the file and its record."""
        self.path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)


class VectorReader:
    """Rows of an open vector file, read with seek and read (nothing mapped, nothing kept)."""

    def __init__(self, handle: BinaryIO, offset: int, rows: int, dim: int) -> None:
        self.handle, self.offset, self.rows, self.dim = handle, offset, rows, dim
        self.row_bytes = dim * _DTYPE.itemsize

    def __len__(self) -> int:
        return self.rows

    def take(self, rows: list[int]) -> np.ndarray:
        """The vectors of ``rows``, in that order, as a fresh ``(len(rows), dim)`` array."""
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for position, row in enumerate(rows):
            if not 0 <= row < self.rows:
                raise IndexError(f"row {row} out of range ({self.rows} rows)")
            out[position] = self._read(self.offset + row * self.row_bytes, self.row_bytes)
        return out

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        """All rows in order, ``size`` at a time."""
        for start in range(0, self.rows, size):
            count = min(size, self.rows - start)
            data = self._read(self.offset + start * self.row_bytes, count * self.row_bytes)
            yield data.reshape(count, self.dim)

    def _read(self, position: int, length: int) -> np.ndarray:
        self.handle.seek(position)
        data = self.handle.read(length)
        if len(data) != length:
            raise OSError(f"short read: {len(data)} of {length} bytes at {position}")
        return np.frombuffer(data, dtype=_DTYPE)
