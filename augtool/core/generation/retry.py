"""Retry timing and request-rate limiting for remote backends (pure, testable logic)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's ``Retry-After`` wins when present."""

    max_retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.5  # the delay is scaled by a factor in [1 - jitter, 1 + jitter]

    def delay(
        self, attempt: int, retry_after: str | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, self.max_delay)
        rng = rng or random
        backoff = min(self.max_delay, self.base_delay * (2**attempt))
        return backoff * rng.uniform(1 - self.jitter, 1 + self.jitter)


def retry_after_header(headers: Any) -> str | None:
    """The server's wait hint as ``Retry-After`` text (seconds or an HTTP date).

    ``retry-after-ms`` (milliseconds, sent by OpenAI and Azure) wins over ``retry-after``
    since it is the finer of the two.
    """
    milliseconds = headers.get("retry-after-ms") if headers is not None else None
    if milliseconds is not None:
        try:
            return str(max(0.0, float(milliseconds)) / 1000.0)
        except ValueError:
            pass
    return headers.get("retry-after") if headers is not None else None


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number of seconds or an HTTP date."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RateLimiter:
    """At most ``per_minute`` request starts per minute, spaced evenly (0: unlimited).

    One limiter lives as long as its backend, so the cap holds across batches. Inside an
    event loop the check-and-reserve step has no ``await``, so it needs no lock.
    """

    def __init__(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._next = 0.0

    def reserve(self) -> float:
        """Book the next start slot; returns how long to wait for it."""
        if self.interval <= 0:
            return 0.0
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self.interval
        return start - now

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
