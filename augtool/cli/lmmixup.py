"""``augtool lmmixup``: LM-mixup (build mixture pairs, SFT, GRPO, distil a low-quality pool)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from augtool.cli.common import (
    DATASET_HELP,
    ConfigOpt,
    OutputOpt,
    OverwriteOpt,
    SkipInvalidOpt,
    handle_errors,
    make_config,
    report_rejects,
    require_modules,
)
from augtool.cli.console import print_error, progress_reporter, say
from augtool.cli.options import config_options
from augtool.methods.lmmixup.config import (
    BuildConfig,
    DistillConfig,
    GRPOTrainConfig,
    RateConfig,
    SFTTrainConfig,
)

if TYPE_CHECKING:
    from augtool.methods.lmmixup.training import TrainResult

app = typer.Typer(
    help="LM-mixup: distil groups of low-quality, redundant instruction samples into one "
    "high-quality sample, with a model trained by SFT then GRPO (TRL).",
    no_args_is_help=True,
)

InputArg = Annotated[
    Path,
    typer.Argument(help=DATASET_HELP),
]
TrainModelOpt = Annotated[
    str,
    typer.Option("--model", help="Model to train: hf:<hub id or path> or a local model folder."),
]
FolderOpt = Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")]


@app.command("build")
@handle_errors
@config_options(BuildConfig)
def build(
    ctx: typer.Context,
    file: InputArg,
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Make mixture pairs from clean samples: groups of degraded variants -> the sample."""
    from augtool.core.generation import load_llm
    from augtool.data import JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.methods.lmmixup.build import build_mixture
    from augtool.methods.lmmixup.schema import read_samples

    started = time.time()
    settings = make_config(ctx, BuildConfig, config)
    if "noise" in settings.degradations:
        require_modules("nlpaug")
    prepare_output(output, overwrite=overwrite, inputs=[file])
    rejects: list = []
    samples, schema = read_samples(file, settings.schema, rejects=rejects if skip_invalid else None)
    paraphraser = None
    if settings.paraphraser:
        paraphraser = load_llm(settings.paraphraser, **settings.backend_options())
        paraphraser.check()
    key = run_key("lmmixup build", settings=config_dict(settings), input=file_fingerprint(file))
    try:
        with progress_reporter() as reporter:
            rows = build_mixture(samples, settings, paraphraser=paraphraser, reporter=reporter)
    finally:
        if paraphraser is not None:
            paraphraser.close()
    writer = JsonlWriter(output, run_key=key, overwrite=overwrite)
    with writer:
        writer.write(rows)
        writer.commit()
    sizes = [len(r["inputs"]) for r in rows]
    write_meta(
        output,
        build_meta(
            "lmmixup build",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            counts={
                "samples": len(samples),
                "groups": len(rows),
                "inputs": sum(sizes),
                "schema": schema,
            },
            models={"paraphraser": paraphraser.identity()} if paraphraser else {},
        ),
    )
    report_rejects(output, rejects)
    say(
        f"wrote {len(rows)} mixture groups ({schema}; {min(sizes)}-{max(sizes)} inputs each) "
        f"from {len(samples)} samples to {output}"
    )


def _training_rows(
    file: Path, model: str, output: Path, overwrite: bool, skip_invalid: bool
) -> tuple[list[dict], list]:
    """Checks shared by sft and grpo (packages, model spec, output folder), then the
    mixture rows; everything fails before a model is loaded."""
    from augtool.data.writer import check_output_folder
    from augtool.methods.lmmixup.mixture import read_mixture
    from augtool.methods.lmmixup.training import MODEL_FILE, resolve_train_model

    require_modules("trl", "peft", "datasets")
    resolve_train_model(model)
    check_output_folder(output, overwrite=overwrite, marker=MODEL_FILE)
    rejects: list = []
    rows = read_mixture(file, rejects=rejects if skip_invalid else None)
    return rows, rejects


def _training_meta(
    output: Path,
    command: str,
    settings: SFTTrainConfig | GRPOTrainConfig,
    file: Path,
    result: TrainResult,
    started: float,
    rejects: list,
    rewards: dict | None = None,
) -> None:
    """Provenance of a training run (loss / reward history, resume, the rewards' scorers
    and the alignment threshold's calibration) and the rejects."""
    from augtool.data import build_meta, write_meta

    write_meta(
        output,
        build_meta(
            command,
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            counts={"steps": result.steps},
            extra={
                "history": result.history,
                "resumed_from": result.resumed_from,
                **({"rewards": rewards} if rewards else {}),
            },
        ),
    )
    report_rejects(output, rejects)


