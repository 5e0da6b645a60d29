"""``--help`` reads as flowing text: no line break inside a sentence of any command's or
group's help, in its own page or in the command lists."""

from __future__ import annotations

from typing import Any

import typer

from augtool.cli.app import app
from augtool.cli.helptext import flow


def _walk(command: Any, path: str = "augtool"):
    yield path, command
    if getattr(command, "commands", None):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_flow_joins_lines_inside_paragraphs_and_keeps_lists() -> None:
    text = """First line of a sentence
    that goes on here.

    A list:
    - one item
      continued
    - two
    """
    assert flow(text) == (
        "First line of a sentence that goes on here.\n\nA list:\n- one item continued\n- two"
    )


def test_no_help_text_breaks_mid_sentence() -> None:
    root = typer.main.get_command(app)
    seen = 0
    for path, command in _walk(root):
        for paragraph in (command.help or "").split("\n\n"):
            for before, after in zip(
                paragraph.splitlines(), paragraph.splitlines()[1:], strict=False
            ):
                assert after.lstrip().startswith(("-", "*", "•")) or after.lstrip()[:1].isdigit(), (
                    f"{path}: help breaks a line mid-paragraph: {before!r} / {after!r}"
                )
        seen += 1
    assert seen > 30  # every group and command was looked at
