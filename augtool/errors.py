"""User-facing errors.

Everything a user can get wrong (bad input files, bad options, missing models) raises an
:class:`AugtoolError`. The CLI prints its one-line message and exits non-zero; a
traceback is reserved for bugs in augtool itself.
"""

from __future__ import annotations

from pathlib import Path


def source_name(path: str | Path) -> str:
    """How messages name a data source: as given, but ``hf://NAME`` always so (a
    :class:`~pathlib.Path` collapses ``hf://`` to ``hf:/``; ``hf:///abs`` is ``hf://abs``)."""
    text = str(path)
    if text.startswith("hf:/"):
        return "hf://" + text[3:].lstrip("/")
    return text


class AugtoolError(Exception):
    """Base class for errors caused by the user's input, options or environment."""

    exit_code = 1


class DataError(AugtoolError):
    """A problem with an input data file, located by file and (when known) line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = source_name(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class OptionError(AugtoolError):
    """An invalid option or configuration value, named by its CLI option."""

    exit_code = 2

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        cli_name = "--" + option.replace("_", "-") if not option.startswith("-") else option
        super().__init__(f"{cli_name}: {message}")


class OutputExistsError(AugtoolError):
    """Refusing to overwrite an existing output."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(f"{path}: output already exists (pass --overwrite to replace it)")


class ModelError(AugtoolError):
    """A model (encoder, task model, LLM) that cannot be found or loaded."""
