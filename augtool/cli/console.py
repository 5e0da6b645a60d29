"""Rich consoles, error printing and the progress-bar reporter used by every command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from augtool.core.progress import Advance, Reporter

console = Console()
err_console = Console(stderr=True)


def say(message: str) -> None:
    """A status line on stdout (rich markup allowed), never wrapped."""
    console.print(message, soft_wrap=True, highlight=False, emoji=False)


def print_error(message: str) -> None:
    """One line on stderr, never wrapped, so scripts can grep it."""
    err_console.print(
        f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False, emoji=False
    )


def print_warning(message: str) -> None:
    err_console.print(
        f"[yellow]warning:[/] {escape(message)}", soft_wrap=True, highlight=False, emoji=False
    )


def print_note(message: str) -> None:
    err_console.print(escape(message), soft_wrap=True, highlight=False, emoji=False)


def print_json(obj: Any) -> None:
    """Machine-readable output on stdout (plain, no colour, no wrapping)."""
    print(json.dumps(obj, indent=2, ensure_ascii=False))


class RichReporter(Reporter):
    """Draws each task as a rich progress bar on stderr.

    The live display starts with the first task, so a command that fails before doing
    any work prints its error line and nothing else.
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.started = False

    def task(self, description: str, total: int | None, completed: int = 0) -> Advance:
        if not self.started:
            self.progress.start()
            self.started = True
        task_id = self.progress.add_task(description, total=total, completed=completed)

        def advance(amount: int) -> None:
            self.progress.advance(task_id, amount)

        return advance

    def log(self, message: str) -> None:
        self.progress.console.print(escape(message), soft_wrap=True, highlight=False)


@contextmanager
def progress_reporter() -> Iterator[RichReporter]:
    """A reporter whose bars live for the duration of the ``with`` block."""
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    reporter = RichReporter(progress)
    try:
        yield reporter
    finally:
        if reporter.started:
            progress.stop()
