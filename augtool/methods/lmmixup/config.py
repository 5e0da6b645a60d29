"""Configs of the ``augtool lmmixup`` commands (one dataclass per command), and the
parsers of their compound options (``--group-size 2:5``, ``--reward quality=0.7,...``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from augtool.core.config import check
from augtool.core.device import DTYPES
from augtool.core.generation.params import GenerationParams
from augtool.core.hub import DEFAULT_ENCODER, ENCODER_HELP
from augtool.core.pretrained import check_device_map, device_map_field, load_in_4bit_field
from augtool.errors import OptionError

DEGRADATIONS = ("noise", "drop", "truncation", "redundancy", "paraphrase")
REWARDS = ("quality", "alignment", "format")
#: knn: the public code's Bayesian k-NN over a rated bank (``lmmixup rate``); cosine: mean
#: cosine to the nearest bank samples (no ratings needed); judge: an LLM rates each sample.
QUALITY_SCORERS = ("knn", "cosine", "judge")
#: The public training config's weights (yuu250/LM-mixup examples/config_mixup_bayes.yaml).
DEFAULT_WEIGHTS = "quality=0.5,alignment=0.4,format=0.1"
#: ``--align-threshold auto``: the threshold comes from the mixture itself.
AUTO = "auto"


def schema_choices() -> tuple[str, ...]:
    """``auto`` and every schema :mod:`augtool.methods.lmmixup.schema` knows."""
    from augtool.methods.lmmixup.schema import SCHEMAS

    return ("auto", *SCHEMAS)


def parse_threshold(value: str | float, option: str = "align_threshold") -> float | None:
    """``auto`` -> ``None`` (calibrate on the mixture); else a cosine in (0, 1]."""
    if str(value).strip().lower() == AUTO:
        return None
    try:
        number = float(value)
    except ValueError:
        raise OptionError(option, f"{value!r}: give auto or a cosine in (0, 1]") from None
    check(0 < number <= 1, option, f"{value!r}: give auto or a cosine in (0, 1]")
    return number


def parse_range(spec: str, option: str = "group_size") -> tuple[int, int]:
    """``"2:5"`` -> ``(2, 5)``; ``"3"`` -> ``(3, 3)``; anything else is an option error."""
    parts = str(spec).split(":")
    try:
        if len(parts) not in (1, 2):
            raise ValueError
        low, high = int(parts[0]), int(parts[-1])
    except ValueError:
        raise OptionError(option, f"{spec!r} is not a range like 2:5 or a number") from None
    if low < 1 or high < low:
        raise OptionError(option, f"{spec!r}: need 1 <= low <= high")
    return low, high


def parse_weights(spec: str, option: str = "reward") -> dict[str, float]:
    """``"quality=0.7,alignment=0.2,format=0.1"`` -> weights by reward name.

    Names must be known rewards; weights are non-negative numbers, not all zero. Rewards
    left out get weight 0 (they are not computed).
    """
    weights: dict[str, float] = {}
    for part in str(spec).split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise OptionError(option, f"{part.strip()!r} is not name=weight")
        if name not in REWARDS:
            raise OptionError(
                option, f"unknown reward {name!r} (known rewards: {', '.join(REWARDS)})"
            )
        if name in weights:
            raise OptionError(option, f"reward {name!r} given twice")
        try:
            weight = float(value)
        except ValueError:
            raise OptionError(
                option, f"weight {value.strip()!r} of {name} is not a number"
            ) from None
        if weight < 0 or weight != weight:
            raise OptionError(option, f"weight of {name} must be >= 0 (got {value.strip()})")
        weights[name] = weight
    if not weights or not any(weights.values()):
        raise OptionError(option, f"{spec!r}: give at least one positive weight")
    return weights


@dataclass
class BuildConfig:
    """Build MIXTURE-style training pairs: groups of degraded / redundant variants of a
    clean sample, each group mapped to the clean sample."""

    group_size: str = field(
        default="2:5", metadata={"help": "Variants per group, a range low:high (or one number)."}
    )
    degrade: str = field(
        default="noise,drop,truncation,redundancy,paraphrase",
        metadata={
            "help": f"Degradations to draw from, comma-separated: {', '.join(DEGRADATIONS)}."
        },
    )
    levels: str = field(
        default="1:2",
        metadata={
            "help": "Degradations stacked on each variant, a range (the hierarchy level: "
            "1 = one degradation, 2 = two...)."
        },
    )
    groups_per_sample: int = field(
        default=1, metadata={"help": "Groups built from each clean sample."}
    )
    noise_rate: float = field(
        default=0.1, metadata={"help": "noise: share of words given character typos."}
    )
    drop_rate: float = field(default=0.2, metadata={"help": "drop: share of words dropped."})
    keep_min: float = field(
        default=0.4, metadata={"help": "truncation: shortest share of the text kept."}
    )
    paraphraser: str | None = field(
        default=None,
        metadata={
            "help": "LLM for paraphrase/redundancy variants (hf:<model> or openai:<model>); "
            "without it, rule-based (WordNet synonyms, word swaps)."
        },
    )
    schema: str = field(
        default="auto",
        metadata={
            "help": "auto (from the first row), instruction (instruction/input/output), qa "
            "(question/answer), mcq (question/options/answer), cs (category/statement), "
            "tfq (statement/answer) or paragraph."
        },
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "Use only a seeded random subset of this many samples."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of every random choice."})
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
    max_new_tokens: int = field(default=256, metadata={"help": "Longest paraphrase, in tokens."})
    temperature: float = field(default=0.9, metadata={"help": "Paraphrase sampling temperature."})
    device: str = field(default="auto", metadata={"help": "hf: auto, cpu, cuda, cuda:N or mps."})
    dtype: str = field(default="auto", metadata={"help": "hf: weights dtype."})
    device_map: str | None = device_map_field()
    load_in_4bit: bool = load_in_4bit_field()
    cache: bool = field(default=True, metadata={"help": "Use the LLM response cache."})

    def __post_init__(self) -> None:
        parse_range(self.group_size, "group_size")
        parse_range(self.levels, "levels")
        names = self.degradations
        check(bool(names), "degrade", "name at least one degradation")
        unknown = [n for n in names if n not in DEGRADATIONS]
        check(
            not unknown,
            "degrade",
            f"unknown degradation {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(DEGRADATIONS)})",
        )
        check(self.groups_per_sample >= 1, "groups_per_sample", "must be at least 1")
        check(0 <= self.noise_rate <= 1, "noise_rate", "must be in [0, 1]")
        check(0 <= self.drop_rate < 1, "drop_rate", "must be in [0, 1)")
        check(0 < self.keep_min <= 1, "keep_min", "must be in (0, 1]")
        check(
            self.schema in schema_choices(),
            "schema",
            f"must be one of {', '.join(schema_choices())}",
        )
        check(self.max_samples is None or self.max_samples >= 1, "max_samples", "must be >= 1")
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
        check_device_map(self.device_map)
        check(self.temperature >= 0, "temperature", "must be >= 0")

    @property
    def degradations(self) -> list[str]:
        return [n.strip() for n in self.degrade.split(",") if n.strip()]

    @property
    def sizes(self) -> tuple[int, int]:
        return parse_range(self.group_size, "group_size")

    @property
    def level_range(self) -> tuple[int, int]:
        return parse_range(self.levels, "levels")

    def params(self) -> GenerationParams:
        return GenerationParams(self.max_new_tokens, self.temperature, 1.0)

    def backend_options(self) -> dict[str, Any]:
        from augtool.core.generation import backend_options

        return backend_options(self)


@dataclass
class RewardConfig:
    """The rewards (shared by ``grpo`` and ``distill``)."""

    reward: str = field(
        default=DEFAULT_WEIGHTS,
        metadata={"help": "Reward weights, name=weight,...: quality, alignment, format."},
    )
    quality: str = field(
        default="knn",
        metadata={
            "help": "Quality scorer: knn (the public code's Bayesian k-NN over a rated bank, "
            "--quality-bank from `lmmixup rate`), cosine (mean cosine to the nearest bank "
            "samples; no ratings needed) or judge (an LLM rates each sample)."
        },
    )
    quality_bank: str | None = field(
        default=None,
        metadata={
            "help": "knn: the rated bank written by `lmmixup rate` (every row a 'rating' "
            "0-5); cosine: any JSONL of good samples (grpo: default the training file's "
            "clean targets)."
        },
    )
    knn_k: int = field(default=16, metadata={"help": "knn: neighbours looked at."})
    judge_llm: str | None = field(
        default=None, metadata={"help": "judge: the rating LLM, hf:<model> or openai:<model>."}
    )
    align_threshold: str = field(
        default=AUTO,
        metadata={
            "help": "Alignment: cosine to the reference that counts as aligned (1). auto "
            "(grpo): derived from the mixture with --encoder, the --align-quantile quantile "
            "of the cosines between each target and its own degraded inputs (recorded in "
            "meta.json); the public code's 0.8 was set for BGE-M3."
        },
    )
    align_quantile: float = field(
        default=0.5,
        metadata={"help": "Alignment, --align-threshold auto: the quantile taken."},
    )
    coverage_weight: float = field(
        default=0.0,
        metadata={
            "help": "Alignment: share given to covering the group's inputs (0 = reference "
            "only, as in the public implementation; distill has no reference and uses coverage)."
        },
    )
    encoder: str = field(default=DEFAULT_ENCODER, metadata={"help": ENCODER_HELP})

    def check_rewards(self) -> None:
        parse_weights(self.reward)
        check(
            self.quality in QUALITY_SCORERS,
            "quality",
            f"must be one of {', '.join(QUALITY_SCORERS)}",
        )
        check(self.knn_k >= 1, "knn_k", "must be at least 1")
        parse_threshold(self.align_threshold)
        check(0 < self.align_quantile < 1, "align_quantile", "must be in (0, 1)")
        check(0 <= self.coverage_weight <= 1, "coverage_weight", "must be in [0, 1]")
        if self.quality == "judge" and self.weights.get("quality", 0) > 0:
            check(bool(self.judge_llm), "judge_llm", "--quality judge needs --judge-llm")

    @property
    def weights(self) -> dict[str, float]:
        return parse_weights(self.reward)

    @property
    def fixed_threshold(self) -> float | None:
        """The alignment threshold given by number, or ``None`` for ``auto``."""
        return parse_threshold(self.align_threshold)


@dataclass
class TrainingOptions:
    """Options shared by ``sft`` and ``grpo`` (TRL trainers, LoRA by default)."""

    epochs: float = field(default=1.0, metadata={"help": "Passes over the mixture pairs."})
    max_steps: int | None = field(
        default=None, metadata={"help": "Stop after this many optimizer steps (wins over epochs)."}
    )
    batch_size: int = field(default=4, metadata={"help": "Rows per device per step."})
    grad_accum: int = field(default=1, metadata={"help": "Gradient accumulation steps."})
    lr: float = field(default=2e-4, metadata={"help": "Learning rate (AdamW)."})
    lora: bool = field(
        default=True, metadata={"help": "Train LoRA adapters (--no-lora: full fine-tuning)."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_targets: str = field(
        default="all-linear",
        metadata={"help": "LoRA target modules (comma-separated or all-linear)."},
    )
    merge: bool = field(
        default=True,
        metadata={"help": "Merge the LoRA weights into the saved model (--no-merge: adapter)."},
    )
    max_length: int = field(
        default=2400,
        metadata={
            "help": "Longest prompt + target, in tokens (the public code's 2,400); longer "
            "pairs are skipped."
        },
    )
    save_steps: int = field(default=100, metadata={"help": "Checkpoint every this many steps."})
    logging_steps: int = field(default=10, metadata={"help": "Log metrics every this many steps."})
    seed: int = field(default=0, metadata={"help": "Seed of initialisation, order and sampling."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    dtype: str = field(
        default="auto", metadata={"help": "Weights dtype: auto, float32, bfloat16..."}
    )

    def check_training(self) -> None:
        check(self.epochs > 0, "epochs", "must be positive")
        check(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be at least 1")
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        check(self.grad_accum >= 1, "grad_accum", "must be at least 1")
        check(self.lr > 0, "lr", "must be positive")
        check(self.lora_r >= 1, "lora_r", "must be at least 1")
        check(self.lora_alpha >= 1, "lora_alpha", "must be at least 1")
        check(0 <= self.lora_dropout < 1, "lora_dropout", "must be in [0, 1)")
        check(bool(self.lora_targets.strip()), "lora_targets", "must name modules")
        check(self.max_length >= 16, "max_length", "must be at least 16")
        check(self.save_steps >= 1, "save_steps", "must be at least 1")
        check(self.logging_steps >= 1, "logging_steps", "must be at least 1")
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")


@dataclass
class SFTTrainConfig(TrainingOptions):
    """Supervised fine-tuning on mixture pairs: the group's inputs in, the clean sample out."""

    def __post_init__(self) -> None:
        self.check_training()


