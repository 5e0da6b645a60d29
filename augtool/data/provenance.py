"""Provenance: the ``<out>.meta.json`` sidecar, run keys and the ``aug`` field of new rows."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from augtool import __version__
from augtool.data.writer import sidecar, write_json

_TRACKED_PACKAGES = ("torch", "transformers", "sentence-transformers", "numpy", "scikit-learn")


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """Path, size and sha256 of an input file."""
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def config_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (or mapping)."""
    if is_dataclass(config) and not isinstance(config, type):
        return json.loads(json.dumps(asdict(config), default=str))
    return json.loads(json.dumps(dict(config), default=str))


def run_key(*parts: Any) -> str:
    """A stable hash of a job's defining parts (config, input fingerprints, ...)."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def machine() -> dict[str, Any]:
    """The machine a run was measured on: a figure means little without it."""
    import os

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def utc_now() -> str:
    """The current time, ISO 8601 in UTC to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def environment() -> dict[str, Any]:
    """Versions that matter for reproducing a run."""
    versions: dict[str, str] = {}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "augtool": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
    }


def build_meta(
    command: str,
    *,
    config: Any = None,
    inputs: Sequence[str | Path] = (),
    counts: Mapping[str, Any] | None = None,
    models: Mapping[str, Any] | None = None,
    seed: int | None = None,
    started: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to say how an output was made."""
    meta: dict[str, Any] = {
        "command": command,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config_dict(config) if config is not None else None,
        "inputs": [file_fingerprint(path) for path in inputs if Path(path).is_file()],
        "models": dict(models or {}),
        "seed": seed,
        "counts": dict(counts or {}),
        "environment": environment(),
    }
    if started is not None:
        meta["timings"] = {"wall_seconds": round(time.time() - started, 3)}
    if extra:
        meta.update(extra)
    return meta


def write_meta(output: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write the provenance sidecar: ``<out>.meta.json``, or ``<dir>/meta.json`` for a folder."""
    output = Path(output)
    path = output / "meta.json" if output.is_dir() else sidecar(output, ".meta.json")
    write_json(path, dict(meta))
    return path


def make_aug(
    method: str,
    parents: Sequence[str],
    *,
    seed: int | None = None,
    **details: Any,
) -> dict[str, Any]:
    """The ``aug`` provenance field of an augmented row."""
    aug: dict[str, Any] = {"method": method, "parents": list(parents)}
    if seed is not None:
        aug["seed"] = seed
    aug.update({key: value for key, value in details.items() if value is not None})
    aug["augtool"] = __version__
    return aug
