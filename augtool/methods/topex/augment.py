"""The Augmenter: new samples for the chosen cluster of mistakes from an LLM.

The prompt gives the cluster's name as the topic (the "issue") and a target label (the
cluster's majority gold label by default). ``--prompt-style paper`` (the default) sends
TopEx's own prompts verbatim: §2.4's task ("Generate a {label} {domain}, choose a title
based on the topic: '{issue}'"), or appendix B's premise/hypothesis task for pair data,
and with ``shots`` member rows appendix B's few-shot layout (a preamble, one
"Task: ... Your answer: ..." block per shown row, then the open task).
``--prompt-style augtool`` sends augtool's earlier wording. Replies become rows after
the checks the paper's faulty generations (appendix C) call for: empty, duplicate (of
the data or of another output), echoing the prompt, over-long, and for pair tasks a
missing delimiter. Rejected replies are recorded in ``<out>.failed.jsonl`` and re-asked
with a new seed up to ``attempts`` times.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from augtool.core.generation.base import LLM, RequestBudget
from augtool.core.generation.jobs import JobSummary, ReplyRejected, Task, derive_seed, run_tasks
from augtool.core.generation.params import Message
from augtool.core.generation.prompts import (
    TOPEX_FEWSHOT_OPEN,
    TOPEX_FEWSHOT_PREAMBLE,
    TOPEX_FEWSHOT_SHOT,
    TOPEX_PAIR_TASK,
    PromptTemplate,
    builtin,
    load_prompt_file,
)
from augtool.core.progress import SILENT, Reporter
from augtool.data.provenance import make_aug
from augtool.data.records import Record
from augtool.data.writer import JsonlWriter
from augtool.errors import AugtoolError, OptionError
from augtool.methods.topex.config import AugmentConfig
from augtool.methods.topex.store import SavedExploration

#: The placeholders a prompt file may use, by prompt style.
PLACEHOLDERS = {
    "paper": frozenset({"label", "domain", "issue", "delimiter", "label_choices"}),
    "augtool": frozenset({"label", "domain", "issue", "examples", "format"}),
}
#: How many times a rejected reply is asked for again (with a new seed).
ATTEMPTS = 3
_TITLE = re.compile(r"^\s*[#*_\s]*title\s*[*_]*\s*[:\-]\s*(.*)$", re.IGNORECASE)
_HEADING = re.compile(r"^\s*(?:#+\s*(.+?)|\*\*(.+?)\*\*|__(.+?)__|\"(.+?)\"|“(.+?)”)\s*$")
_ANSWER = re.compile(r"^\s*\**\s*(?:your\s+)?answer\s*\**\s*:\s*", re.IGNORECASE)
_TASK = re.compile(r"^\s*\**\s*task\s*\**\s*:", re.IGNORECASE)
_PART_LABEL = re.compile(r"^\s*\**\s*[A-Za-z][A-Za-z ]{0,20}\**\s*:\s*")
#: A first line this short, set off as a heading or in quotes, is the title the §2.4
#: task asks for when more text follows it.
TITLE_WORDS = 15


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
    labels: list[str]
    label_texts: dict[str, str]

    def shots(self, config: AugmentConfig, index: int) -> list[dict[str, Any]]:
        """The member rows shown in the prompt of sample ``index`` (drawn per sample)."""
        rng = random.Random(derive_seed(config.seed, "topex-shots", self.cluster["id"], index))
        return rng.sample(self.pool, min(config.shots, len(self.pool)))

    def text_of(self, label: str) -> str:
        """What the prompt calls ``label`` (its text in ``--labels``, else the name)."""
        return self.label_texts.get(label, label)

    def label_choices(self) -> str:
        """The labels as appendix B lists them: "'entailment' and 'non-entailment'"."""
        return choices([self.text_of(label) for label in self.labels])


def choices(texts: list[str]) -> str:
    """``'a'``, ``'a' and 'b'``, ``'a', 'b' and 'c'``: labels quoted as appendix B does."""
    quoted = [f"'{text}'" for text in texts]
    if len(quoted) <= 1:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} and {quoted[-1]}"


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
    labels = list(saved.summary["labels"])
    label = config.target_label or cluster["majority_label"]
    if label not in labels:
        raise OptionError("target_label", f"unknown label {label!r} (labels: {', '.join(labels)})")
    label_texts: dict[str, str] = {}
    if config.labels:
        from augtool.core.generation.labels import load_label_set

        label_set = load_label_set(config.labels)
        label_set.require(labels, f"{config.labels} (for {saved.folder})")
        label_texts = {name: label_set.text_of(name) for name in labels}
    points = {p["id"]: p for p in saved.points}
    members = [points[m] for m in cluster["members"] if m in points]
    pair = config.pair if config.pair is not None else any("text_pair" in p for p in members)
    pool = [p for p in members if p["label"] == label] or members
    longest = max((len(_joined(p, config.delimiter)) for p in members), default=0)
    max_chars = config.max_chars or max(200, 3 * longest)
    return Target(cluster, label, pair, pool, max_chars, labels, label_texts)


def _joined(point: dict[str, Any], delimiter: str) -> str:
    if point.get("text_pair") is None:
        return str(point.get("text") or "")
    return f"{point.get('text') or ''} {delimiter} {point['text_pair']}"


def shot_answer(point: dict[str, Any], delimiter: str) -> str:
    """A shown row as appendix B writes the answer: the text, or for a pair the premise,
    the delimiter and (after a blank line, as printed) the hypothesis."""
    if point.get("text_pair") is None:
        return str(point.get("text") or "")
    return f"{point.get('text') or ''}{delimiter}\n\n{point['text_pair']}"


@dataclass(frozen=True)
class TopexPrompt:
    """The Augmenter's prompt in one style.

    ``paper``: ``template`` is the task (§2.4's, appendix B's pair task, or a
    ``--prompt-file``), sent alone zero-shot and inside appendix B's few-shot frame with
    shots. ``augtool``: ``template`` is the whole prompt with ``{examples}`` and
    ``{format}``.
    """

    style: str
    template: PromptTemplate

    @property
    def id(self) -> str:
        return self.template.id

    def render(
        self, target: Target, config: AugmentConfig, shots: list[dict[str, Any]] | None = None
    ) -> list[Message]:
        """The chat messages asking for one new sample (``shots``: member rows shown)."""
        if self.style == "augtool":
            return _render_augtool(self.template, target, config, shots)
        messages = self._task(target, config, target.label)
        if not shots:
            return messages
        blocks = [
            TOPEX_FEWSHOT_SHOT.format(
                task=self._task(target, config, str(shot.get("label") or target.label))[-1][
                    "content"
                ],
                answer=shot_answer(shot, config.delimiter),
            )
            for shot in shots
        ]
        opening = TOPEX_FEWSHOT_OPEN.format(task=messages[-1]["content"])
        user = f"{TOPEX_FEWSHOT_PREAMBLE} " + "\n\n".join([*blocks, opening])
        return [*messages[:-1], {"role": "user", "content": user}]

    def _task(self, target: Target, config: AugmentConfig, label: str) -> list[Message]:
        return self.template.render(
            label=target.text_of(label),
            domain=config.domain,
            issue=target.cluster["name"],
            delimiter=config.delimiter,
            label_choices=target.label_choices(),
        )

    def describe(self, shots: int = 0) -> dict[str, Any]:
        """What the outputs' meta records: the style, the template and, with shots, the
        few-shot frame."""
        described: dict[str, Any] = {"style": self.style, **self.template.describe()}
        if self.style == "paper" and shots:
            described["few_shot"] = {
                "source": "TopEx, appendix B, verbatim",
                "preamble": TOPEX_FEWSHOT_PREAMBLE,
                "shot": TOPEX_FEWSHOT_SHOT,
                "open": TOPEX_FEWSHOT_OPEN,
            }
        return described


def build_prompt(config: AugmentConfig, pair: bool) -> TopexPrompt:
    """The prompt of ``config.prompt_style`` for a single-text or a pair task; a
    ``--prompt-file`` replaces the template after its placeholders are checked (unknown
    ones, and the ones the built-in template needs), before any model loads."""
    if config.prompt_style == "paper":
        default = TOPEX_PAIR_TASK if pair else builtin("topex.augment", "paper")
    else:
        default = builtin("topex.augment", "augtool")
    template = default
    if config.prompt_file:
        template = load_prompt_file(
            config.prompt_file,
            template_id=default.id,
            available=PLACEHOLDERS[config.prompt_style],
            required=default.required,
        )
    return TopexPrompt(config.prompt_style, template)


def _render_augtool(
    template: PromptTemplate,
    target: Target,
    config: AugmentConfig,
    shots: list[dict[str, Any]] | None,
) -> list[Message]:
    """augtool's layout: the examples as a list before the task, a format line after."""
    first, second = config.part_names()
    domain = config.domain
    label = target.text_of(target.label)
    if shots:
        shown = "\n".join(f"- {_joined(p, config.delimiter)}" for p in shots)
        examples = f"Examples of {label} {domain}s on this topic:\n{shown}\n\n"
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
        label=label,
        domain=domain,
        issue=target.cluster["name"],
        examples=examples,
        format=fmt,
    )


