"""Back-translation (BT): translate each text into a pivot language and back.

Engines: ``marian`` (transformers MarianMT, ``Helsinki-NLP/opus-mt-en-<pivot>`` and
``opus-mt-<pivot>-en`` by default, or any ids / local folders) and ``apertium``
(rule-based, offline, modes ``eng-<pivot>`` and ``<pivot>-eng``). Outputs identical to
their input are flagged and, by default, dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from augtool.core.config import check
from augtool.core.device import DTYPES
from augtool.core.generation.jobs import derive_seed
from augtool.core.translation import ENGINES, BackTranslator
from augtool.data.provenance import make_aug
from augtool.data.records import Record

DEFAULT_PIVOT = {"marian": "de", "apertium": "spa"}


@dataclass
class BTConfig:
    """Which engine back-translates, through which pivot language, and how."""

    engine: str = field(default="marian", metadata={"help": "marian or apertium."})
    pivot: str | None = field(
        default=None,
        metadata={"help": "Pivot language (default: de for marian, spa for apertium)."},
    )
    forward_model: str | None = field(
        default=None,
        metadata={
            "help": "English -> pivot: a model id or folder (marian; default "
            "Helsinki-NLP/opus-mt-en-<pivot>) or a mode (apertium; eng-<pivot>)."
        },
    )
    backward_model: str | None = field(
        default=None,
        metadata={
            "help": "Pivot -> English: a model id or folder (marian; default "
            "Helsinki-NLP/opus-mt-<pivot>-en) or a mode (apertium; <pivot>-eng)."
        },
    )
    n: int = field(
        default=1, metadata={"help": "Back-translations per row (marian with --sample only)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Texts per translation batch."})
    num_beams: int = field(default=1, metadata={"help": "marian: beam size."})
    sample: bool = field(
        default=False, metadata={"help": "marian: sample instead of beam search (seeded per row)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "marian: sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "marian: nucleus sampling threshold."})
    max_length: int = field(
        default=256, metadata={"help": "marian: truncate longer texts (with a warning)."}
    )
    mark_unknown: bool = field(
        default=False,
        metadata={"help": "apertium: keep the '*' marks of unknown words (default: drop, -u)."},
    )
    keep_identical: bool = field(
        default=False, metadata={"help": "Keep back-translations identical to their input."}
    )
    device: str = field(default="auto", metadata={"help": "marian: auto, cpu, cuda, cuda:N, mps."})
    dtype: str = field(
        default="auto", metadata={"help": "marian: auto, float32, bfloat16, float16."}
    )
    seed: int = field(default=0, metadata={"help": "Run seed (sampling); each row gets its own."})
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        check(
            self.engine in ENGINES,
            "engine",
            f"unknown engine {self.engine!r} (choose from {', '.join(ENGINES.names())})",
        )
        check(self.n >= 1, "n", f"must be at least 1 (got {self.n})")
        check(
            self.n == 1 or (self.engine == "marian" and self.sample),
            "n",
            "more than one back-translation per row needs --engine marian --sample",
        )
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        check(self.num_beams >= 1, "num_beams", "must be at least 1")
        check(self.temperature > 0, "temperature", "must be positive")
        check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        check(self.max_length >= 8, "max_length", "must be at least 8")
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")

    def models(self) -> tuple[str, str]:
        pivot = self.pivot or DEFAULT_PIVOT[self.engine]
        if self.engine == "apertium":
            default = (f"eng-{pivot}", f"{pivot}-eng")
        else:
            default = (f"Helsinki-NLP/opus-mt-en-{pivot}", f"Helsinki-NLP/opus-mt-{pivot}-en")
        return self.forward_model or default[0], self.backward_model or default[1]


def build_engine(config: BTConfig, warn: Callable[[str], None] | None = None) -> BackTranslator:
    """The configured engine, ready to translate (models loaded, pipelines started)."""
    forward, backward = config.models()
    cls = ENGINES.get(config.engine)
    if config.engine == "apertium":
        return cls(
            forward,
            backward,
            mark_unknown=config.mark_unknown,
            batch_size=max(config.batch_size, 256),
        )
    engine = cls(
        forward,
        backward,
        batch_size=config.batch_size,
        num_beams=config.num_beams,
        sample=config.sample,
        temperature=config.temperature,
        top_p=config.top_p,
        max_length=config.max_length,
        device=config.device,
        dtype=config.dtype,
        warn=warn,
    )
    engine.load()
    return engine


def output_id(record: Record, variant: int, config: BTConfig) -> str:
    return f"{record.id}-bt" if config.n == 1 else f"{record.id}-bt{variant}"


def bt_rows(
    records: list[Record],
    config: BTConfig,
    engine: BackTranslator,
    progress: Callable[[int], None] | None = None,
) -> list[tuple[Record, bool]]:
    """``(row, identical)`` for each record and variant; identical rows are flagged."""
    jobs = [(record, variant) for record in records for variant in range(config.n)]
    seeds = [derive_seed(config.seed, "bt", r.id, v) for r, v in jobs]
    texts = [" ".join((r.text or "").split()) for r, _ in jobs]
    translated = engine.round_trip(texts, seeds, progress)
    rows = []
    described = engine.describe()
    for (record, variant), seed, source, text in zip(jobs, seeds, texts, translated, strict=True):
        identical = text == source
        aug = make_aug(
            "bt",
            [record.id],
            seed=seed if config.sample else None,
            pivot=config.pivot or DEFAULT_PIVOT[config.engine],
            identical=True if identical else None,
            variant=variant,
            **described,
        )
        rows.append(
            (
                Record(
                    id=output_id(record, variant, config),
                    text=text or source,
                    label=record.label,
                    label_dist=record.label_dist,
                    text_pair=record.text_pair,
                    aug=aug,
                    extra=dict(record.extra),
                ),
                identical or not text.strip(),
            )
        )
    return rows
