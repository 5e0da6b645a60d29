"""Reading YAML (and JSON) files that users write, with one-line errors.

PyYAML's errors span several lines and name ``<unicode string>``; every YAML file
augtool reads goes through :func:`load_yaml_file`, which reports ``PATH:LINE:COLUMN:
problem`` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from augtool.errors import AugtoolError


def yaml_error_message(path: str | Path, exc: Exception) -> str:
    """``PATH:LINE:COLUMN: problem (context)`` for a PyYAML error, on one line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        reason = f"{problem} ({context})" if context else str(problem)
    else:
        reason = " ".join(str(exc).split()) or type(exc).__name__
    return f"{path}{where}: invalid YAML: {' '.join(reason.split())}"


def load_yaml_file(path: str | Path) -> Any:
    """The parsed content of a YAML/JSON file; :class:`AugtoolError` in one line if broken."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AugtoolError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    return load_yaml_text(text, path)


def load_yaml_text(text: str, path: str | Path) -> Any:
    """Parse YAML ``text`` read from ``path`` (named in errors)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AugtoolError(yaml_error_message(path, exc)) from exc
