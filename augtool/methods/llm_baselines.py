"""The LLM prompting baselines (LLM-Rew, LLM-Gen, LLM-Mix) and LLM labelling.

Each command has a config dataclass (its CLI options) and a function that turns input
records into generation :class:`~augtool.core.generation.jobs.Task` objects; running,
caching, resuming and failure handling are shared (``augtool.core.generation.jobs``).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from augtool.core.config import check
from augtool.core.device import DTYPES
from augtool.core.generation.base import RequestBudget, ScoringLLM
from augtool.core.generation.jobs import (
    JobSummary,
    ReplyRejected,
    Task,
    clean_reply,
    derive_seed,
)
from augtool.core.generation.labels import LabelSet, load_label_set
from augtool.core.generation.params import GenerationParams
from augtool.core.generation.prompts import PROMPT_STYLES, PromptTemplate, step_template
from augtool.core.pretrained import check_device_map, device_map_field, load_in_4bit_field
from augtool.core.progress import SILENT, Reporter
from augtool.data.provenance import make_aug
from augtool.data.records import Record, child_id, labels_of
from augtool.data.writer import JsonlWriter
from augtool.errors import AugtoolError

PAIR_MODES = ("any", "inter-class", "intra-class")


def check_llm_options(config: Any) -> None:
    """Checks of the LLM-layer options every LLM command shares (client, model, decoding)."""
    check(config.concurrency >= 1, "concurrency", "must be at least 1")
    check(config.rpm >= 0, "rpm", "must be >= 0")
    check(config.timeout > 0, "timeout", "must be positive")
    check(config.max_retries >= 0, "max_retries", "must be >= 0")
    check(config.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
    check_device_map(config.device_map)
    check(config.batch_size >= 1, "batch_size", "must be at least 1")
    check(config.max_new_tokens >= 1, "max_new_tokens", "must be at least 1")
    check(config.temperature >= 0, "temperature", "must be >= 0")
    check(
        config.max_requests is None or config.max_requests >= 1,
        "max_requests",
        "must be at least 1",
    )
    check(
        config.prompt_style in PROMPT_STYLES,
        "prompt_style",
        f"must be one of {', '.join(PROMPT_STYLES)}",
    )


@dataclass
class LLMConfig:
    """Options shared by every command that calls an LLM."""

    llm: str = field(
        default="",
        metadata={
            "help": "The LLM: hf:<model id or folder> (local transformers) or "
            "openai:<model> (any OpenAI-compatible server)."
        },
    )
    base_url: str | None = field(
        default=None,
        metadata={
            "help": "openai: server URL, e.g. http://127.0.0.1:8000/v1 "
            "(default: $OPENAI_BASE_URL or api.openai.com); several serving the same "
            "model, comma-separated, share the load."
        },
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "openai: environment variable holding the API key."},
    )
    concurrency: int = field(default=8, metadata={"help": "openai: requests in flight at once."})
    rpm: float = field(default=0.0, metadata={"help": "openai: requests per minute cap (0: none)."})
    timeout: float = field(default=60.0, metadata={"help": "openai: seconds per request."})
    max_retries: int = field(
        default=5,
        metadata={
            "help": "openai: retries per request on timeouts, 429 and 5xx "
            "(exponential backoff with jitter, honouring Retry-After)."
        },
    )
    device: str = field(default="auto", metadata={"help": "hf: auto, cpu, cuda, cuda:N or mps."})
    dtype: str = field(
        default="auto",
        metadata={"help": "hf: auto (bfloat16 on CUDA), float32, bfloat16, float16."},
    )
    device_map: str | None = device_map_field()
    load_in_4bit: bool = load_in_4bit_field()
    batch_size: int = field(default=16, metadata={"help": "hf: prompts per generation batch."})
    max_new_tokens: int = field(default=128, metadata={"help": "Longest reply, in tokens."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (0: greedy)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold."})
    seed: int = field(
        default=0, metadata={"help": "Run seed; every request gets its own seed derived from it."}
    )
    cache: bool = field(
        default=True, metadata={"help": "Reuse and store replies in the response cache."}
    )
    prompt_file: str | None = field(
        default=None,
        metadata={
            "help": "Replace the built-in prompt: a text file (the user message) or "
            "YAML with 'user' and 'system'; placeholders are checked first."
        },
    )
    prompt_style: str = field(
        default="paper",
        metadata={
            "help": "Built-in prompt: paper (inversedMixup appendix A.2/A.3, verbatim) or "
            "augtool (augtool's own wording)."
        },
    )
    max_requests: int | None = field(
        default=None,
        metadata={
            "help": "Stop after this many LLM calls (cached replies are free); rerun to continue."
        },
    )
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        if self.llm_required():
            check(bool(self.llm.strip()), "llm", "is required: hf:<model> or openai:<model>")
        check_llm_options(self)
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")

    def llm_required(self) -> bool:
        """Whether this run calls the LLM (a command with a local alternative says no)."""
        return True

    #: The prompt step this command runs (``prompts.STEPS``); set by each command.
    step: ClassVar[str] = ""

    def template(self) -> PromptTemplate:
        """The prompt this run sends: ``--prompt-file`` (checked) or the built-in one of
        ``--prompt-style``."""
        return step_template(
            self.step,
            self.prompt_style,
            self.prompt_file,
            available=PLACEHOLDERS[self.step],
            required=REQUIRED.get(self.step, frozenset()),
            alternatives=ALTERNATIVES.get(self.step, ()),
        )

    def params(self) -> GenerationParams:
        return GenerationParams(self.max_new_tokens, self.temperature, self.top_p)

    def backend_options(self) -> dict[str, Any]:
        from augtool.core.generation import backend_options

        return backend_options(self)


def llm_field(name: str, **override: Any) -> Any:
    """The config field ``name`` of :class:`LLMConfig` (its help), with another default:
    commands that are not ``llm`` jobs declare the same options once, with one help."""
    import dataclasses

    base = LLMConfig.__dataclass_fields__[name]
    if "default" in override:
        return field(default=override["default"], metadata=base.metadata)
    if base.default is not dataclasses.MISSING:
        return field(default=base.default, metadata=base.metadata)
    return field(default_factory=base.default_factory, metadata=base.metadata)  # type: ignore[arg-type]


@dataclass
class LLMJudgeOptions:
    """The LLM options of a command that asks an LLM for labels or verdicts
    (``coannotate``, ``audit``): the client, the runtime, greedy 16-token replies, the
    cache and the request budget."""

    base_url: str | None = llm_field("base_url")
    api_key_env: str = llm_field("api_key_env")
    concurrency: int = llm_field("concurrency")
    rpm: float = llm_field("rpm")
    timeout: float = llm_field("timeout")
    max_retries: int = llm_field("max_retries")
    device: str = llm_field("device")
    dtype: str = llm_field("dtype")
    device_map: str | None = llm_field("device_map")
    load_in_4bit: bool = llm_field("load_in_4bit")
    batch_size: int = llm_field("batch_size")
    max_new_tokens: int = llm_field("max_new_tokens", default=16)
    temperature: float = llm_field("temperature", default=0.0)
    cache: bool = llm_field("cache")
    max_requests: int | None = llm_field("max_requests")
    text_field: str = llm_field("text_field")

    def backend_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`augtool.core.generation.load_llm`."""
        from augtool.core.generation import backend_options

        return backend_options(self)


