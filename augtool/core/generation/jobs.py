"""Running a list of LLM requests as a resumable job that writes JSONL.

A method turns its input into :class:`Task` objects (output row id, prompt, seed, and a
function that turns the reply into the output row). :func:`run_tasks` skips tasks whose
rows an interrupted run already wrote, streams finished rows to the partial output,
collects requests that failed after their retries (for ``<out>.failed.jsonl``) and stops
at a request budget. :func:`estimate` is the ``--dry-run``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augtool.core.generation.base import LLM, RequestBudget
from augtool.core.generation.params import Failure, GenerationParams, Prompt, as_text
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import Record
from augtool.data.writer import JsonlWriter, atomic_write_text, sidecar


class ReplyRejected(Exception):
    """A reply that cannot become an output row (empty, unparsable...)."""


@dataclass
class Task:
    """One request and how its reply becomes an output row."""

    key: str
    prompt: Prompt
    seed: int
    build: Callable[[str], Record | dict[str, Any]]
    parents: tuple[str, ...] = ()


@dataclass
class JobSummary:
    """Counts of a run, kept up to date so an interrupted run can still report them."""

    total: int = 0
    resumed: int = 0
    written: int = 0
    cached: int = 0
    requests: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "resumed": self.resumed,
            "written": self.written,
            "from_cache": self.cached,
            "requests": self.requests,
            "failed": len(self.failed),
        }


def derive_seed(seed: int, *parts: object) -> int:
    """A request seed from the run seed and the request's identity (order-independent)."""
    blob = json.dumps([seed, *parts], default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:6], "big")


def clean_reply(reply: str) -> str:
    """The generated text from a reply: first substantive line, without wrapping quotes
    or a leading ``Text:``-style label. Empty replies are rejected."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    while len(lines) > 1 and lines[0].endswith(":"):
        lines.pop(0)  # "Here is the rewritten text:"
    text = lines[0] if lines else ""
    for prefix in ("rewritten text:", "new text:", "text:", "answer:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    if not text:
        raise ReplyRejected("empty reply")
    return text


def run_tasks(
    tasks: Sequence[Task],
    llm: LLM,
    params: GenerationParams,
    writer: JsonlWriter,
    *,
    budget: RequestBudget | None = None,
    reporter: Reporter = SILENT,
    summary: JobSummary | None = None,
) -> JobSummary:
    """Run ``tasks`` not yet in ``writer.done_ids``; rows are written as replies arrive."""
    summary = summary if summary is not None else JobSummary()
    summary.total = len(tasks)
    todo = [task for task in tasks if task.key not in writer.done_ids]
    summary.resumed = len(tasks) - len(todo)
    advance = reporter.task("generating", len(tasks), completed=summary.resumed)

    def on_results(indices: list[int], results: list[str | Failure], cached: bool) -> None:
        rows = []
        for index, result in zip(indices, results, strict=True):
            task = todo[index]
            if isinstance(result, Failure):
                summary.failed.append(_failure(task, result.error))
                continue
            try:
                rows.append(task.build(result))
            except ReplyRejected as exc:
                summary.failed.append(_failure(task, str(exc), reply=result))
        writer.write(rows)
        summary.written += len(rows)
        if cached:
            summary.cached += len(indices)
        else:
            summary.requests += len(indices)
        advance(len(indices))

    llm.generate(
        [t.prompt for t in todo],
        params,
        [t.seed for t in todo],
        budget=budget,
        on_results=on_results,
    )
    return summary


def _failure(task: Task, error: str, reply: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"id": task.key, "parents": list(task.parents), "error": error}
    if reply is not None:
        row["reply"] = reply
    return row


def write_failures(output: str | Path, failures: list[dict[str, Any]]) -> Path | None:
    """``<out>.failed.jsonl`` with every request that failed (removed when none did)."""
    path = sidecar(output, ".failed.jsonl")
    if not failures:
        path.unlink(missing_ok=True)
        return None
    atomic_write_text(path, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    return path


def estimate(
    tasks: Sequence[Task],
    llm: LLM,
    params: GenerationParams,
    count_tokens: Callable[[Prompt], int] | None = None,
) -> dict[str, Any]:
    """What a run would cost: requests (minus cached ones) and a token estimate.

    Prompt tokens are counted with the model's tokenizer when ``count_tokens`` is given,
    else estimated at four characters per token.
    """
    cache = llm.cache
    keys = [llm.request_key(t.prompt, params, t.seed) for t in tasks]
    found = cache.get_many(keys) if cache is not None else {}
    uncached = [t for t, key in zip(tasks, keys, strict=True) if key not in found]
    cached = len(tasks) - len(uncached)
    counter = count_tokens or (lambda prompt: max(1, len(as_text(prompt)) // 4))
    prompt_tokens = sum(counter(t.prompt) for t in uncached)
    return {
        "requests": len(tasks) - cached,
        "cached": cached,
        "prompt_tokens": prompt_tokens,
        "max_completion_tokens": (len(tasks) - cached) * params.max_new_tokens,
        "tokens_counted_by": "tokenizer" if count_tokens else "estimate (4 chars/token)",
    }
