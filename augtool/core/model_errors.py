"""One line for a model that cannot be loaded from disk.

Model loaders (safetensors, transformers, sentence-transformers, torch, json) raise many
kinds of errors for a damaged folder: a truncated ``head.safetensors`` gives a
``SafetensorError`` with a 40-line traceback, a garbled ``config.json`` an ``OSError``
over several lines. Every place augtool loads a model from disk runs inside
:func:`model_load_errors`, which turns them into one :class:`ModelError`::

    cannot load model runs/base: Error while deserializing header: header too large

Errors that already are :class:`AugtoolError` (a missing folder, "not an augtool model
folder", a label mismatch) pass through unchanged, as do ``KeyboardInterrupt``,
``SystemExit`` and ``ModuleNotFoundError`` (the CLI names the extra to install).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from augtool.errors import AugtoolError, ModelError

#: The longest reason kept from a loader's error message.
MAX_REASON = 200


def load_reason(exc: BaseException, limit: int = MAX_REASON) -> str:
    """The first line of ``exc``'s message, whitespace collapsed, at most ``limit`` chars.

    An empty message gives the exception's type; a ``KeyError`` (a config without a
    required entry) says which entry is missing.
    """
    text = str(exc).strip()
    first = " ".join(text.splitlines()[0].split()) if text else ""
    if not first:
        first = type(exc).__name__
    elif isinstance(exc, KeyError):
        first = f"missing entry {first}"
    if len(first) > limit:
        first = first[: limit - 3].rstrip() + "..."
    return first


class ModelLoadError(ModelError):
    """``cannot load <kind> <path>: <reason>``: a model on disk that its loader rejected."""

    def __init__(self, path: str | Path, kind: str, reason: str) -> None:
        self.path = str(path)
        self.kind = kind
        self.reason = reason
        super().__init__(f"cannot load {kind} {self.path}: {reason}")


def load_error(path: str | Path, exc: BaseException, kind: str = "model") -> ModelLoadError:
    """``cannot load <kind> <path>: <reason>`` for a loader's exception."""
    return ModelLoadError(path, kind, load_reason(exc))


def _inside(inner: str, outer: str | Path) -> str | None:
    """``inner`` relative to the folder ``outer``, when it lies inside it."""
    if not Path(inner).exists():  # a hub id, not a folder
        return None
    try:
        relative = Path(inner).resolve().relative_to(Path(outer).resolve())
    except (OSError, ValueError):
        return None
    return relative.as_posix() if relative.parts else None


@contextmanager
def model_load_errors(path: str | Path, kind: str = "model", *, hint: str = "") -> Iterator[None]:
    """Run a model load; any loader failure becomes ``cannot load <kind> <path>: <reason>``.

    ``path`` is the folder (or hub id) as the user gave it; ``kind`` what it is
    (``model``, ``encoder``, ``LLM``, ``decoder``...). :class:`AugtoolError` (clearer
    messages raised inside), ``ModuleNotFoundError`` and non-``Exception`` signals such
    as ``KeyboardInterrupt`` pass through. A nested load of a part inside ``path`` (a
    task model's ``encoder/``) is reported as ``cannot load <kind> <path>: <part>: ...``.
    ``hint`` (what to do about it) goes after the reason, in brackets.
    """
    suffix = f" ({hint})" if hint else ""
    try:
        yield
    except ModelLoadError as exc:
        part = _inside(exc.path, path)
        if part is None:
            raise
        # A part of this model (its encoder/ folder) failed: name the model the user gave.
        raise ModelLoadError(path, kind, f"{part}: {exc.reason}{suffix}") from exc
    except (AugtoolError, ModuleNotFoundError):
        raise
    except Exception as exc:  # noqa: BLE001 - loaders raise every kind of error
        raise ModelLoadError(path, kind, load_reason(exc) + suffix) from exc


def check_safetensors(folder: str | Path) -> None:
    """Open the header of every ``*.safetensors`` file in ``folder`` (not the tensors):
    a truncated or garbled weights file fails here, in milliseconds, rather than after
    a job has started. Raises what safetensors raises; run it inside
    :func:`model_load_errors`. A hub id (no local folder) is left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    from safetensors import safe_open

    for path in sorted(folder.glob("*.safetensors")):
        with model_load_errors(path, "weights"), safe_open(str(path), framework="numpy"):
            pass


__all__ = [
    "MAX_REASON",
    "ModelLoadError",
    "check_safetensors",
    "load_error",
    "load_reason",
    "model_load_errors",
]
