"""The Augmenter: new samples for the chosen cluster of mistakes from an LLM.

The prompt gives the cluster's name as the topic (the "issue") and a target label (the
cluster's majority gold label by default), zero-shot or with ``shots`` member samples.
Replies become rows after the checks the paper's faulty generations call for: empty,
duplicate (of the data or of another output), echoing the prompt, over-long, and for
pair tasks a missing delimiter. Rejected replies are recorded in ``<out>.failed.jsonl``
and re-asked with a new seed up to ``attempts`` times.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from augtool.core.generation.base import LLM, RequestBudget
from augtool.core.generation.jobs import JobSummary, ReplyRejected, Task, derive_seed, run_tasks
from augtool.core.generation.prompts import AUGTOOL_TOPEX_AUGMENT as TOPEX_AUGMENT
from augtool.core.generation.prompts import PromptTemplate
from augtool.core.progress import SILENT, Reporter
from augtool.data.provenance import make_aug
from augtool.data.records import Record
from augtool.data.writer import JsonlWriter
from augtool.errors import AugtoolError, OptionError
from augtool.methods.topex.config import AugmentConfig
from augtool.methods.topex.store import SavedExploration

PLACEHOLDERS = {"label", "domain", "issue", "examples", "format"}
#: How many times a rejected reply is asked for again (with a new seed).
ATTEMPTS = 3
_TITLE = re.compile(r"^\s*\**\s*title\s*\**\s*[:\-]\s*(.*)$", re.IGNORECASE)
_PART_LABEL = re.compile(r"^\s*\**\s*[A-Za-z][A-Za-z ]{0,20}\**\s*:\s*")


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form used to find duplicates."""
    return " ".join(text.casefold().split())


@dataclass
class Target:
    """What to generate: which cluster, which label, which member rows to show."""

    cluster: dict[str, Any]
    label: str
    pair: bool
    pool: list[dict[str, Any]]
    max_chars: int

    def shots(self, config: AugmentConfig, index: int) -> list[dict[str, Any]]:
        """The member rows shown in the prompt of sample ``index`` (drawn per sample)."""
        rng = random.Random(derive_seed(config.seed, "topex-shots", self.cluster["id"], index))
        return rng.sample(self.pool, min(config.shots, len(self.pool)))


def pick_target(saved: SavedExploration, config: AugmentConfig) -> Target:
    """The cluster (``--cluster`` or the chosen one), label and examples to prompt with."""
    cluster_id = config.cluster if config.cluster is not None else saved.chosen_id()
    if cluster_id is None:
        raise AugtoolError(
            f"{saved.folder}: no cluster of mistakes to augment (explore found none); nothing to do"
        )
    cluster = saved.cluster(cluster_id)
    if cluster is None:
        known = ", ".join(str(c["id"]) for c in saved.mistaken()) or "none"
        raise OptionError(
            "cluster", f"no cluster {cluster_id} in {saved.folder} (mistakes: {known})"
        )
    labels = saved.summary["labels"]
    label = config.target_label or cluster["majority_label"]
    if label not in labels:
        raise OptionError("target_label", f"unknown label {label!r} (labels: {', '.join(labels)})")
    points = {p["id"]: p for p in saved.points}
    members = [points[m] for m in cluster["members"] if m in points]
    pair = config.pair if config.pair is not None else any("text_pair" in p for p in members)
    pool = [p for p in members if p["label"] == label] or members
    longest = max((len(_joined(p, config.delimiter)) for p in members), default=0)
    max_chars = config.max_chars or max(200, 3 * longest)
    return Target(cluster, label, pair, pool, max_chars)


def _joined(point: dict[str, Any], delimiter: str) -> str:
    if point.get("text_pair") is None:
        return str(point.get("text") or "")
    return f"{point.get('text') or ''} {delimiter} {point['text_pair']}"


def render_prompt(
    target: Target,
    config: AugmentConfig,
    template: PromptTemplate = TOPEX_AUGMENT,
    shots: list[dict[str, Any]] | None = None,
) -> list[dict[str, str]]:
    """The chat messages asking for one new sample (``shots``: member rows shown)."""
    first, second = config.part_names()
    domain = config.domain
    if shots:
        shown = "\n".join(f"- {_joined(p, config.delimiter)}" for p in shots)
        examples = f"Examples of {target.label} {domain}s on this topic:\n{shown}\n\n"
    else:
        examples = ""
    if target.pair:
        fmt = (
            f"\nWrite the {first} and the {second} on one line, separated by "
            f"'{config.delimiter}', and nothing else."
        )
    else:
        fmt = f"\nReply with the {domain} only."
    return template.render(
        label=target.label,
        domain=domain,
        issue=target.cluster["name"],
        examples=examples,
        format=fmt,
    )


