"""Configs of the ``augtool invmix`` commands (one dataclass per command)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from augtool.core.config import check
from augtool.core.device import DTYPES
from augtool.core.generation.prompts import PROMPT_STYLES, PromptTemplate, step_template
from augtool.core.hub import DEFAULT_ENCODER, ENCODER_HELP
from augtool.core.pretrained import check_device_map, device_map_field, load_in_4bit_field
from augtool.errors import OptionError

PAIR_MODES = ("random", "inter-class", "intra-class")
LABEL_MODES = ("soft", "llm")
#: How an LLM's answer becomes a label: auto (parse on openai:, loglik on hf:), the
#: generated reply parsed to a label, or the most likely label text (log-likelihood).
LABEL_SCORINGS = ("auto", "parse", "loglik")
#: Placeholders a labelling prompt (A.3, and A.4's second set) may use; it must use
#: ``{text}`` and one of the others.
LABEL_PLACEHOLDERS = frozenset({"text", "label_list", "label_map", "label_descriptions"})
#: A labelling prompt shows the labels with one of these placeholders.
LABEL_SETS = tuple(frozenset({name}) for name in ("label_list", "label_map", "label_descriptions"))
#: Placeholders of A.4's first set (is the interpolated label right?); both are needed.
MATCH_PLACEHOLDERS = frozenset({"text", "label_text"})

_DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps."
_DTYPE_HELP = "LLM weights: auto (bfloat16 on CUDA), float32, bfloat16, float16."
_GRAD_ACCUM_HELP = (
    "Gradient accumulation: each optimizer step trains on N micro-batches of --batch-size "
    "sentences (one batch of N x batch size, in less memory); under `accelerate launch` "
    "the processes share each step's sentences."
)


def _check_runtime(device: str, dtype: str, device_map: str | None = None) -> None:
    check(bool(device.strip()), "device", "must not be empty")
    check(dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
    check_device_map(device_map)


def resolve_scoring(scoring: str, llm: Any, option: str) -> str:
    """``auto`` becomes ``loglik`` on a backend that scores (hf:) and ``parse`` elsewhere;
    ``loglik`` on a backend that cannot score is a one-line error."""
    from augtool.core.generation import ScoringLLM

    if scoring == "auto":
        return "loglik" if isinstance(llm, ScoringLLM) else "parse"
    if scoring == "loglik" and not isinstance(llm, ScoringLLM):
        raise OptionError(option, "loglik needs a local model (hf:)")
    return scoring


@dataclass
class AdaptorConfig:
    """Stage 1: align the adaptor on unlabeled text (only phi trains)."""

    encoder: str = field(default=DEFAULT_ENCODER, metadata={"help": ENCODER_HELP})
    llm: str = field(default="", metadata={"help": "The frozen LM: hf:<model id or folder>."})
    soft_tokens: int = field(default=1, metadata={"help": "Soft tokens per embedding (k)."})
    adaptor_hidden: int = field(
        default=0,
        metadata={"help": "Hidden size of the adaptor MLP (0: one linear layer, the paper's)."},
    )
    adaptor_norm: bool = field(
        default=True,
        metadata={
            "help": "LayerNorm on the adaptor's input (augtool's addition; "
            "--no-adaptor-norm is the paper's plain one-layer MLP)."
        },
    )
    epochs: int = field(default=1, metadata={"help": "Passes over the corpus."})
    lr: float = field(default=2e-5, metadata={"help": "Adam learning rate of the adaptor."})
    batch_size: int = field(default=16, metadata={"help": "Sentences per step."})
    grad_accum: int = field(default=1, metadata={"help": _GRAD_ACCUM_HELP})
    max_target_tokens: int = field(
        default=64, metadata={"help": "Truncate target sentences to this many tokens."}
    )
    save_every: int = field(default=500, metadata={"help": "Checkpoint every N steps."})
    max_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N sentences of the corpus."}
    )
    max_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Stop training after this many minutes (resumed runs included) and "
            "save the model as it stands."
        },
    )
    seed: int = field(default=0, metadata={"help": "Random seed."})
    device: str = field(default="auto", metadata={"help": _DEVICE_HELP})
    dtype: str = field(default="auto", metadata={"help": _DTYPE_HELP})
    device_map: str | None = device_map_field()
    load_in_4bit: bool = load_in_4bit_field()
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Trade compute for memory in the LM (large LMs)."}
    )
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})

    def __post_init__(self) -> None:
        check(bool(self.llm.strip()), "llm", "is required: hf:<model id or folder>")
        check(self.soft_tokens >= 1, "soft_tokens", "must be at least 1")
        check(self.adaptor_hidden >= 0, "adaptor_hidden", "must be >= 0")
        check(self.epochs >= 1, "epochs", "must be at least 1")
        check(self.lr > 0, "lr", "must be positive")
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        check(self.grad_accum >= 1, "grad_accum", "must be at least 1")
        check(self.max_target_tokens >= 1, "max_target_tokens", "must be at least 1")
        check(self.save_every >= 1, "save_every", "must be at least 1")
        check(
            self.max_samples is None or self.max_samples >= 1, "max_samples", "must be at least 1"
        )
        check(self.max_minutes is None or self.max_minutes > 0, "max_minutes", "must be positive")
        _check_runtime(self.device, self.dtype, self.device_map)


@dataclass
class RefineConfig:
    """Stage 2: alternate task-model training (CE, theta) and adaptor refinement (GEN, phi)."""

    rounds: int = field(default=3, metadata={"help": "Alternations of the two steps."})
    task_epochs: int = field(default=5, metadata={"help": "Task-model epochs per round."})
    adaptor_epochs: int = field(default=5, metadata={"help": "Adaptor epochs per round."})
    lr: float = field(default=2e-5, metadata={"help": "Adam learning rate of the adaptor."})
    task_lr: float = field(default=5e-5, metadata={"help": "Learning rate of the task encoder."})
    batch_size: int = field(default=16, metadata={"help": "Adaptor batch size."})
    task_batch_size: int = field(default=16, metadata={"help": "Task-model batch size."})
    grad_accum: int = field(
        default=1,
        metadata={
            "help": "Gradient accumulation of both steps: each optimizer step of the task "
            "model and of the adaptor trains on N micro-batches of their batch size; under "
            "`accelerate launch` the processes share each step's rows."
        },
    )
    encoder: str | None = field(
        default=None,
        metadata={"help": "Start from this encoder instead of the adaptor's (same dimension)."},
    )
    save_every: int = field(default=500, metadata={"help": "Adaptor checkpoint every N steps."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    device: str = field(default="auto", metadata={"help": _DEVICE_HELP})
    dtype: str = field(default="auto", metadata={"help": _DTYPE_HELP})
    device_map: str | None = device_map_field()
    load_in_4bit: bool = load_in_4bit_field()
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Trade compute for memory in the LM (large LMs)."}
    )
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        for name in (
            "rounds",
            "task_epochs",
            "adaptor_epochs",
            "batch_size",
            "task_batch_size",
            "grad_accum",
            "save_every",
        ):
            check(getattr(self, name) >= 1, name, "must be at least 1")
        check(self.lr > 0, "lr", "must be positive")
        check(self.task_lr > 0, "task_lr", "must be positive")
        _check_runtime(self.device, self.dtype, self.device_map)


@dataclass
class ReconstructConfig:
    """Invert the embeddings of real sentences and measure how close they come back."""

    batch_size: int = field(default=32, metadata={"help": "Embeddings inverted per batch."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest reconstruction."})
    max_pairs: int = field(
        default=20000, metadata={"help": "Pairs sampled for the same/different-class groups."}
    )
    seed: int = field(default=0, metadata={"help": "Seed for the pair sample."})
    device: str = field(default="auto", metadata={"help": _DEVICE_HELP})
    dtype: str = field(default="auto", metadata={"help": _DTYPE_HELP})
    device_map: str | None = device_map_field()
    load_in_4bit: bool = load_in_4bit_field()
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be at least 1")
        check(self.max_pairs >= 1, "max_pairs", "must be at least 1")
        _check_runtime(self.device, self.dtype, self.device_map)


@dataclass
class InvmixGenerateConfig:
    """Stage 3: mix pairs of embeddings and invert the mixtures to text."""

    n: int = field(default=100, metadata={"help": "Mixed rows to make."})
    alpha: float = field(default=0.4, metadata={"help": "lambda ~ Beta(alpha, alpha)."})
    lam: float | None = field(
        default=None, metadata={"help": "A fixed lambda in [0, 1] instead of sampling it."}
    )
    pairs: str = field(
        default="random", metadata={"help": "Which rows to pair: random, inter-class, intra-class."}
    )
    labels: str = field(
        default="soft",
        metadata={
            "help": "soft: label_dist = lambda*y_i + (1-lambda)*y_j; llm: a hard label "
            "from an LLM (the labelling prompt)."
        },
    )
    label_llm: str | None = field(
        default=None,
        metadata={
            "help": "LLM for --labels llm (default: the inversion LM); hf:<model> or "
            "openai:<model>."
        },
    )
    label_scoring: str = field(
        default="auto",
        metadata={
            "help": "--labels llm: parse (the reply, parsed to a label: the paper's A.3), "
            "loglik (the most likely label text; hf: only) or auto (parse on openai:, "
            "loglik on hf:)."
        },
    )
    label_descriptions: str | None = field(
        default=None,
        metadata={
            "help": "Labels file for --labels llm: label texts and descriptions shown in "
            "{label_list} (e.g. examples/labels/trec.json, the paper's A.3); it must name "
            "every label of the data."
        },
    )
    prompt_file: str | None = field(
        default=None,
        metadata={
            "help": "Replace the labelling prompt of --labels llm (placeholders {text} and "
            "one of {label_list}, {label_map}, {label_descriptions})."
        },
    )
    prompt_style: str = field(
        default="paper",
        metadata={"help": "Built-in labelling prompt: paper (appendix A.3, verbatim) or augtool."},
    )
    base_url: str | None = field(
        default=None, metadata={"help": "openai: server URL for --label-llm."}
    )
    temperature: float = field(
        default=0.0, metadata={"help": "Sampling temperature of the inversion (0: greedy)."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest generated sentence."})
    batch_size: int = field(default=32, metadata={"help": "Mixtures inverted per batch."})
    keep_duplicates: bool = field(
        default=False, metadata={"help": "Keep outputs identical to one of their parents."}
    )
    seed: int = field(default=0, metadata={"help": "Run seed; each row gets its own from it."})
    device: str = field(default="auto", metadata={"help": _DEVICE_HELP})
    dtype: str = field(default="auto", metadata={"help": _DTYPE_HELP})
    device_map: str | None = device_map_field()
    load_in_4bit: bool = load_in_4bit_field()
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        check(self.n >= 1, "n", "must be at least 1")
        check(self.alpha > 0, "alpha", f"must be positive (got {self.alpha})")
        check(
            self.lam is None or 0.0 <= self.lam <= 1.0,
            "lam",
            f"must be between 0 and 1 (got {self.lam})",
        )
        check(self.pairs in PAIR_MODES, "pairs", f"must be one of {', '.join(PAIR_MODES)}")
        check(self.labels in LABEL_MODES, "labels", f"must be one of {', '.join(LABEL_MODES)}")
        check(
            self.label_scoring in LABEL_SCORINGS,
            "label_scoring",
            f"must be one of {', '.join(LABEL_SCORINGS)}",
        )
        check(
            self.prompt_style in PROMPT_STYLES,
            "prompt_style",
            f"must be one of {', '.join(PROMPT_STYLES)}",
        )
        check(
            self.prompt_file is None or self.labels == "llm",
            "prompt_file",
            "the labelling prompt is only used with --labels llm",
        )
        check(
            not (self.label_scoring == "loglik" and (self.label_llm or "").startswith("openai:")),
            "label_scoring",
            "loglik needs a local model (hf:), not an openai: --label-llm",
        )
        check(self.temperature >= 0, "temperature", "must be >= 0")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be at least 1")
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        _check_runtime(self.device, self.dtype, self.device_map)

    def label_template(self) -> PromptTemplate:
        """The labelling prompt (A.3's, augtool's, or ``--prompt-file``, checked)."""
        return step_template(
            "llm.label",
            self.prompt_style,
            self.prompt_file,
            available=LABEL_PLACEHOLDERS,
            required=frozenset({"text"}),
            option="prompt_file",
            alternatives=LABEL_SETS,
            needs="show the labels with",
        )

    def resolved_label_scoring(self, llm: Any) -> str:
        return resolve_scoring(self.label_scoring, llm, "label_scoring")


@dataclass
class IntrusionConfig:
    """Manifold intrusion (App. A.4): does the interpolated label fit each mixed row; if
    not, is the label the judge picks one of the parents' (Inside) or not (Outside)."""

    judge: str = field(default="", metadata={"help": "The judge: openai:<model> or hf:<model>."})
    labels: str | None = field(
        default=None,
        metadata={
            "help": "Labels file: the label texts shown in {label_text} and {label_map} "
            "(e.g. examples/labels/trec.json); default: the parents' labels as written."
        },
    )
    sample: int = field(
        default=100,
        metadata={
            "help": "Judge a seeded random sample of this many rows (the paper's 100); "
            "0 judges every row."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the --sample draw."})
    bins: int = field(
        default=5,
        metadata={
            "help": "Bins of the folded mixing ratio max(lambda, 1-lambda) over [0.5, 1] "
            "in the summary and the plot."
        },
    )
    match_prompt_file: str | None = field(
        default=None,
        metadata={
            "help": "Replace step 1 (is the interpolated label right? Yes/No); "
            "placeholders {text} and {label_text}."
        },
    )
    label_prompt_file: str | None = field(
        default=None,
        metadata={
            "help": "Replace step 2 (pick one label, for 'No' rows); placeholders {text} "
            "and one of {label_map}, {label_list}, {label_descriptions}."
        },
    )
    prompt_style: str = field(
        default="paper",
        metadata={"help": "Built-in prompts: paper (appendix A.4, verbatim) or augtool."},
    )
    scoring: str = field(
        default="auto",
        metadata={
            "help": "auto (log-likelihood of Yes/No and of the labels on hf:, reply "
            "parsing on openai:), loglik, parse."
        },
    )
    base_url: str | None = field(
        default=None, metadata={"help": "openai: server URL, or several comma-separated."}
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "openai: variable holding the API key."}
    )
    concurrency: int = field(default=8, metadata={"help": "openai: requests in flight."})
    timeout: float = field(default=60.0, metadata={"help": "openai: seconds per request."})
    max_retries: int = field(default=5, metadata={"help": "openai: retries per request."})
    batch_size: int = field(default=16, metadata={"help": "hf: prompts per batch."})
    max_new_tokens: int = field(default=16, metadata={"help": "Longest judge reply."})
    cache: bool = field(default=True, metadata={"help": "Use the response cache."})
    device: str = field(default="auto", metadata={"help": _DEVICE_HELP})
    dtype: str = field(default="auto", metadata={"help": _DTYPE_HELP})
    device_map: str | None = device_map_field()
    load_in_4bit: bool = load_in_4bit_field()
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})

    def __post_init__(self) -> None:
        check(bool(self.judge.strip()), "judge", "is required: openai:<model> or hf:<model>")
        check(self.sample >= 0, "sample", "must be >= 0 (0: every row)")
        check(self.bins >= 1, "bins", "must be at least 1")
        check(self.scoring in LABEL_SCORINGS, "scoring", "auto, loglik or parse")
        check(
            self.prompt_style in PROMPT_STYLES,
            "prompt_style",
            f"must be one of {', '.join(PROMPT_STYLES)}",
        )
        _check_runtime(self.device, self.dtype, self.device_map)

    def match_template(self) -> PromptTemplate:
        """Step 1 (A.4's first set), or ``--match-prompt-file``, checked."""
        return step_template(
            "invmix.intrusion-match",
            self.prompt_style,
            self.match_prompt_file,
            available=MATCH_PLACEHOLDERS,
            required=MATCH_PLACEHOLDERS,
            option="match_prompt_file",
        )

    def label_template(self) -> PromptTemplate:
        """Step 2 (A.4's second set), or ``--label-prompt-file``, checked."""
        return step_template(
            "invmix.intrusion-label",
            self.prompt_style,
            self.label_prompt_file,
            available=LABEL_PLACEHOLDERS,
            required=frozenset({"text"}),
            option="label_prompt_file",
            alternatives=LABEL_SETS,
            needs="show the labels with",
        )

    def backend_options(self) -> dict[str, Any]:
        from augtool.core.generation import backend_options

        return backend_options(self)


