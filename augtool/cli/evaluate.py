"""``augtool eval`` and ``augtool predict``: use a trained task model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from augtool.cli.common import (
    DATASET_HELP,
    BatchSizeOpt,
    DeviceOpt,
    JsonOpt,
    LabelFieldOpt,
    OutputOpt,
    OverwriteOpt,
    SkipInvalidOpt,
    TextFieldOpt,
    finished_already,
    handle_errors,
    read_input,
    report_rejects,
)
from augtool.cli.console import console, print_json, progress_reporter, say

ModelArg = Annotated[Path, typer.Argument(help="Model folder written by `augtool train`.")]


@handle_errors
def evaluate(
    model_dir: ModelArg,
    file: Annotated[Path, typer.Argument(help="Labelled JSONL test file.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the metrics as JSON here.")
    ] = None,
    as_json: JsonOpt = False,
    batch_size: BatchSizeOpt = 64,
    device: DeviceOpt = "auto",
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Accuracy, macro-F1 and a per-class table on a labelled test set."""
    from augtool.core.taskmodel.evaluate import evaluate_model
    from augtool.core.taskmodel.model import TaskModel
    from augtool.data import prepare_output, write_json, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import build_meta
    from augtool.errors import source_name

    started = time.time()
    check_input_file(file)
    if output is not None:
        prepare_output(output, overwrite=overwrite, inputs=[file])
    model = TaskModel.load(model_dir, device=device, batch_size=batch_size)
    records, rejects = read_input(
        file,
        text_field=text_field,
        label_field=label_field,
        require_label=True,
        known_labels=frozenset(model.labels),
        skip_invalid=skip_invalid,
    )
    with progress_reporter() as reporter:
        metrics = evaluate_model(model, records, batch_size=batch_size, reporter=reporter)
    metrics = {"model": str(model_dir), "data": source_name(file), **metrics}
    if output is not None:
        write_json(output, metrics)
        write_meta(
            output,
            build_meta(
                "eval",
                inputs=[file],
                counts={"rows": len(records)},
                models={"task_model": str(model_dir)},
                started=started,
            ),
        )
        report_rejects(output, rejects)
    if as_json:
        print_json(metrics)
        return
    table = Table(title=f"{model_dir} on {source_name(file)}")
    for column in ("label", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, row in metrics["per_class"].items():
        table.add_row(
            label,
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            str(row["support"]),
        )
    console.print(table)
    say(
        f"accuracy [bold]{metrics['accuracy']:.4f}[/]   "
        f"macro-F1 [bold]{metrics['macro_f1']:.4f}[/]   n={metrics['n']}"
    )


@handle_errors
def predict(
    model_dir: ModelArg,
    file: Annotated[
        Path,
        typer.Argument(help=DATASET_HELP + " Labels optional."),
    ],
    output: OutputOpt,
    batch_size: BatchSizeOpt = 64,
    device: DeviceOpt = "auto",
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Predicted label, probabilities and logits for every row (resumable)."""
    from augtool.core.hub import model_key
    from augtool.core.taskmodel.evaluate import prediction_row
    from augtool.core.taskmodel.model import TaskModel
    from augtool.data import FieldMap, JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import file_fingerprint
    from augtool.data.writer import completion_record

    started = time.time()
    check_input_file(file)
    key = run_key(
        "predict",
        model=model_key(model_dir),
        input=file_fingerprint(file),
        text_field=text_field,
        label_field=label_field,
    )
    if finished_already(output, key):
        return
    prepare_output(output, overwrite=overwrite, inputs=[file])
    model = TaskModel.load(model_dir, device=device, batch_size=batch_size)
    records, rejects = read_input(
        file, text_field=text_field, label_field=label_field, skip_invalid=skip_invalid
    )
    fields = FieldMap(text=text_field, label=label_field)
    writer = JsonlWriter(output, run_key=key, fields=fields, overwrite=overwrite, inputs=[file])
    todo = [r for r in records if r.id not in writer.done_ids]
    with writer, progress_reporter() as reporter:
        if writer.resumed:
            reporter.log(f"resuming: {writer.resumed} rows already written")
        advance = reporter.task("predicting", len(records), completed=len(records) - len(todo))
        for start in range(0, len(todo), batch_size):
            part = todo[start : start + batch_size]
            logits = model.logits([r.text or "" for r in part], batch_size=batch_size)
            writer.write(
                prediction_row(record, model.labels, row, fields)
                for record, row in zip(part, logits, strict=True)
            )
            advance(len(part))
        writer.commit()
    write_meta(
        output,
        build_meta(
            "predict",
            inputs=[file],
            counts={"rows": len(records)},
            models={"task_model": str(model_dir)},
            started=started,
            extra=completion_record(output, key),
        ),
    )
    report_rejects(output, rejects)
    say(f"wrote {len(records)} predictions to {output}")