#: Where ``trl vllm-serve`` listens unless told otherwise.
DEFAULT_VLLM_SERVER = "http://localhost:8000"


def vllm_installed() -> bool:
    """Whether the vllm package can be imported (without importing it: it is slow)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def check_vllm_server_url(url: str) -> str:
    """A ``trl vllm-serve`` address, http(s)://host:port without a path (its routes are
    its own, not the OpenAI API under /v1), without a trailing slash."""
    from urllib.parse import urlsplit

    try:
        split = urlsplit(url.strip())
        split.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise OptionError("vllm_server_url", f"{url!r} is not a valid URL") from None
    check(
        split.scheme in ("http", "https") and bool(split.hostname),
        "vllm_server_url",
        f"{url!r} is not an http(s) URL, e.g. {DEFAULT_VLLM_SERVER}",
    )
    check(
        split.path.strip("/") == "" and not split.query,
        "vllm_server_url",
        f"{url!r}: give the trl vllm-serve address without a path, e.g. {DEFAULT_VLLM_SERVER}",
    )
    return url.strip().rstrip("/")


@dataclass
class GRPOTrainConfig(TrainingOptions, RewardConfig):
    """GRPO on mixture prompts with the weighted quality / alignment / format rewards."""

    lr: float = field(default=5e-6, metadata={"help": "Learning rate (AdamW)."})
    group: int = field(
        default=4,
        metadata={
            "help": "Completions sampled per prompt (the GRPO group; the public config's n = 4)."
        },
    )
    max_completion_length: int = field(
        default=2400,
        metadata={
            "help": "Longest sampled completion, in tokens (the public config's 2,400: "
            "replies with reasoning need room to reach </answer>)."
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    beta: float = field(
        default=0.01, metadata={"help": "KL coefficient against the starting model (0: none)."}
    )
    batch_size: int = field(
        default=8, metadata={"help": "Completions per device per step (a multiple of --group)."}
    )
    judge_base_url: str | None = field(default=None, metadata={"help": "judge: openai server URL."})
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "judge: variable holding the API key."}
    )
    use_vllm: bool = field(
        default=False,
        metadata={
            "help": "Sample the completions on a vLLM server (TRL's server mode) instead of "
            "model.generate: start it first with trl vllm-serve --model <model>."
        },
    )
    vllm_server_url: str | None = field(
        default=None,
        metadata={
            "help": "--use-vllm: the trl vllm-serve address, http://host:port "
            f"(default: {DEFAULT_VLLM_SERVER})."
        },
    )
    vllm_server_timeout: float = field(
        default=240.0,
        metadata={"help": "--use-vllm: seconds to wait for the server to come up."},
    )

    def __post_init__(self) -> None:
        self.check_training()
        self.check_rewards()
        self.check_vllm()
        check(self.group >= 2, "group", "must be at least 2 (GRPO compares completions)")
        check(
            self.batch_size % self.group == 0,
            "batch_size",
            f"must be a multiple of --group {self.group} (got {self.batch_size})",
        )
        check(self.max_completion_length >= 1, "max_completion_length", "must be at least 1")
        check(self.temperature > 0, "temperature", "must be positive")
        check(self.beta >= 0, "beta", "must be >= 0")

    def check_vllm(self) -> None:
        """``--use-vllm`` and its server: a one-line error before any work, including
        when vllm is not installed (TRL's client needs it for the weight sync)."""
        check(self.vllm_server_timeout > 0, "vllm_server_timeout", "must be positive")
        if not self.use_vllm:
            check(self.vllm_server_url is None, "vllm_server_url", "needs --use-vllm")
            return
        if self.vllm_server_url is not None:
            self.vllm_server_url = check_vllm_server_url(self.vllm_server_url)
        check(
            vllm_installed(),
            "use_vllm",
            "needs the vllm package: pip install vllm, then start the server with "
            "trl vllm-serve --model <model> (on its own GPU)",
        )

    def judge_options(self) -> dict[str, Any]:
        return {
            "base_url": self.judge_base_url,
            "api_key_env": self.api_key_env,
            "device": self.device,
        }


@dataclass
class LLMClientOptions:
    """How an LLM command reaches its model (``distill``'s fusing model, ``rate``'s
    judge): the client, the local runtime, the cache and the request budget."""

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
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    dtype: str = field(default="auto", metadata={"help": "hf: weights dtype."})
    device_map: str | None = device_map_field()
    load_in_4bit: bool = load_in_4bit_field()
    cache: bool = field(default=True, metadata={"help": "Use the LLM response cache."})
    max_requests: int | None = field(
        default=None, metadata={"help": "Stop after this many LLM calls; rerun to continue."}
    )

    def check_client(self) -> None:
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
        check_device_map(self.device_map)
        check(self.max_requests is None or self.max_requests >= 1, "max_requests", "must be >= 1")

    def backend_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`augtool.core.generation.load_llm`."""
        from augtool.core.generation import backend_options

        return backend_options(self)


@dataclass
class DistillConfig(RewardConfig, LLMClientOptions):
    """Distil a pool of low-quality samples: group by embedding similarity, write one fused
    sample per group with the model, keep the ones whose weighted reward passes."""

    group_size: int = field(default=3, metadata={"help": "Largest group (samples fused)."})
    min_group: int = field(
        default=2, metadata={"help": "Smallest group; smaller leftovers join the nearest group."}
    )
    threshold: float = field(
        default=0.5, metadata={"help": "Keep fused samples whose weighted reward is >= this."}
    )
    schema: str = field(
        default="auto",
        metadata={
            "help": "auto (from the first row), instruction (instruction/input/output), qa "
            "(question/answer), mcq (question/options/answer), cs (category/statement), "
            "tfq (statement/answer) or paragraph."
        },
    )
    max_new_tokens: int = field(default=512, metadata={"help": "Longest fused sample, in tokens."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0: greedy)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold."})
    seed: int = field(default=0, metadata={"help": "Seed of grouping and sampling."})
    timeout: float = field(default=120.0, metadata={"help": "openai: seconds per request."})
    batch_size: int = field(default=8, metadata={"help": "hf: prompts per generation batch."})
    judge_base_url: str | None = field(
        default=None,
        metadata={"help": "judge: openai server URL of --judge-llm (not --base-url's)."},
    )
    judge_api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "judge: environment variable holding the judge's API key."},
    )

    def __post_init__(self) -> None:
        self.check_rewards()
        check(self.group_size >= 1, "group_size", "must be at least 1")
        check(
            1 <= self.min_group <= self.group_size,
            "min_group",
            f"must be between 1 and --group-size {self.group_size}",
        )
        check(0 <= self.threshold <= 1, "threshold", "must be in [0, 1]")
        check(
            self.schema in schema_choices(),
            "schema",
            f"must be one of {', '.join(schema_choices())}",
        )
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be at least 1")
        check(self.temperature >= 0, "temperature", "must be >= 0")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        self.check_client()

    def params(self) -> GenerationParams:
        return GenerationParams(self.max_new_tokens, self.temperature, self.top_p)

    def judge_options(self) -> dict[str, Any]:
        """Backend options of the quality judge: its own server and key, the rest shared."""
        return {
            **self.backend_options(),
            "base_url": self.judge_base_url,
            "api_key_env": self.judge_api_key_env,
        }


@dataclass
class RateConfig(LLMClientOptions):
    """Rate clean samples 1-10 with an LLM judge (the public code's rubric) into a quality
    bank: each row gets ``rating`` (0-5, the public code's compression of the overall
    rating) and ``rating_detail``; ``grpo``/``distill`` read it with ``--quality-bank``."""

    judge: str = field(
        default="",
        metadata={
            "help": "The rating LLM: openai:<model> (e.g. gpt-4o-mini, as "
            "the public code) or hf:<model>."
        },
    )
    sample: int = field(
        default=0,
        metadata={"help": "Rate a seeded random sample of this many samples (0: all)."},
    )
    schema: str = field(
        default="auto",
        metadata={"help": "auto (from the first row), instruction, qa, mcq, cs, tfq or paragraph."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the sample and the requests."})
    max_new_tokens: int = field(default=128, metadata={"help": "Longest judge reply, in tokens."})
    temperature: float = field(
        default=0.0, metadata={"help": "Judge sampling temperature (0: greedy)."}
    )
    rpm: float = field(default=0.0, metadata={"help": "openai: requests per minute (0: no cap)."})

    def __post_init__(self) -> None:
        check(bool(self.judge.strip()), "judge", "is required: openai:<model> or hf:<model>")
        check(self.sample >= 0, "sample", "must be >= 0 (0: every sample)")
        check(
            self.schema in schema_choices(),
            "schema",
            f"must be one of {', '.join(schema_choices())}",
        )
        check(self.max_new_tokens >= 1, "max_new_tokens", "must be at least 1")
        check(self.temperature >= 0, "temperature", "must be >= 0")
        self.check_client()

    def params(self) -> GenerationParams:
        return GenerationParams(self.max_new_tokens, self.temperature, 1.0)