def render_prompt(
    target: Target,
    config: AugmentConfig,
    prompt: TopexPrompt | None = None,
    shots: list[dict[str, Any]] | None = None,
) -> list[Message]:
    """The chat messages asking for one new sample (``prompt``: default
    :func:`build_prompt` of ``config``)."""
    prompt = prompt or build_prompt(config, target.pair)
    return prompt.render(target, config, shots)


def parse_reply(
    reply: str,
    *,
    prompt: str,
    pair: bool,
    delimiter: str,
    max_chars: int,
    domain: str = "",
) -> tuple[str, str | None, str | None]:
    """``(text, text_pair, title)`` from a reply, or :class:`ReplyRejected` saying why.

    Accepts what the paper's prompts produce: a leading "Your answer:" (appendix B's
    cue), the title §2.4 asks for (a ``Title: ...`` line, or a short heading, bold or
    quoted first line with text after it), a premise and a hypothesis around the
    delimiter on one line or on two; a next "Task:" block the model goes on to write
    is cut off.
    """
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        raise ReplyRejected("empty reply")
    if _echoes(reply, prompt):
        raise ReplyRejected("the reply repeats the prompt")
    lines = _strip_frame(lines)
    if not lines:
        raise ReplyRejected("empty reply")
    title, lines = _split_title(lines, pair, delimiter)
    body = " ".join(lines).strip()
    text_pair = None
    if pair:
        if delimiter not in body:
            raise ReplyRejected(f"wrong format: no '{delimiter}' between the two parts")
        parts = [_unquote(_PART_LABEL.sub("", p).strip()) for p in body.split(delimiter)]
        parts = [p for p in parts if p]
        if len(parts) != 2:
            raise ReplyRejected(f"wrong format: expected two parts around '{delimiter}'")
        body, text_pair = parts
    else:
        labels = {"text", "review", "question", "sample", "answer", domain.strip().lower()}
        head, sep, rest = body.partition(":")
        if sep and head.strip(" *_").lower() in labels - {""}:
            body = rest
        body = _unquote(body.strip())
    if not body:
        raise ReplyRejected("empty reply")
    length = len(body) + len(text_pair or "")
    if length > max_chars:
        raise ReplyRejected(f"over-long reply ({length} characters > {max_chars})")
    return body, text_pair, title