@app.command("sft")
@handle_errors
@config_options(SFTTrainConfig)
def sft(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Mixture JSONL (from lmmixup build).")],
    model: TrainModelOpt,
    output: FolderOpt,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Supervised fine-tuning on mixture pairs (TRL SFTTrainer, LoRA); resumable."""
    from augtool.methods.lmmixup.training import run_sft

    started = time.time()
    settings = make_config(ctx, SFTTrainConfig, config)
    rows, rejects = _training_rows(file, model, output, overwrite, skip_invalid)
    with progress_reporter() as reporter:
        result = run_sft(rows, settings, model, output, reporter=reporter)
    _training_meta(output, "lmmixup sft", settings, file, result, started, rejects)
    loss = next((h["loss"] for h in reversed(result.history) if "loss" in h), None)
    tail = f", final loss {loss:.4f}" if loss is not None else ""
    say(f"saved the SFT model to {output} ({result.steps} steps{tail})")


@app.command("grpo")
@handle_errors
@config_options(GRPOTrainConfig)
def grpo(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Mixture JSONL (from lmmixup build).")],
    model: TrainModelOpt,
    output: FolderOpt,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """GRPO with weighted quality / alignment / format rewards (TRL GRPOTrainer); resumable."""
    from augtool.methods.lmmixup.rewards import reward_functions
    from augtool.methods.lmmixup.scoring import make_scorers
    from augtool.methods.lmmixup.training import run_grpo

    started = time.time()
    settings = make_config(ctx, GRPOTrainConfig, config)
    rows, rejects = _training_rows(file, model, output, overwrite, skip_invalid)

    def calibration(encoder: Any) -> tuple[float, dict]:
        from augtool.methods.lmmixup.calibrate import calibrate_alignment

        return calibrate_alignment(
            [row["target"] for row in rows],
            [row["inputs"] for row in rows],
            encoder.encode,
            quantile=settings.align_quantile,
            seed=settings.seed,
        )

    scorers = make_scorers(
        settings,
        default_bank=[row["target"] for row in rows],
        device=settings.device,
        judge_options=settings.judge_options(),
        calibration=calibration,
    )
    funcs, weights = reward_functions(
        settings.weights, alignment=scorers.alignment, quality=scorers.quality
    )
    try:
        with progress_reporter() as reporter:
            result = run_grpo(
                rows,
                settings,
                model,
                output,
                reward_funcs=funcs,
                reward_weights=weights,
                reporter=reporter,
            )
    finally:
        scorers.close()
    _training_meta(
        output, "lmmixup grpo", settings, file, result, started, rejects, scorers.describe
    )
    reward = next((h["reward"] for h in reversed(result.history) if "reward" in h), None)
    tail = f", last mean reward {reward:.4f}" if reward is not None else ""
    say(f"saved the GRPO model to {output} ({result.steps} steps{tail})")


@app.command("rate")
@handle_errors
@config_options(RateConfig)
def rate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Clean samples to rate (JSONL, any schema).")],
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Rate samples with an LLM judge (the public code's rubric) into a quality bank for
    --quality knn; cached, resumable, capped by --max-requests."""
    from augtool.cli.console import print_warning
    from augtool.core.generation import (
        OPERATIONAL_OPTIONS,
        RequestBudget,
        RequestBudgetExhausted,
        load_llm,
    )
    from augtool.core.generation.jobs import JobSummary, run_tasks, write_failures
    from augtool.data import JsonlWriter, build_meta, run_key, write_meta
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.methods.lmmixup.rating import rating_tasks, sample_for_rating
    from augtool.methods.lmmixup.schema import read_samples

    started = time.time()
    settings = make_config(ctx, RateConfig, config)
    rejects: list = []
    samples, schema = read_samples(file, settings.schema, rejects=rejects if skip_invalid else None)
    chosen = sample_for_rating(samples, settings.sample, settings.seed)
    llm = load_llm(settings.judge, **settings.backend_options())
    try:
        llm.check()
    except BaseException:
        llm.close()
        raise
    identity = {k: v for k, v in config_dict(settings).items() if k not in OPERATIONAL_OPTIONS}
    key = run_key("lmmixup rate", settings=identity, input=file_fingerprint(file))
    tasks = rating_tasks(chosen, settings.seed, settings.judge)
    writer = JsonlWriter(output, run_key=key, overwrite=overwrite, inputs=[file])
    summary = JobSummary()
    budget = RequestBudget(settings.max_requests)
    try:
        with writer, progress_reporter() as reporter:
            if writer.resumed:
                reporter.log(f"resuming: {writer.resumed} samples already rated")
            run_tasks(
                tasks,
                llm,
                settings.params(),
                writer,
                budget=budget,
                reporter=reporter,
                summary=summary,
            )
            writer.commit()
    except RequestBudgetExhausted as exc:
        write_failures(output, summary.failed)
        print_error(f"{exc}; {summary.written + summary.resumed} rated so far, rerun to continue")
        raise typer.Exit(exc.exit_code) from None
    finally:
        llm.close()
    failed = write_failures(output, summary.failed)
    rated = summary.resumed + summary.written
    write_meta(
        output,
        build_meta(
            "lmmixup rate",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            models={"judge": llm.identity()},
            counts={
                "samples": len(samples),
                "asked": len(chosen),
                "rated": rated,
                "no_rating": len(summary.failed),
                "requests": summary.requests,
                "from_cache": summary.cached,
                "schema": schema,
            },
            extra={"prompt": "lmmixup.rate (the public code's rubric, word for word)"},
        ),
    )
    report_rejects(output, rejects)
    if failed is not None:
        print_warning(
            f"{len(summary.failed)} samples got no readable rating (left out, not guessed); "
            f"see {failed}"
        )
    say(f"wrote {rated} rated samples of {len(chosen)} to {output}")


@app.command("distill")
@handle_errors
@config_options(DistillConfig)
def distill(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Pool of low-quality samples (JSONL).")],
    model: Annotated[
        str,
        typer.Option(
            "--model", help="The fusing model: hf:<id or path>, openai:<model> or a folder."
        ),
    ],
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Group a low-quality pool by similarity and write one fused sample per group; resumable."""
    import os

    from augtool.core.encoders import load_encoder
    from augtool.core.generation import RequestBudget, RequestBudgetExhausted, load_llm
    from augtool.data import JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.data.writer import sidecar
    from augtool.errors import OptionError
    from augtool.methods.lmmixup.distill import distill as run
    from augtool.methods.lmmixup.rewards import score_completions
    from augtool.methods.lmmixup.schema import read_samples
    from augtool.methods.lmmixup.scoring import make_scorers

    started = time.time()
    settings = make_config(ctx, DistillConfig, config)
    prepare_output(output, overwrite=overwrite, inputs=[file])
    rejects: list = []
    samples, schema = read_samples(file, settings.schema, rejects=rejects if skip_invalid else None)
    spec = model if ":" in model or not os.path.isdir(model) else f"hf:{model}"
    if ":" not in spec:
        raise OptionError(
            "model", f"{model!r}: give hf:<id or path>, openai:<model> or a local model folder"
        )
    llm = load_llm(spec, **settings.backend_options())
    unused = {"source": "unused: distill has no references; alignment is input coverage"}
    scorers = make_scorers(
        settings,
        default_bank=None,
        device=settings.device,
        judge_options=settings.judge_options(),
        calibration=lambda encoder: (1.0, unused),
    )
    weights = settings.weights

    def score(replies: list[str], inputs: list[list[str]]) -> dict[str, list[float]]:
        return score_completions(
            replies,
            schema=schema,
            weights=weights,
            alignment=scorers.alignment,
            quality=scorers.quality,
            inputs=inputs,
        )

    identity = {k: v for k, v in config_dict(settings).items() if k not in ("max_requests",)}
    key = run_key("lmmixup distill", settings=identity, input=file_fingerprint(file), scorers=spec)
    try:
        llm.check()  # an unreachable server fails here, before any output exists
    except BaseException:
        llm.close()
        scorers.close()
        raise
    writer = JsonlWriter(output, run_key=key, overwrite=overwrite)
    budget = RequestBudget(settings.max_requests)
    try:
        encoder = load_encoder(settings.encoder, device=settings.device)
        with writer, progress_reporter() as reporter:
            if writer.resumed:
                reporter.log(f"resuming: {writer.resumed} fused samples already written")
            advance = reporter.task("embedding", len(samples))
            embeddings = encoder.encode([s.render() for s in samples], progress=advance)
            kept, rejected, groups = run(
                samples,
                embeddings,
                llm,
                settings,
                score,
                writer.write,
                skip=writer.done_ids,
                model=llm.identity(),
                budget=budget,
                reporter=reporter,
            )
            writer.commit()
    except RequestBudgetExhausted as exc:
        print_error(f"{exc}; rerun the same command to continue")
        raise typer.Exit(exc.exit_code) from None
    finally:
        llm.close()
        scorers.close()
    rejected_path = sidecar(output, ".rejected.jsonl")
    if rejected:
        write_rejects_rows(rejected_path, rejected)
    else:
        rejected_path.unlink(missing_ok=True)
    write_meta(
        output,
        build_meta(
            "lmmixup distill",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            counts={
                "samples": len(samples),
                "groups": groups,
                "kept": kept + writer.resumed,
                "rejected": len(rejected),
                "schema": schema,
            },
            models={"model": llm.identity(), "encoder": encoder.describe(), **scorers.describe},
        ),
    )
    report_rejects(output, rejects)
    say(
        f"wrote {kept + writer.resumed} fused samples from {groups} groups of {len(samples)} "
        f"to {output} ({len(rejected)} below --threshold {settings.threshold} or unparseable)"
    )


def write_rejects_rows(path: Path, rows: list[dict]) -> None:
    """Write the rejected groups (reason, reply, scores), one JSON object per line."""
    import json

    from augtool.data.writer import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
