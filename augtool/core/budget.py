"""A wall-clock budget for training loops (``--max-minutes``), carried across resumes.

Trainers keep the seconds already spent in their checkpoint's progress, so an interrupted
run that resumes spends only what is left. A run stopped by its budget is saved as it
stands: its weights depend on the machine's speed, which the history records
(``stopped: "time budget"``).
"""

from __future__ import annotations

import time

STOPPED_BY_BUDGET = "time budget"


class TimeBudget:
    """Seconds spent so far (earlier runs included) against an optional limit."""

    def __init__(self, max_minutes: float | None, spent: float = 0.0) -> None:
        self.limit = None if max_minutes is None else float(max_minutes) * 60.0
        self._before = float(spent)
        self._started = time.monotonic()

    @property
    def spent(self) -> float:
        """Seconds spent, this run and the runs it resumed."""
        return self._before + time.monotonic() - self._started

    def exhausted(self, limit: float | None = None) -> bool:
        """True once ``limit`` seconds (default: the whole budget) are spent."""
        limit = self.limit if limit is None else limit
        return limit is not None and self.spent >= limit

    def share(self, fraction: float) -> float | None:
        """Seconds of ``fraction`` of the budget (None without a budget)."""
        return None if self.limit is None else self.limit * fraction