def _strip_frame(lines: list[str]) -> list[str]:
    """Drop appendix B's "Your answer:" cue at the start, and cut where the model starts
    a next "Task:" block of its own."""
    if _ANSWER.match(lines[0]):
        rest = _ANSWER.sub("", lines[0], count=1).strip()
        lines = ([rest] if rest else []) + lines[1:]
    for index, line in enumerate(lines):
        if index > 0 and _TASK.match(line):
            return lines[:index]
    return lines


def _split_title(lines: list[str], pair: bool, delimiter: str) -> tuple[str | None, list[str]]:
    """The title line the task asks for, and the lines after it."""
    match = _TITLE.match(lines[0])
    if match and len(lines) > 1:
        return _clean_title(match.group(1)) or None, lines[1:]
    if match:  # a lone "Title: ..." line: its text is the sample
        return None, [match.group(1)]
    if pair or len(lines) < 2 or delimiter in lines[0]:
        return None, lines
    heading = _HEADING.match(lines[0])
    if heading:
        title = _clean_title(next(g for g in heading.groups() if g))
        if title and len(title.split()) <= TITLE_WORDS:
            return title, lines[1:]
    return None, lines


def _clean_title(text: str) -> str:
    return text.strip().strip("\"'*_#“”` ").strip()


def _unquote(text: str) -> str:
    """``text`` without one pair of wrapping quotes."""
    text = text.strip()
    if len(text) >= 2 and (text[0], text[-1]) in (('"', '"'), ("'", "'"), ("`", "`"), ("“", "”")):
        return text[1:-1].strip()
    return text


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
    prompt: TopexPrompt | None = None,
) -> list[Task]:
    """One task per missing sample (``skip`` holds the ids already written)."""
    prompt = prompt or build_prompt(config, target.pair)
    cluster = target.cluster
    tasks = []
    for index in range(config.n):
        key = f"topex-c{cluster['id']}-{index}"
        if key in skip:
            continue
        shots = target.shots(config, index)
        messages = prompt.render(target, config, shots)
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
            prompt_id=prompt.id,
            prompt_style=prompt.style,
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
        domain=config.domain,
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
    prompt: TopexPrompt | None = None,
    budget: RequestBudget | None = None,
    reporter: Reporter = SILENT,
    attempts: int = ATTEMPTS,
    summary: JobSummary | None = None,
) -> JobSummary:
    """Generate until ``config.n`` rows are written or every sample used its attempts.

    ``summary`` is kept up to date as replies arrive, so an interrupted run can report.
    """
    prompt = prompt or build_prompt(config, target.pair)
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
            saved, target, config, attempt=attempt, skip=done, dedup=dedup, prompt=prompt
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
