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
    """Path, size and sha256 of an input file; for a datasets folder or ``hf://``
    dataset, of its data (:func:`augtool.data.formats.dataset_fingerprint`)."""
    if not Path(path).is_file():
        from augtool.data.formats import dataset_fingerprint, is_dataset_source

        if is_dataset_source(path):
            return dataset_fingerprint(path)
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _is_input(path: str | Path) -> bool:
    """A file or dataset (folder, ``hf://``) that :func:`build_meta` fingerprints."""
    from augtool.data.formats import is_dataset_source

    return Path(path).is_file() or is_dataset_source(path)


def config_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (or mapping)."""
    if is_dataclass(config) and not isinstance(config, type):
        return json.loads(json.dumps(asdict(config), default=str))
    return json.loads(json.dumps(dict(config), default=str))


class RunKey(str):
    """A run key (a hex digest) that remembers the parts it hashes.

    A partial output records them, so that when a rerun with another key discards it,
    the message can name what differs (``--seed 7 -> 8``, ``input content``).
    """

    parts: dict[str, Any]

    def __new__(cls, digest: str, parts: dict[str, Any]) -> RunKey:
        key = super().__new__(cls, digest)
        key.parts = parts
        return key


def _normalise(value: Any) -> Any:
    """Make a key part independent of how paths were spelled.

    A file fingerprint (a dict with ``sha256``) keeps its content hash and size only, so
    ``./train.jsonl`` and ``/abs/train.jsonl`` give one key; ``Path`` values are resolved.
    """
    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if isinstance(value, dict):
        if "sha256" in value:
            return {k: _normalise(v) for k, v in value.items() if k != "path"}
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _describable(name: str, value: Any) -> dict[str, Any]:
    """Flatten one named part into ``label -> short value`` entries for messages."""
    if name in ("settings", "config") and isinstance(value, dict):
        return {
            f"--{str(k).replace('_', '-')}": v if _is_short(v) else "#" + _digest(v)[:12]
            for k, v in value.items()
        }
    if _is_short(value) and not _looks_like_hash(value):
        return {name: value}
    return {name: "#" + _digest(value)[:12]}


def _looks_like_hash(value: Any) -> bool:
    """A content fingerprint (hex digest): shown as "content", not as its digits."""
    text = str(value).split(":")[-1]
    return isinstance(value, str) and len(text) >= 16 and all(c in "0123456789abcdef" for c in text)


def _is_short(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, (bool, int, float))
        or (isinstance(value, str) and len(value) <= 80)
    )


def run_key(*parts: Any, **named: Any) -> RunKey:
    """A stable hash of a job's defining parts (config, input and model fingerprints...).

    Name the parts (``settings=``, ``input=``, ``model=``) so a discarded partial can be
    explained; ``settings`` is a config dict whose keys are option names. File
    fingerprints count by content only, and paths are resolved (see :func:`_normalise`).
    """
    normal_parts = [_normalise(p) for p in parts]
    normal_named = {k: _normalise(v) for k, v in named.items()}
    digest = _digest([normal_parts, normal_named] if named else normal_parts)[:32]
    described: dict[str, Any] = {}
    for index, part in enumerate(normal_parts):
        described.update(_describable("command" if index == 0 else f"part {index}", part))
    for name, part in normal_named.items():
        described.update(_describable(name, part))
    return RunKey(digest, described)


def described_parts(**named: Any) -> dict[str, Any]:
    """The ``label -> short value`` form of named key parts (as :func:`run_key` records
    them), for keys hashed another way (streamed) that should still explain discards."""
    described: dict[str, Any] = {}
    for name, part in named.items():
        described.update(_describable(name, _normalise(part)))
    return described


def key_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the described parts of two run keys, one phrase each."""
    changes = []
    for label in sorted(set(old) | set(new), key=lambda item: (item.startswith("part"), item)):
        before, after = old.get(label, "(unset)"), new.get(label, "(unset)")
        if before == after:
            continue
        if str(before).startswith("#") or str(after).startswith("#"):
            changes.append(f"{label} content")
        else:
            changes.append(f"{label} {before} -> {after}")
    return changes


def content_fingerprint(path: str | Path) -> dict[str, Any]:
    """Size and sha256 of a file: what a run key needs (the path does not count)."""
    return {k: v for k, v in file_fingerprint(path).items() if k != "path"}


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
        "inputs": [file_fingerprint(path) for path in inputs if _is_input(path)],
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
