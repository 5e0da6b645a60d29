"""``augtool train``: train the task classifier (encoder + MLP head, optional Mixup)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from augtool.cli.common import (
    DATASET_HELP,
    ConfigOpt,
    OverwriteOpt,
    SkipInvalidOpt,
    default_of,
    finished_already,
    handle_errors,
    help_of,
    make_config,
    read_input,
    report_rejects,
)
from augtool.cli.console import progress_reporter, say
from augtool.core.taskmodel.config import TrainConfig as T


def _opt(name: str, *flags: str) -> typer.models.OptionInfo:
    return typer.Option(*flags, help=help_of(T, name))


@handle_errors
def train(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Labelled training dataset(s): " + DATASET_HELP.removeprefix("Dataset: ")
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")],
    dev: Annotated[
        Path | None, typer.Option(help="Labelled dev set for early stopping (any input format).")
    ] = None,
    encoder: Annotated[str, _opt("encoder")] = default_of(T, "encoder"),
    pooling: Annotated[str | None, _opt("pooling")] = None,
    max_length: Annotated[int, _opt("max_length")] = default_of(T, "max_length"),
    freeze_encoder: Annotated[
        bool, _opt("freeze_encoder", "--freeze-encoder/--no-freeze-encoder")
    ] = False,
    head_hidden: Annotated[int, _opt("head_hidden")] = default_of(T, "head_hidden"),
    dropout: Annotated[float, _opt("dropout")] = default_of(T, "dropout"),
    epochs: Annotated[int, _opt("epochs")] = default_of(T, "epochs"),
    batch_size: Annotated[int, _opt("batch_size")] = default_of(T, "batch_size"),
    grad_accum: Annotated[int, _opt("grad_accum")] = default_of(T, "grad_accum"),
    lr: Annotated[float, _opt("lr")] = default_of(T, "lr"),
    head_lr: Annotated[float, _opt("head_lr")] = default_of(T, "head_lr"),
    weight_decay: Annotated[float, _opt("weight_decay")] = default_of(T, "weight_decay"),
    warmup_ratio: Annotated[float, _opt("warmup_ratio")] = default_of(T, "warmup_ratio"),
    mixup: Annotated[bool, _opt("mixup", "--mixup/--no-mixup")] = False,
    alpha: Annotated[float, _opt("alpha")] = default_of(T, "alpha"),
    dev_fraction: Annotated[float, _opt("dev_fraction")] = default_of(T, "dev_fraction"),
    patience: Annotated[int, _opt("patience")] = default_of(T, "patience"),
    init_from: Annotated[
        str | None, typer.Option("--init-from", help=help_of(T, "init_from"))
    ] = None,
    seed: Annotated[int, _opt("seed")] = default_of(T, "seed"),
    device: Annotated[str, _opt("device")] = "auto",
    dtype: Annotated[str, _opt("dtype")] = "auto",
    text_field: Annotated[str, _opt("text_field")] = "text",
    label_field: Annotated[str, _opt("label_field")] = "label",
    checkpoint_every: Annotated[
        float,
        typer.Option(
            help="Seconds between resume checkpoints, checked after every optimizer step so "
            "that long epochs are checkpointed mid-epoch (0: at the end of every epoch only)."
        ),
    ] = 60.0,
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Train the task classifier on hard or soft labels; saves a model folder.

    Rows with a `label_dist` train on that soft label. `--init-from` continues from a
    saved model (e.g. the refined theta* of `augtool invmix refine`, Eq. 12). An
    interrupted run resumes from its last checkpoint when the same command is run again.
    """
    from augtool.core.distributed import is_main_process
    from augtool.core.hub import model_key
    from augtool.core.taskmodel.train import train_task_model
    from augtool.data import build_meta, run_key, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.data.writer import completion_record

    started = time.time()
    settings = make_config(ctx, T, config)
    for path in [*files, *([dev] if dev else [])]:
        check_input_file(path)
    key = run_key(
        "train",
        settings={
            k: v
            for k, v in config_dict(settings).items()
            if k not in ("device", "encoder", "init_from")
        },
        inputs=[file_fingerprint(path) for path in files],
        dev=file_fingerprint(dev) if dev else None,
        encoder=model_key(settings.encoder) if not settings.init_from else None,
        init=model_key(settings.init_from) if settings.init_from else None,
    )
    if finished_already(output, key):
        return
    records, rejects = read_input(
        files,
        text_field=settings.text_field,
        label_field=settings.label_field,
        require_label=True,
        skip_invalid=skip_invalid,
    )
    dev_records = None
    if dev is not None:
        from augtool.data import labels_of

        dev_records, dev_rejects = read_input(
            dev,
            text_field=settings.text_field,
            label_field=settings.label_field,
            require_label=True,
            known_labels=frozenset(labels_of(records)),
            skip_invalid=skip_invalid,
        )
        rejects.extend(dev_rejects)
    with progress_reporter() as reporter:
        result = train_task_model(
            records,
            settings,
            output,
            dev=dev_records,
            overwrite=overwrite,
            reporter=reporter,
            checkpoint_seconds=checkpoint_every,
        )
    if not is_main_process():  # under `accelerate launch`, rank 0 writes meta and says so
        return
    counts = {
        "train": result.train_size,
        "dev": result.dev_size,
        "epochs_run": len(result.history),
        "resumed_epochs": result.resumed_epochs,
    }
    meta = build_meta(
        "train",
        config=settings,
        inputs=[*files, *([dev] if dev else [])],
        models={"encoder": result.model.encoder.describe()},
        seed=settings.seed,
        counts=counts,
        started=started,
        extra={
            "best_epoch": result.best_epoch,
            "history": result.history,
            "init_from": result.init_from,
            **completion_record(output, key),
        },
    )
    write_meta(output, meta)
    report_rejects(output, rejects)
    summary = f"saved model to {output} ({result.train_size} rows, {len(result.history)} epochs"
    if result.best_epoch is not None:
        summary += f", best dev epoch {result.best_epoch}"
    if result.init_from is not None:
        summary += f", from {result.init_from['path']}"
    say(summary + ")")
