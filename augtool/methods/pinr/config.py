"""Configs of the ``augtool pinr`` commands (one dataclass per command)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from augtool.core.config import check
from augtool.core.device import DTYPES
from augtool.core.generation.params import GenerationParams
from augtool.core.hub import DEFAULT_ENCODER, ENCODER_HELP
from augtool.core.inversion.decoder_config import DecoderConfig
from augtool.core.pretrained import check_device_map, device_map_field, load_in_4bit_field

METHODS = ("pinr", "random", "dallme", "mgd3", "aug-pe")
#: Methods that decode embedding-space targets (they need --decoder).
DECODING_METHODS = ("pinr", "dallme")
INIT_MODES = ("real", "noise")
COVARIANCES = ("diag", "spherical", "full")
DATASET_PROMPTS = ("generic", "ag_news", "sst2", "gsm8k", "quora")
PE_VARIATIONS = ("blank-fill", "rephrase")
SVGD_OPTIMIZERS = ("adagrad", "rmsprop", "plain")
PREFIX_HELP = (
    "Task prompt put before every text before embedding: ag_news or sst2 for the "
    "paper's appendix B.1 prompt (joined to the text by a space), or literal text used "
    "as given."
)


def check_qa_fields(question: str | None, answer: str | None) -> None:
    """Q&A mode needs both fields, and two different ones."""
    check(
        (question is None) == (answer is None),
        "question_field" if question is None else "answer_field",
        "Q&A rows need both --question-field and --answer-field",
    )
    check(
        question is None or question != answer,
        "answer_field",
        "must differ from --question-field",
    )


QUESTION_HELP = (
    "Q&A rows: JSON field of the question; the row is condensed as 'question [SEP] "
    "answer' (appendix A.1) and split back on output. Needs --answer-field."
)
ANSWER_HELP = "Q&A rows: JSON field of the answer (with --question-field)."


@dataclass
class CondenseConfig:
    """Condense a dataset to ``m`` rows: PInR (particles -> decoder -> LLM refinement) or a
    baseline (random subset, DaLLME k-means centres)."""

    m: int = field(default=0, metadata={"help": "Rows to keep in the condensed set (M)."})
    method: str = field(
        default="pinr",
        metadata={
            "help": "pinr, random (uniform subset), dallme (k-means centres decoded), mgd3 "
            "(the real row nearest each k-means mode) or aug-pe (Aug-PE: LLM samples "
            "evolved by nearest-neighbour votes of the real rows)."
        },
    )
    encoder: str = field(default=DEFAULT_ENCODER, metadata={"help": ENCODER_HELP})
    prefix: str | None = field(
        default=None,
        metadata={
            "help": PREFIX_HELP + " By default the one the decoder was trained with "
            "(--prefix '' for none)."
        },
    )
    class_wise: bool = field(
        default=True,
        metadata={"help": "Condense each label apart (labels required); M split across them."},
    )
    even: bool = field(
        default=False,
        metadata={"help": "Split M evenly across labels instead of in proportion to size."},
    )
    components: int = field(
        default=8, metadata={"help": "Gaussian-mixture components per class (the score)."}
    )
    covariance: str = field(
        default="diag", metadata={"help": "GMM covariance: diag, spherical or full."}
    )
    iterations: int = field(default=500, metadata={"help": "SVGD iterations."})
    step_size: float = field(
        default=0.01, metadata={"help": "SVGD step size (Adagrad; for unit-norm embeddings)."}
    )
    svgd_optimizer: str = field(
        default="adagrad",
        metadata={
            "help": "SVGD steps: adagrad (per-coordinate, as Liu & Wang's code), rmsprop, or "
            "plain (Eq. 2's fixed step xi = --step-size; scale it to the score)."
        },
    )
    init: str = field(
        default="real",
        metadata={
            "help": "Particle start: real (random real embeddings) or noise (draws from the "
            "fitted mixture: no real row is copied)."
        },
    )
    refine_llm: str | None = field(
        default=None,
        metadata={
            "help": "The LLM API, hf:<model> or openai:<model>: refines decoded texts "
            "(pinr, dallme) and writes and varies the samples of aug-pe."
        },
    )
    refine: bool = field(
        default=True,
        metadata={"help": "Refine with --refine-llm; --no-refine keeps the raw inversions."},
    )
    variants: int = field(
        default=3, metadata={"help": "Refinement: variants asked per seed text (L)."}
    )
    keep: int = field(
        default=1, metadata={"help": "Refinement: variants kept as next round's seeds (K)."}
    )
    rounds: int = field(
        default=1,
        metadata={
            "help": "Refinement: T of Algorithm 1, whose loop runs t = 0..T (T + 1 request "
            "rounds; 0: a single round)."
        },
    )
    dataset_prompt: str = field(
        default="generic",
        metadata={
            "help": "Refinement prompt (appendix B.1): ag_news, sst2, gsm8k, quora, or "
            "generic (augtool's, for other data)."
        },
    )
    labels: str | None = field(
        default=None,
        metadata={
            "help": "Labels file (JSON/YAML; examples/labels/): the label texts shown as "
            "{category} in prompts, and descriptions for aug-pe."
        },
    )
    question_field: str | None = field(default=None, metadata={"help": QUESTION_HELP})
    answer_field: str | None = field(default=None, metadata={"help": ANSWER_HELP})
    pe_iterations: int = field(
        default=10, metadata={"help": "aug-pe: iterations of voting and variation."}
    )
    pe_variations: int = field(
        default=3,
        metadata={
            "help": "aug-pe: variations written per selected sample (population = M x (1 + this))."
        },
    )
    pe_variation: str = field(
        default="blank-fill",
        metadata={
            "help": "aug-pe: how the LLM varies a sample: blank-fill (fill in masked "
            "words, Aug-PE's default) or rephrase."
        },
    )
    pe_mask_prob: float = field(
        default=0.5, metadata={"help": "aug-pe blank-fill: share of words masked."}
    )
    pe_topic: str = field(
        default="text",
        metadata={
            "help": "aug-pe: what a sample is, in the generation prompts (e.g. 'news "
            "article', 'movie review', 'grade-school math problem')."
        },
    )
    noise_multiplier: float = field(
        default=0.0,
        metadata={
            "help": "aug-pe: Gaussian noise (sigma) added to the vote histogram; 0 = no "
            "privacy (the PInR paper's infinite budget)."
        },
    )
    pe_threshold: float = field(
        default=0.0, metadata={"help": "aug-pe: votes below this count as zero (noisy runs)."}
    )
    correction_steps: int = field(
        default=0, metadata={"help": "Decoder correction steps (vec2text corrector)."}
    )
    max_decode_tokens: int = field(default=48, metadata={"help": "Longest decoded text."})
    decode_batch_size: int = field(default=32, metadata={"help": "Particles decoded per batch."})
    prompt_file: str | None = field(
        default=None,
        metadata={
            "help": "Replace the refinement prompt; it must use the slot the "
            "--dataset-prompt uses ({text}, {sentence} or {question} and {answer}) and may "
            "use {category}, {label}."
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
    batch_size: int = field(default=16, metadata={"help": "hf: prompts per generation batch."})
    max_new_tokens: int = field(default=96, metadata={"help": "Longest refined text, in tokens."})
    temperature: float = field(default=0.7, metadata={"help": "Refinement sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold."})
    cache: bool = field(default=True, metadata={"help": "Use the LLM response cache."})
    max_requests: int | None = field(
        default=None, metadata={"help": "Stop after this many LLM calls; rerun to continue."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of particles, samples and requests."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    dtype: str = field(default="auto", metadata={"help": "hf: LLM weights dtype."})
    device_map: str | None = device_map_field()
    load_in_4bit: bool = load_in_4bit_field()
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        check(self.m >= 1, "m", f"must be at least 1 (got {self.m})")
        check(self.method in METHODS, "method", f"must be one of {', '.join(METHODS)}")
        check(self.components >= 1, "components", "must be at least 1")
        check(
            self.covariance in COVARIANCES,
            "covariance",
            f"must be one of {', '.join(COVARIANCES)}",
        )
        check(self.iterations >= 1, "iterations", "must be at least 1")
        check(self.step_size > 0, "step_size", "must be positive")
        check(
            self.svgd_optimizer in SVGD_OPTIMIZERS,
            "svgd_optimizer",
            f"must be one of {', '.join(SVGD_OPTIMIZERS)}",
        )
        check(self.init in INIT_MODES, "init", f"must be one of {', '.join(INIT_MODES)}")
        check(self.variants >= 1, "variants", "must be at least 1")
        check(self.keep >= 1, "keep", "must be at least 1")
        check(self.rounds >= 0, "rounds", "must be >= 0 (T: the loop runs t = 0..T)")
        check(
            self.dataset_prompt in DATASET_PROMPTS,
            "dataset_prompt",
            f"must be one of {', '.join(DATASET_PROMPTS)}",
        )
        check(self.correction_steps >= 0, "correction_steps", "must be >= 0")
        check(self.max_decode_tokens >= 1, "max_decode_tokens", "must be at least 1")
        check_qa_fields(self.question_field, self.answer_field)
        check(
            self.dataset_prompt not in ("gsm8k", "quora") or self.qa,
            "dataset_prompt",
            f"{self.dataset_prompt} refines Q&A pairs: give --question-field and --answer-field",
        )
        check(self.pe_iterations >= 1, "pe_iterations", "must be at least 1")
        check(self.pe_variations >= 1, "pe_variations", "must be at least 1")
        check(
            self.pe_variation in PE_VARIATIONS,
            "pe_variation",
            f"must be one of {', '.join(PE_VARIATIONS)}",
        )
        check(0 < self.pe_mask_prob < 1, "pe_mask_prob", "must be in (0, 1)")
        check(bool(self.pe_topic.strip()), "pe_topic", "must not be empty")
        check(self.noise_multiplier >= 0, "noise_multiplier", "must be >= 0")
        check(self.pe_threshold >= 0, "pe_threshold", "must be >= 0")

        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")

        check_device_map(self.device_map)
        check(self.decode_batch_size >= 1, "decode_batch_size", "must be at least 1")
        check(self.concurrency >= 1, "concurrency", "must be at least 1")
        check(self.temperature >= 0, "temperature", "must be >= 0")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        check(
            self.max_requests is None or self.max_requests >= 1,
            "max_requests",
            "must be at least 1",
        )

    def params(self) -> GenerationParams:
        return GenerationParams(self.max_new_tokens, self.temperature, self.top_p)

    def backend_options(self) -> dict[str, Any]:
        from augtool.core.generation import backend_options

        return backend_options(self)

    @property
    def refining(self) -> bool:
        """Whether decoded texts go through LLM refinement."""
        return self.refine and self.method in DECODING_METHODS and bool(self.refine_llm)

    @property
    def qa(self) -> bool:
        """Whether rows are Q&A pairs (condensed as 'question [SEP] answer')."""
        return self.question_field is not None


@dataclass
class EvaluateConfig:
    """Distribution metrics and privacy leakage of a condensed set against its source."""

    encoder: str = field(default=DEFAULT_ENCODER, metadata={"help": ENCODER_HELP})
    prefix: str = field(default="", metadata={"help": PREFIX_HELP + " Both sets."})
    mauve_seeds: int = field(
        default=5, metadata={"help": "MAUVE runs (seeds 0..N-1), averaged with their spread."}
    )
    mauve: bool = field(default=True, metadata={"help": "Compute MAUVE (--no-mauve skips it)."})
    seed: int = field(default=0, metadata={"help": "Seed of the quantisation and projections."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    batch_size: int = field(default=64, metadata={"help": "Texts per encoder batch."})
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    question_field: str | None = field(default=None, metadata={"help": QUESTION_HELP})
    answer_field: str | None = field(default=None, metadata={"help": ANSWER_HELP})

    def __post_init__(self) -> None:
        check(self.mauve_seeds >= 1, "mauve_seeds", "must be at least 1")
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        check_qa_fields(self.question_field, self.answer_field)


@dataclass
class PinrDecoderConfig(DecoderConfig):
    """``pinr train-decoder``: the decoder's options, plus Q&A rows (trained on
    'question [SEP] answer' so that the decoder learns to write [SEP]) and the
    appendix B.1 prefixes by name."""

    prefix: str = field(default="", metadata={"help": PREFIX_HELP + " Recorded in the decoder."})
    question_field: str | None = field(default=None, metadata={"help": QUESTION_HELP})
    answer_field: str | None = field(default=None, metadata={"help": ANSWER_HELP})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_qa_fields(self.question_field, self.answer_field)
