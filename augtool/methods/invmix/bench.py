"""invmix inside ``augtool bench``: refine a stage-1 adaptor on the cell's K-shot sample
(stage 2), mix and invert ``per_original x |sample|`` rows (stage 3), and keep the refined
task model theta* so that the cell's task model continues from it (Eq. 12)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from augtool.core.config import check
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import Record
from augtool.methods.invmix.config import LABEL_MODES, LABEL_SCORINGS, PAIR_MODES


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
    pairs: str = field(default="random", metadata={"help": "random, inter-class, intra-class."})
    labels: str = field(default="soft", metadata={"help": "soft or llm."})
    label_descriptions: str | None = field(
        default=None,
        metadata={"help": "Labels file for labels: llm (e.g. examples/labels/trec.json)."},
    )
    label_scoring: str = field(
        default="auto",
        metadata={"help": "labels: llm with the inversion LM: auto (loglik), loglik, parse."},
    )
    init_from_refined: bool = field(
        default=True,
        metadata={
            "help": "Train the cell's task model from the refined theta* (Eq. 12); false "
            "trains it from the bench's task_model encoder, like the other methods."
        },
    )
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
        check(
            self.label_scoring in LABEL_SCORINGS,
            "label_scoring",
            f"one of {', '.join(LABEL_SCORINGS)}",
        )
        check(
            self.label_descriptions is None or Path(self.label_descriptions).is_file(),
            "label_descriptions",
            f"{self.label_descriptions}: file not found",
        )
        check(self.rounds >= 1, "rounds", "must be at least 1")
        check(self.n is None or self.n >= 1, "n", "must be at least 1")


def augment_with_invmix(
    sample: list[Record],
    options: InvmixBenchOptions,
    per_original: int,
    reporter: Reporter = SILENT,
    *,
    task_model_to: Path | None = None,
) -> list[Record]:
    """Refine on ``sample`` (stage 2), then generate mixed rows from it (stage 3).

    With ``task_model_to``, the refined task model theta* is kept there (a task-model
    folder for ``augtool train --init-from``).
    """
    from augtool.core.inversion.model import TASK_MODEL_DIR, InversionModel
    from augtool.data import RecordSpec, labels_of, read_records
    from augtool.data.writer import JsonlWriter
    from augtool.methods.invmix.config import InvmixGenerateConfig, RefineConfig
    from augtool.methods.invmix.generate import LLMLabeller, run_generate
    from augtool.methods.invmix.stages import run_refine

    label_set = None
    if options.labels == "llm":
        from augtool.core.generation.labels import label_set_from, load_label_set

        if options.label_descriptions:
            label_set = load_label_set(options.label_descriptions)
            label_set.require(labels_of(sample), options.label_descriptions, "label_descriptions")
        else:
            label_set = label_set_from(labels_of(sample), "sample")
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
        if task_model_to is not None:
            shutil.rmtree(task_model_to, ignore_errors=True)
            shutil.copytree(refined / TASK_MODEL_DIR, task_model_to)
        model = InversionModel.load(refined, device=options.device, dtype=options.dtype)
        generate = InvmixGenerateConfig(
            n=options.n or per_original * len(sample),
            alpha=options.alpha,
            lam=options.lam,
            pairs=options.pairs,
            labels=options.labels,
            label_scoring=options.label_scoring,
            temperature=options.temperature,
            max_new_tokens=options.max_new_tokens,
            batch_size=options.batch_size,
            keep_duplicates=options.keep_duplicates,
            seed=options.seed,
            device=options.device,
            dtype=options.dtype,
        )
        labeller = None
        if label_set is not None:
            from augtool.core.generation.hf_backend import HFBackend

            backend = HFBackend.from_loaded(
                model.llm_info["source"], model.lm.model, model.lm.tokenizer, str(model.lm.device)
            )
            labeller = LLMLabeller(
                backend, label_set, scoring=generate.resolved_label_scoring(backend)
            )
        out = Path(scratch) / "mixed.jsonl"
        writer = JsonlWriter(out, run_key="bench")
        with writer:
            run_generate(sample, model, generate, writer, labeller=labeller, reporter=reporter)
            writer.commit()
        return read_records(out, RecordSpec()) if out.stat().st_size else []
