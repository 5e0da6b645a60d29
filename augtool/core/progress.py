"""Progress reporting for long jobs, decoupled from how it is shown.

Library code asks a :class:`Reporter` for a task and calls the returned ``advance``
function; the CLI passes a reporter that draws rich progress bars, library users get the
silent default.
"""

from __future__ import annotations

from collections.abc import Callable

Advance = Callable[[int], None]


class Reporter:
    """Does nothing; subclass to show progress (see ``augtool.cli.console.RichReporter``)."""

    def task(self, description: str, total: int | None, completed: int = 0) -> Advance:
        """Start a task of ``total`` units; returns a function that advances it."""
        return _ignore

    def log(self, message: str) -> None:
        """A one-line status message."""


def _ignore(_: int) -> None:
    return None


SILENT = Reporter()
