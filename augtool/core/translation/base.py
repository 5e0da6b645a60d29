"""Back-translation engines: text -> pivot language -> back.

An engine implements one method, :meth:`BackTranslator.translate` (a batch, one
direction); the round trip and batching live in the base class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal

Direction = Literal["forward", "backward"]


class BackTranslator(ABC):
    """Translate into a pivot language and back."""

    name: ClassVar[str] = ""
    batch_size: int = 32

    @abstractmethod
    def translate(self, texts: list[str], direction: Direction, seeds: list[int]) -> list[str]:
        """Translate one batch; ``seeds[i]`` seeds row ``i`` where sampling is used."""

    def round_trip(
        self, texts: list[str], seeds: list[int], progress: Callable[[int], None] | None = None
    ) -> list[str]:
        """Back-translations of ``texts``, batch by batch."""
        results: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            batch_seeds = seeds[start : start + self.batch_size]
            pivot = self.translate(batch, "forward", batch_seeds)
            results.extend(self.translate(pivot, "backward", batch_seeds))
            if progress is not None:
                progress(len(batch))
        return results

    def describe(self) -> dict[str, Any]:
        """Provenance: engine and models or modes."""
        return {"engine": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes or models."""