@dataclass
class RewriteConfig(LLMConfig):
    """LLM-Rew: rewrite each labelled row, keeping its label."""

    step: ClassVar[str] = "llm.rewrite"
    n: int = field(default=1, metadata={"help": "Rewrites per input row."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n >= 1, "n", "must be at least 1")


@dataclass
class GenerateConfig(LLMConfig):
    """LLM-Gen: new rows for each label (the paper's zero-shot prompt with a topic, or
    augtool's few-shot prompt)."""

    step: ClassVar[str] = "llm.generate"
    per_label: int = field(default=10, metadata={"help": "New rows per label."})
    topic: str | None = field(
        default=None,
        metadata={
            "help": "The {topic} of the paper's LLM-Gen prompt ('Write a {label} {topic} "
            "sentence.'), e.g. news or question; several separated by commas are drawn "
            "one per row (seeded)."
        },
    )
    shots: int = field(
        default=3,
        metadata={"help": "Examples of the label shown per prompt ({examples}; augtool style)."},
    )
    labels: str | None = field(
        default=None,
        metadata={
            "help": "Labels file (JSON/YAML list, or mapping to descriptions) for the label "
            "texts and descriptions shown; default: the labels of the input."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.per_label >= 1, "per_label", "must be at least 1")
        check(self.shots >= 1, "shots", "must be at least 1")
        check(
            self.topic is None or bool(self.topics()),
            "topic",
            "must name at least one topic",
        )
        check(
            self.topic is not None or self.prompt_style != "paper" or bool(self.prompt_file),
            "topic",
            "is needed by the paper's LLM-Gen prompt ('Write a {label} {topic} sentence.'), "
            "e.g. --topic news; or use --prompt-style augtool",
        )

    def topics(self) -> list[str]:
        """The topics to draw from (empty when none was given)."""
        return [t.strip() for t in (self.topic or "").split(",") if t.strip()]


@dataclass
class MixConfig(LLMConfig):
    """LLM-Mix: fuse two rows into one (the paper's prompt; equal soft label), or blend
    them with ratio lambda ~ Beta(alpha, alpha) told to the LLM (augtool style)."""

    step: ClassVar[str] = "llm.mix"
    pairs: int = field(default=100, metadata={"help": "How many mixed rows to make."})
    alpha: float = field(
        default=0.4,
        metadata={
            "help": "Mixing ratio lambda ~ Beta(alpha, alpha), for prompts that name the "
            "ratio ({ratio_a}, {ratio_b}); the paper's prompt names none (lambda = 0.5)."
        },
    )
    pair_mode: str = field(
        default="any",
        metadata={"help": "Which rows to pair: any, inter-class or intra-class."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.pairs >= 1, "pairs", "must be at least 1")
        check(self.alpha > 0, "alpha", "must be positive")
        check(self.pair_mode in PAIR_MODES, "pair_mode", f"must be one of {', '.join(PAIR_MODES)}")


@dataclass
class LabelConfig(LLMConfig):
    """LLM labelling: one label per row from a given label set."""

    step: ClassVar[str] = "llm.label"
    labels: str = field(
        default="",
        metadata={
            "help": "Labels file: a JSON/YAML list of names, or a mapping of name to "
            "description (or to {text, description, aliases}); examples/labels/ has the "
            "paper's."
        },
    )
    scoring: str = field(
        default="auto",
        metadata={
            "help": "auto (log-likelihood on hf:, reply parsing on openai:), loglik or parse."
        },
    )
    normalize: bool = field(
        default=True,
        metadata={"help": "loglik: compare per-token (length-normalised) log-likelihoods."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.labels.strip()), "labels", "is required: a labels file")
        check(
            self.scoring in ("auto", "loglik", "parse"), "scoring", "must be auto, loglik or parse"
        )


# ----------------------------------------------------------------------------------------
# Task builders


def _model_info(config: LLMConfig) -> dict[str, Any]:
    return {"llm": config.llm, "params": config.params().to_dict()}


def _rewrite_row(record: Record, row_id: str, seed: int, aug: dict[str, Any], reply: str) -> Record:
    return Record(
        id=row_id,
        text=clean_reply(reply),
        label=record.label,
        aug={**aug, "seed": seed},
    )


def rewrite_tasks(
    records: list[Record], config: RewriteConfig, template: PromptTemplate | None = None
) -> list[Task]:
    """``n`` rewrites of every row; each keeps its parent's label."""
    template = template or config.template()
    tasks = []
    taken = frozenset(record.id for record in records)
    for record in records:
        if record.label is None:
            raise AugtoolError(f'record "{record.id}" has no label; llm rewrite needs labels')
        for variant in range(config.n):
            seed = derive_seed(config.seed, "rew", record.id, variant)
            aug = make_aug(
                "llm-rew",
                [record.id],
                prompt_id=template.id,
                variant=variant,
                **_model_info(config),
            )
            prompt = template.render(text=record.text, label=record.label)
            row_id = child_id(record.id, f"rew{variant}", taken)
            build = partial(_rewrite_row, record, row_id, seed, aug)
            tasks.append(Task(row_id, prompt, seed, build, (record.id,)))
    return tasks


def _new_row(
    key: str,
    label: str,
    seed: int,
    aug: dict[str, Any],
    reply: str,
    label_dist: dict[str, float] | None = None,
) -> Record:
    return Record(
        id=key,
        text=clean_reply(reply),
        label=label,
        label_dist=label_dist,
        aug={**aug, "seed": seed},
    )


def generate_tasks(
    records: list[Record],
    config: GenerateConfig,
    label_set: LabelSet | None = None,
    template: PromptTemplate | None = None,
) -> list[Task]:
    """``per_label`` new rows per label: the paper's zero-shot prompt (a label and a
    topic), or a prompt showing ``shots`` examples of the label (``{examples}``)."""
    template = template or config.template()
    if label_set is None and config.labels:
        label_set = load_label_set(config.labels)
    by_label: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if record.label is not None:
            by_label[record.label].append(record)
    if label_set is not None:
        label_set.require(by_label, config.labels or "labels file")
    labels = label_set.names if label_set else labels_of(records)
    shows_examples = "examples" in template.placeholders
    missing = [label for label in labels if not by_label.get(label)]
    if missing and shows_examples:
        raise AugtoolError(
            f"no input rows with label(s) {', '.join(missing)}; "
            "this prompt shows examples of every label"
        )
    topics = config.topics()
    tasks = []
    for label in labels:
        pool = by_label.get(label, [])
        description = label_set.description(label) if label_set else ""
        shown = label_set.text_of(label) if label_set else label
        for index in range(config.per_label):
            seed = derive_seed(config.seed, "gen", label, index)
            rng = random.Random(seed)
            shots = rng.sample(pool, min(config.shots, len(pool))) if shows_examples else []
            topic = rng.choice(topics) if topics else ""
            parents = tuple(r.id for r in shots)
            key = f"llm-gen-{label}-{index}"
            extra = {"topic": topic} if topic else {}
            aug = make_aug(
                "llm-gen", list(parents), prompt_id=template.id, **extra, **_model_info(config)
            )
            prompt = template.render(
                label=shown,
                topic=topic,
                description=f" ({description})" if description else "",
                examples="\n".join(f"- {r.text}" for r in shots),
            )
            tasks.append(Task(key, prompt, seed, partial(_new_row, key, label, seed, aug), parents))
    return tasks


def _pick_pair(rng: random.Random, records: list[Record], mode: str) -> tuple[Record, Record]:
    for _ in range(1000):
        first, second = rng.sample(records, 2)
        same = first.label == second.label
        if mode == "any" or (mode == "inter-class") != same:
            return first, second
    raise AugtoolError(f"--pair-mode {mode}: no such pair found in the input")


def mix_tasks(
    records: list[Record], config: MixConfig, template: PromptTemplate | None = None
) -> list[Task]:
    """``pairs`` mixed rows, each with ``label_dist = {y_a: lambda, y_b: 1 - lambda}``.

    The paper's prompt asks for a fusion of the two sentences and names no ratio, so
    lambda is 0.5; a prompt that names the ratio (``{ratio_a}``/``{ratio_b}``, augtool's
    style) draws lambda ~ Beta(alpha, alpha) per row and tells it to the LLM.
    """
    template = template or config.template()
    labelled = [r for r in records if r.label is not None]
    if len(labelled) < 2:
        raise AugtoolError("llm mix needs at least two labelled rows")
    if config.pair_mode == "inter-class" and len({r.label for r in labelled}) < 2:
        raise AugtoolError("--pair-mode inter-class needs at least two labels in the input")
    names_ratio = bool(template.placeholders & {"ratio_a", "ratio_b"})
    tasks = []
    for index in range(config.pairs):
        seed = derive_seed(config.seed, "mix", index)
        rng = random.Random(seed)
        first, second = _pick_pair(rng, labelled, config.pair_mode)
        lam = rng.betavariate(config.alpha, config.alpha) if names_ratio else 0.5
        dist: dict[str, float] = defaultdict(float)
        dist[str(first.label)] += lam
        dist[str(second.label)] += 1 - lam
        hard = max(dist.items(), key=lambda item: item[1])[0]
        key = f"llm-mix-{index}"
        aug = make_aug(
            "llm-mix",
            [first.id, second.id],
            prompt_id=template.id,
            **{"lambda": round(lam, 6)},
            **_model_info(config),
        )
        prompt = template.render(
            text1=first.text,
            text2=second.text,
            text_a=first.text,
            text_b=second.text,
            label_a=first.label,
            label_b=second.label,
            ratio_a=round(100 * lam),
            ratio_b=100 - round(100 * lam),
        )
        soft = {name: round(weight, 6) for name, weight in dist.items()}
        build = partial(_new_row, key, hard, seed, aug, label_dist=soft)
        tasks.append(Task(key, prompt, seed, build, (first.id, second.id)))
    return tasks


def label_prompt(
    record: Record, label_set: LabelSet, template: PromptTemplate
) -> list[dict[str, str]]:
    """The labelling prompt of one row (every label placeholder a template may use)."""
    return template.render(
        text=record.text,
        label_list=label_set.label_list(),
        label_map=label_set.label_map(),
        label_descriptions=label_set.describe(),
    )


def labelled_row(record: Record, label: str | None, info: dict[str, Any]) -> Record:
    """The input row with ``label`` set (or removed when none was named) and the LLM's
    evidence under ``llm_label``."""
    extra = dict(record.extra)
    evidence = dict(info)
    if record.label is not None:
        evidence["original_label"] = record.label
    extra["llm_label"] = evidence
    return Record(
        id=record.id,
        text=record.text,
        label=label,
        text_pair=record.text_pair,
        aug=record.aug,
        extra=extra,
    )


def _parsed_row(record: Record, label_set: LabelSet, info: dict[str, Any], reply: str) -> Record:
    if not reply.strip():
        raise ReplyRejected("empty reply")
    label = label_set.parse(reply)
    status = "parsed" if label is not None else "unparsed"
    return labelled_row(record, label, {**info, "status": status, "reply": reply})


def parse_label_tasks(
    records: list[Record],
    config: LabelConfig,
    label_set: LabelSet,
    template: PromptTemplate | None = None,
) -> list[Task]:
    """openai: path: ask for the label and parse the reply; unparsable replies are kept
    unlabelled with ``llm_label.status = "unparsed"``, never mapped to a guess."""
    template = template or config.template()
    info = {"method": "parse", "prompt_id": template.id, "llm": config.llm}
    return [
        Task(
            record.id,
            label_prompt(record, label_set, template),
            derive_seed(config.seed, "label", record.id),
            partial(_parsed_row, record, label_set, info),
            (record.id,),
        )
        for record in records
    ]


#: Placeholders each step can fill (a prompt file may use any of them).
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "llm.rewrite": frozenset({"text", "label"}),
    "llm.generate": frozenset({"label", "topic", "description", "examples"}),
    "llm.mix": frozenset(
        {"text1", "text2", "text_a", "text_b", "label_a", "label_b", "ratio_a", "ratio_b"}
    ),
    "llm.label": frozenset({"text", "label_list", "label_map", "label_descriptions"}),
}
#: Placeholders a prompt file must use.
REQUIRED: dict[str, frozenset[str]] = {
    "llm.rewrite": frozenset({"text"}),
    "llm.generate": frozenset({"label"}),
    "llm.label": frozenset({"text"}),
}
#: Groups of which a prompt file must use one whole group (the paper's and augtool's
#: spellings of the two texts of LLM-Mix).
ALTERNATIVES: dict[str, tuple[frozenset[str], ...]] = {
    "llm.mix": (frozenset({"text1", "text2"}), frozenset({"text_a", "text_b"})),
}


def run_loglik_labelling(
    records: list[Record],
    llm: ScoringLLM,
    label_set: LabelSet,
    config: LabelConfig,
    writer: JsonlWriter,
    *,
    template: PromptTemplate | None = None,
    budget: RequestBudget | None = None,
    reporter: Reporter = SILENT,
    summary: JobSummary | None = None,
) -> JobSummary:
    """hf: path: score every label's text (what the prompt shows) as the reply and take
    the most likely one."""
    template = template or config.template()
    summary = summary if summary is not None else JobSummary()
    summary.total = len(records)
    todo = [r for r in records if r.id not in writer.done_ids]
    summary.resumed = len(records) - len(todo)
    advance = reporter.task("scoring labels", len(records), completed=summary.resumed)
    names = label_set.names
    options = [label_set.text_of(name) for name in names]
    for start in range(0, len(todo), llm.batch_size):
        chunk = todo[start : start + llm.batch_size]
        if budget is not None:
            chunk = budget.take(chunk)
        scores = llm.score([label_prompt(r, label_set, template) for r in chunk], options)
        rows = []
        for record, row_scores in zip(chunk, scores, strict=True):
            values = [s.mean if config.normalize else s.logprob for s in row_scores]
            best = max(range(len(options)), key=values.__getitem__)
            info = {
                "method": "loglik",
                "normalized": config.normalize,
                "scores": {n: round(v, 6) for n, v in zip(names, values, strict=True)},
                "prompt_id": template.id,
                "llm": config.llm,
            }
            rows.append(labelled_row(record, names[best], info))
        writer.write(rows)
        summary.written += len(rows)
        summary.requests += len(rows)
        advance(len(rows))
    return summary