def parse_reply(
    reply: str,
    *,
    prompt: str,
    pair: bool,
    delimiter: str,
    max_chars: int,
) -> tuple[str, str | None, str | None]:
    """``(text, text_pair, title)`` from a reply, or :class:`ReplyRejected` saying why."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        raise ReplyRejected("empty reply")
    if _echoes(reply, prompt):
        raise ReplyRejected("the reply repeats the prompt")
    title = None
    match = _TITLE.match(lines[0])
    if match and (len(lines) > 1 or pair):
        title = match.group(1).strip().strip("\"'*") or None
        lines = lines[1:]
    elif match:
        lines = [match.group(1)]
    body = " ".join(lines).strip()
    text_pair = None
    if pair:
        if delimiter not in body:
            raise ReplyRejected(f"wrong format: no '{delimiter}' between the two parts")
        parts = [_PART_LABEL.sub("", p).strip().strip("\"'") for p in body.split(delimiter)]
        parts = [p for p in parts if p]
        if len(parts) != 2:
            raise ReplyRejected(f"wrong format: expected two parts around '{delimiter}'")
        body, text_pair = parts
    else:
        body = _PART_LABEL.sub("", body, count=1) if body.lower().startswith("text:") else body
        body = body.strip()
        if len(body) >= 2 and body[0] == body[-1] and body[0] in "\"'`":
            body = body[1:-1].strip()
    if not body:
        raise ReplyRejected("empty reply")
    length = len(body) + len(text_pair or "")
    if length > max_chars:
        raise ReplyRejected(f"over-long reply ({length} characters > {max_chars})")
    return body, text_pair, title


def _echoes(reply: str, prompt: str) -> bool:
    """True when the reply restates the instruction instead of following it."""
    said = normalise(reply)
    for sentence in re.split(r"(?<=[.:'])\s", prompt):
        sentence = normalise(sentence)
        if len(sentence) >= 30 and sentence in said:
            return True
    return "choose a title based on the topic" in said


class _Deduplicator:
    """Rejects texts already in the data or already generated (normalised match)."""

    def __init__(self, texts: list[str]) -> None:
        self.seen = {normalise(t) for t in texts if t}

    def add(self, text: str) -> None:
        key = normalise(text)
        if key in self.seen:
            raise ReplyRejected("duplicate of an existing or generated sample")
        self.seen.add(key)


def augment_tasks(
    saved: SavedExploration,
    target: Target,
    config: AugmentConfig,
    *,
    attempt: int,
    skip: set[str],
    dedup: _Deduplicator,
    template: PromptTemplate = TOPEX_AUGMENT,
) -> list[Task]:
    """One task per missing sample (``skip`` holds the ids already written)."""
    cluster = target.cluster
    tasks = []
    for index in range(config.n):
        key = f"topex-c{cluster['id']}-{index}"
        if key in skip:
            continue
        shots = target.shots(config, index)
        messages = render_prompt(target, config, template, shots)
        prompt_text = messages[-1]["content"]
        parents = tuple(p["id"] for p in shots)
        seed = derive_seed(config.seed, "topex", cluster["id"], target.label, index, attempt)
        aug = make_aug(
            "topex",
            list(parents),
            seed=seed,
            cluster=cluster["id"],
            cluster_name=cluster["name"],
            target_label=target.label,
            shots=len(parents),
            attempt=attempt,
            prompt_id=template.id,
            llm=config.llm,
            params=config.params().to_dict(),
        )
        build = partial(_row, key, target, config, prompt_text, dedup, aug)
        tasks.append(Task(key, messages, seed, build, parents))
    return tasks


def _row(
    key: str,
    target: Target,
    config: AugmentConfig,
    prompt_text: str,
    dedup: _Deduplicator,
    aug: dict[str, Any],
    reply: str,
) -> Record:
    text, text_pair, title = parse_reply(
        reply,
        prompt=prompt_text,
        pair=target.pair,
        delimiter=config.delimiter,
        max_chars=target.max_chars,
    )
    dedup.add(text if text_pair is None else f"{text} {config.delimiter} {text_pair}")
    extra = {"title": title} if title else {}
    return Record(id=key, text=text, text_pair=text_pair, label=target.label, aug=aug, extra=extra)


def run_augment(
    saved: SavedExploration,
    target: Target,
    llm: LLM,
    config: AugmentConfig,
    writer: JsonlWriter,
    *,
    template: PromptTemplate = TOPEX_AUGMENT,
    budget: RequestBudget | None = None,
    reporter: Reporter = SILENT,
    attempts: int = ATTEMPTS,
    summary: JobSummary | None = None,
) -> JobSummary:
    """Generate until ``config.n`` rows are written or every sample used its attempts.

    ``summary`` is kept up to date as replies arrive, so an interrupted run can report.
    """
    known = [_joined(p, config.delimiter) for p in saved.points]
    known += [
        row.get("text", "") if row.get("text_pair") is None else _joined(row, config.delimiter)
        for row in writer.resumed_rows
    ]
    dedup = _Deduplicator(known)
    total = summary if summary is not None else JobSummary()
    done = set(writer.done_ids)
    total.total = config.n
    total.resumed = len(done)
    for attempt in range(attempts):
        tasks = augment_tasks(
            saved, target, config, attempt=attempt, skip=done, dedup=dedup, template=template
        )
        if not tasks:
            break
        step = JobSummary()
        try:
            run_tasks(
                tasks, llm, config.params(), writer, budget=budget, reporter=reporter, summary=step
            )
        finally:
            for failure in step.failed:
                failure["attempt"] = attempt
            total.written += step.written
            total.cached += step.cached
            total.requests += step.requests
            total.failed.extend(step.failed)
        done |= {t.key for t in tasks} - {f["id"] for f in step.failed}
    return total
