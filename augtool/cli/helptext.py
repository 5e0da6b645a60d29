"""Command help as flowing text: docstrings are wrapped at 100 columns in the source, and
Rich would keep those line breaks in ``--help`` (mid-sentence, and in the command lists).
Paragraphs (blank-line separated) are kept; lines inside one are joined, except list
items, which keep their own lines."""

from __future__ import annotations

import inspect
import re
from typing import Any

_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s")


def flow(text: str) -> str:
    """``text`` with the line breaks inside each paragraph replaced by spaces."""
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", inspect.cleandoc(text)):
        lines: list[str] = []
        for line in paragraph.splitlines():
            if lines and not _LIST_ITEM.match(line):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.rstrip())
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _flowed(help_text: str | None, callback: Any) -> str | None:
    text = help_text if help_text is not None else inspect.getdoc(callback) if callback else None
    return flow(text) if text else text


def flow_help(app: Any) -> None:
    """Flow the help of every command and group registered under the typer ``app``."""
    for command in app.registered_commands:
        command.help = _flowed(command.help, command.callback)
    for group in app.registered_groups:
        info = group.typer_instance.info
        group.help = _flowed(group.help, None)
        info.help = _flowed(info.help, info.callback)
        flow_help(group.typer_instance)
