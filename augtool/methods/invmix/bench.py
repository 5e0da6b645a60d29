"""invmix inside ``augtool bench``: refine a stage-1 adaptor on the cell's K-shot sample,
then mix and invert ``per_original x |sample|`` rows."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from augtool.core.config import check
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import Record
from augtool.methods.invmix.config import LABEL_MODES, PAIR_MODES


@dataclass
class InvmixBenchOptions:
    """The options of the ``invmix`` bench method (``methods: {invmix: {...}}``)."""

    adaptor: str = field(default="", metadata={"help": "A stage-1 adaptor (train-adaptor)."})
    rounds: int = field(default=3, metadata={"help": "Refinement rounds on the sample."})
    task_epochs: int = field(default=5, metadata={"help": "Task-model epochs per round."})
    adaptor_epochs: int = field(default=5, metadata={"help": "Adaptor epochs per round."})
    lr: float = field(default=2e-5, metadata={"help": "Adaptor learning rate."})
    task_lr: float = field(default=5e-5, metadata={"help": "Task encoder learning rate."})
    n: int | None = field(
        default=None, metadata={"help": "Rows (default per_original x sample size)."}
    )
    alpha: float = field(default=0.4, metadata={"help": "lambda ~ Beta(alpha, alpha)."})
    lam: float | None = field(default=None, metadata={"help": "A fixed lambda."})
    pairs: str = field(
        default="inter-class", metadata={"help": "random, inter-class, intra-class."}
    )
    labels: str = field(default="soft", metadata={"help": "soft or llm."})
    temperature: float = field(default=0.0, metadata={"help": "Inversion temperature."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest generated sentence."})
    keep_duplicates: bool = field(default=False, metadata={"help": "Keep copies of parents."})
    batch_size: int = field(default=16, metadata={"help": "Batch size."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda..."})
    dtype: str = field(default="auto", metadata={"help": "LLM dtype."})
    seed: int = field(default=0, metadata={"help": "Set by the harness (the cell's seed)."})

    def __post_init__(self) -> None:
        check(bool(self.adaptor.strip()), "adaptor", "is required: a train-adaptor folder")
        check(Path(self.adaptor).is_dir(), "adaptor", f"{self.adaptor}: no such folder")
        check(self.pairs in PAIR_MODES, "pairs", f"one of {', '.join(PAIR_MODES)}")
        check(self.labels in LABEL_MODES, "labels", f"one of {', '.join(LABEL_MODES)}")
        check(self.rounds >= 1, "rounds", "must be at least 1")
        check(self.n is None or self.n >= 1, "n", "must be at least 1")


def augment_with_invmix(
    sample: list[Record],
    options: InvmixBenchOptions,
    per_original: int,
    reporter: Reporter = SILENT,
) -> list[Record]:
    """Refine on ``sample`` (stage 2), then generate mixed rows from it (stage 3)."""
    from augtool.core.inversion.model import InversionModel
    from augtool.data import RecordSpec, read_records
    from augtool.data.writer import JsonlWriter
    from augtool.methods.invmix.config import InvmixGenerateConfig, RefineConfig
    from augtool.methods.invmix.generate import LLMLabeller, run_generate
    from augtool.methods.invmix.stages import run_refine

    with tempfile.TemporaryDirectory(prefix="augtool-invmix-") as scratch:
        refined = Path(scratch) / "refined"
        refine = RefineConfig(
            rounds=options.rounds,
            task_epochs=options.task_epochs,
            adaptor_epochs=options.adaptor_epochs,
            lr=options.lr,
            task_lr=options.task_lr,
            batch_size=options.batch_size,
            task_batch_size=options.batch_size,
            seed=options.seed,
            device=options.device,
            dtype=options.dtype,
        )
        run_refine(sample, refine, options.adaptor, refined, reporter=reporter)
        model = InversionModel.load(refined, device=options.device, dtype=options.dtype)
        generate = InvmixGenerateConfig(
            n=options.n or per_original * len(sample),
            alpha=options.alpha,
            lam=options.lam,
            pairs=options.pairs,
            labels=options.labels,
            temperature=options.temperature,
            max_new_tokens=options.max_new_tokens,
            batch_size=options.batch_size,
            keep_duplicates=options.keep_duplicates,
            seed=options.seed,
            device=options.device,
            dtype=options.dtype,
        )
        labeller = None
        if options.labels == "llm":
            from augtool.core.generation.hf_backend import HFBackend
            from augtool.core.generation.labels import label_set_from
            from augtool.data import labels_of

            backend = HFBackend.from_loaded(
                model.llm_info["source"], model.lm.model, model.lm.tokenizer, str(model.lm.device)
            )
            labeller = LLMLabeller(backend, label_set_from(labels_of(sample), "sample"))
        out = Path(scratch) / "mixed.jsonl"
        writer = JsonlWriter(out, run_key="bench")
        with writer:
            run_generate(sample, model, generate, writer, labeller=labeller, reporter=reporter)
            writer.commit()
        return read_records(out, RecordSpec()) if out.stat().st_size else []
