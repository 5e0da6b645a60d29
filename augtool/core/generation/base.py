"""The LLM backend base class.

A backend implements :meth:`LLM.generate_batch`; :meth:`LLM.generate` does everything
else once: splitting work into batches, serving and filling the response cache, counting
requests against a budget and reporting progress.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from augtool.core.generation.cache import ResponseCache, response_key
from augtool.core.generation.params import Failure, GenerationParams, OptionScore, Prompt
from augtool.core.hub import cache_root
from augtool.errors import AugtoolError

Result = str | Failure
T = TypeVar("T")
OnResults = Callable[[list[int], list[Result], bool], None]


class RequestBudgetExhausted(AugtoolError):
    """``--max-requests`` reached; finished results are kept, a rerun continues."""

    exit_code = 3


class RequestBudget:
    """Counts calls to the backend (cache hits are free) against an optional cap."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.used = 0

    def take(self, batch: list[T]) -> list[T]:
        """The part of ``batch`` the budget still allows, counted as spent; raises
        :class:`RequestBudgetExhausted` when nothing is left."""
        if self.limit is not None:
            batch = batch[: max(0, self.limit - self.used)]
            if not batch:
                raise RequestBudgetExhausted(
                    f"--max-requests {self.limit} reached; rerun to continue"
                )
        self.used += len(batch)
        return batch


@dataclass(frozen=True)
class Uncached:
    """The requests of one :meth:`LLM.generate` call that the cache did not answer:
    indices ``todo`` into ``prompts``/``seeds``, and where their replies go."""

    todo: list[int]
    prompts: Sequence[Prompt]
    params: GenerationParams
    seeds: Sequence[int]
    budget: RequestBudget | None
    store: Callable[[int, Result], None]
    deliver: Callable[[list[int], list[Result]], None]


class LLM(ABC):
    """A text generator behind a ``scheme:model`` spec."""

    scheme: ClassVar[str] = ""
    #: How many requests :meth:`generate` hands to :meth:`generate_batch` at once.
    batch_size: int = 16

    def __init__(self, model: str, *, cache: bool = True, cache_dir: str | Path | None = None):
        self.model = model
        self.cache_enabled = cache
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "llm"
        self._cache: ResponseCache | None = None

    @abstractmethod
    def generate_batch(
        self, prompts: list[Prompt], params: GenerationParams, seeds: list[int]
    ) -> list[Result]:
        """One reply per prompt; a request that fails after retries yields a :class:`Failure`."""

    def identity(self) -> dict[str, Any]:
        """What identifies this model in cache keys and provenance."""
        return {"backend": self.scheme, "model": self.model}

    def check(self) -> None:  # noqa: B027 - optional pre-flight hook
        """Fail fast, before a run, when the backend cannot work (unreachable, no key)."""

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    @property
    def cache(self) -> ResponseCache | None:
        if not self.cache_enabled:
            return None
        if self._cache is None:
            self._cache = ResponseCache(self.cache_dir)
        return self._cache

    def request_key(self, prompt: Prompt, params: GenerationParams, seed: int) -> str:
        return response_key(
            kind="generate",
            model=self.identity(),
            prompt=prompt,
            params=params.to_dict(),
            seed=seed,
        )

    def generate(
        self,
        prompts: Sequence[Prompt],
        params: GenerationParams,
        seeds: Sequence[int],
        *,
        budget: RequestBudget | None = None,
        on_results: OnResults | None = None,
    ) -> list[Result]:
        """Replies for all ``prompts`` (``seeds[i]`` seeds request ``i``).

        Cached replies come back without a call. ``on_results(indices, results, cached)`` is
        called after the cache pass (``cached=True``) and after every batch, so callers
        can write as results arrive. When ``budget`` runs out, the results so far are reported and
        :class:`RequestBudgetExhausted` is raised.
        """
        if len(prompts) != len(seeds):
            raise ValueError("one seed per prompt is required")
        results: list[Result | None] = [None] * len(prompts)
        keys = [self.request_key(p, params, s) for p, s in zip(prompts, seeds, strict=True)]
        cache = self.cache
        if cache is not None:
            found = cache.get_many(keys)
            hits = [i for i, key in enumerate(keys) if key in found]
            for i in hits:
                results[i] = found[keys[i]]
            if hits and on_results is not None:
                on_results(hits, [results[i] for i in hits], True)  # type: ignore[misc]
        todo = [i for i, result in enumerate(results) if result is None]

        def store(i: int, reply: Result) -> None:
            if cache is not None and isinstance(reply, str):
                cache.put(keys[i], reply)

        def deliver(indices: list[int], replies: list[Result]) -> None:
            for i, reply in zip(indices, replies, strict=True):
                results[i] = reply
            if on_results is not None:
                on_results(indices, replies, False)

        if todo:
            self.run_uncached(Uncached(todo, prompts, params, seeds, budget, store, deliver))
        if budget is not None and any(result is None for result in results):
            budget.take([])  # the last requests were cut short by the budget: raises
        return results  # type: ignore[return-value]

    def run_uncached(self, work: Uncached) -> None:
        """Call the backend for the requests of ``work``: ``store`` each reply as soon as
        it arrives (the response cache: a reply is never paid twice) and hand finished
        groups to ``deliver`` in input order. Here: :attr:`batch_size` at a time through
        :meth:`generate_batch`; a remote backend streams instead (``openai:``)."""
        for start in range(0, len(work.todo), self.batch_size):
            batch = work.todo[start : start + self.batch_size]
            if work.budget is not None:
                batch = work.budget.take(batch)
            replies = self.generate_batch(
                [work.prompts[i] for i in batch], work.params, [work.seeds[i] for i in batch]
            )
            for i, reply in zip(batch, replies, strict=True):
                work.store(i, reply)
            work.deliver(batch, replies)


class ScoringLLM(LLM):
    """A backend that can also score given continuations (log-likelihood), e.g. ``hf:``."""

    @abstractmethod
    def score_batch(self, prompts: list[Prompt], options: list[str]) -> list[list[OptionScore]]:
        """For each prompt, the log-likelihood of each option as its continuation."""

    def score(self, prompts: Sequence[Prompt], options: Sequence[str]) -> list[list[OptionScore]]:
        """Scores for all prompts, through the response cache, in batches."""
        options = list(options)
        keys = [
            response_key(kind="score", model=self.identity(), prompt=p, options=options)
            for p in prompts
        ]
        cache = self.cache
        found = cache.get_many(keys) if cache is not None else {}
        results: list[list[OptionScore] | None] = [
            [OptionScore(*item) for item in found[k]] if k in found else None for k in keys
        ]
        todo = [i for i, result in enumerate(results) if result is None]
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            scored = self.score_batch([prompts[i] for i in batch], options)
            for i, scores in zip(batch, scored, strict=True):
                results[i] = scores
                if cache is not None:
                    cache.put(keys[i], [[s.logprob, s.tokens] for s in scores])
        return results  # type: ignore[return-value]