@dataclass
class WarmLMConfig:
    """`invmix warm-lm`: continue a BERT encoder's weights as a causal LM on a corpus, so
    invmix has a small real LM offline (``--llm hf:<output>``)."""

    encoder: str = field(
        default=DEFAULT_ENCODER,
        metadata={
            "help": "Sentence encoder whose BERT weights start the LM (hub id or folder, "
            "'st:'/'hf:' prefixes allowed); it must be a BERT model (model_type bert)."
        },
    )
    epochs: int = field(default=1, metadata={"help": "Passes over the corpus."})
    batch_size: int = field(default=16, metadata={"help": "Sentences per step."})
    grad_accum: int = field(default=1, metadata={"help": _GRAD_ACCUM_HELP})
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate (all weights train)."})
    max_length: int = field(
        default=64,
        metadata={"help": "Truncate sentences to this many tokens, [CLS] and [SEP] included."},
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N sentences of the corpus."}
    )
    max_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Stop training after this many minutes (resumed runs included) and "
            "save the model as it stands."
        },
    )
    save_every: int = field(default=500, metadata={"help": "Checkpoint every N steps."})
    seed: int = field(default=0, metadata={"help": "Random seed (new head weights, batch order)."})
    device: str = field(default="auto", metadata={"help": _DEVICE_HELP})
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})

    def __post_init__(self) -> None:
        check(bool(self.encoder.strip()), "encoder", "must not be empty")
        check(self.epochs >= 1, "epochs", "must be at least 1")
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        check(self.grad_accum >= 1, "grad_accum", "must be at least 1")
        check(self.lr > 0, "lr", "must be positive")
        check(self.max_length >= 3, "max_length", "must be at least 3 ([CLS], a token, [SEP])")
        check(
            self.max_samples is None or self.max_samples >= 1, "max_samples", "must be at least 1"
        )
        check(self.max_minutes is None or self.max_minutes > 0, "max_minutes", "must be positive")
        check(self.save_every >= 1, "save_every", "must be at least 1")
        check(bool(self.device.strip()), "device", "must not be empty")
        check(bool(self.text_field.strip()), "text_field", "must not be empty")
