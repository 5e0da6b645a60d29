"""``augtool data``: validate, describe, sample, split and convert datasets."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from augtool.cli.common import (
    JsonOpt,
    LabelFieldOpt,
    OutputOpt,
    OverwriteOpt,
    SkipInvalidOpt,
    TextFieldOpt,
    handle_errors,
    read_input,
    report_rejects,
)
from augtool.cli.console import console, print_json, say

app = typer.Typer(
    help="Validate, describe, sample, split and convert datasets (JSONL, CSV, TSV, Parquet, "
    "Hugging Face datasets).",
    no_args_is_help=True,
)


class IfShort(str, Enum):
    error = "error"
    all = "all"


class OutFormat(str, Enum):
    auto = "auto"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"


FormatOpt = Annotated[
    OutFormat,
    typer.Option(
        "--format",
        help="Output format; auto follows the output's suffix (.csv, .tsv, .parquet; "
        "anything else is JSONL).",
    ),
]


@app.command("validate")
@handle_errors
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="Datasets to check (JSONL, CSV, TSV, Parquet, folder, hf://...)."),
    ],
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    require_label: Annotated[
        bool, typer.Option("--require-label", help="Every row must have a label.")
    ] = False,
    max_errors: Annotated[int, typer.Option(help="Show at most this many problems.")] = 20,
) -> None:
    """Check every row (JSON, fields, types, empty text, duplicate ids); exit 1 on problems."""
    from augtool.cli.console import print_error
    from augtool.data import FieldMap, RecordSpec, read_records
    from augtool.errors import DataError, source_name

    spec = RecordSpec(
        fields=FieldMap(text=text_field, label=label_field), require_label=require_label
    )
    rejects: list = []
    try:
        records = read_records(files, spec, rejects=rejects)
    except DataError:
        if not rejects:  # empty or unreadable: nothing more to list
            raise
        records = []  # every row of a file was invalid: list them all below
    for item in rejects[:max_errors]:
        print_error(f"{item.path}:{item.line}: {item.reason}")
    if len(rejects) > max_errors:
        print_error(f"... and {len(rejects) - max_errors} more problems")
    names = ", ".join(source_name(path) for path in files)
    if rejects:
        say(f"{names}: {len(records)} valid rows, [red]{len(rejects)} invalid[/]")
        raise typer.Exit(1)
    say(f"{names}: {len(records)} rows, all valid")


@app.command("stats")
@handle_errors
def stats(
    file: Annotated[Path, typer.Argument(help="Dataset (JSONL, CSV, TSV, Parquet, hf://...).")],
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    as_json: JsonOpt = False,
) -> None:
    """Rows, label distribution, text lengths and duplicate texts."""
    from augtool.data import dataset_stats

    records, _ = read_input(file, text_field=text_field, label_field=label_field)
    summary = dataset_stats(records)
    if as_json:
        print_json(summary)
        return
    from augtool.errors import source_name

    overview = Table(title=source_name(file), show_header=False)
    for key in (
        "rows",
        "labelled",
        "unlabelled",
        "soft_labelled",
        "with_text_pair",
        "augmented",
        "duplicate_texts",
    ):
        overview.add_row(key.replace("_", " "), str(summary[key]))
    for unit in ("chars", "words"):
        s = summary[unit]
        overview.add_row(
            f"length ({unit})",
            f"min {s['min']}  mean {s['mean']}  median {s['median']}  max {s['max']}",
        )
    console.print(overview)
    if summary["labels"]:
        labels = Table(title="labels")
        labels.add_column("label")
        labels.add_column("rows", justify="right")
        labels.add_column("share", justify="right")
        total = summary["labelled"]
        for name, count in summary["labels"].items():
            labels.add_row(name, str(count), f"{100 * count / total:.1f}%")
        console.print(labels)


@app.command("sample")
@handle_errors
def sample(
    file: Annotated[Path, typer.Argument(help="Labelled dataset (JSONL, CSV, Parquet...).")],
    output: OutputOpt,
    k: Annotated[int, typer.Option("--k", help="Examples per label.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    if_short: Annotated[
        IfShort,
        typer.Option(help="When a label has fewer than K rows: fail (error) or take them all."),
    ] = IfShort.error,
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
    out_format: FormatOpt = OutFormat.auto,
) -> None:
    """Draw a K-shot training set: K rows per label, seeded, in input order."""
    from augtool.data import k_shot
    from augtool.errors import OptionError

    started = time.time()
    if k < 1:
        raise OptionError("k", f"must be at least 1 (got {k})")
    records, rejects = read_input(
        file,
        text_field=text_field,
        label_field=label_field,
        require_label=True,
        skip_invalid=skip_invalid,
    )
    chosen = k_shot(records, k, seed, if_short=if_short.value)
    settings = {"k": k, "seed": seed, "if_short": if_short.value}
    _write_part(
        output,
        chosen,
        "data sample",
        settings,
        file,
        len(records),
        text_field,
        label_field,
        overwrite=overwrite,
        started=started,
        fmt=out_format.value,
    )
    report_rejects(output, rejects)
    say(f"wrote {len(chosen)} rows ({k} per label) to {output}")


@app.command("split")
@handle_errors
def split(
    file: Annotated[Path, typer.Argument(help="Labelled dataset (JSONL, CSV, Parquet...).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Training part.")],
    dev_output: Annotated[Path, typer.Option("--dev-output", help="Dev part.")],
    dev_fraction: Annotated[float, typer.Option(help="Fraction of each label for dev.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
    out_format: FormatOpt = OutFormat.auto,
) -> None:
    """Stratified train/dev split, seeded."""
    from augtool.data import prepare_output, train_dev_split
    from augtool.errors import AugtoolError

    started = time.time()
    if output.resolve() == dev_output.resolve():
        raise AugtoolError("--dev-output: must differ from --output")
    prepare_output(dev_output, overwrite=overwrite, inputs=[file], option="--dev-output")
    records, rejects = read_input(
        file,
        text_field=text_field,
        label_field=label_field,
        require_label=True,
        skip_invalid=skip_invalid,
    )
    train, dev = train_dev_split(records, dev_fraction, seed)
    settings = {"dev_fraction": dev_fraction, "seed": seed}
    for path, part, option in ((output, train, "--output"), (dev_output, dev, "--dev-output")):
        _write_part(
            path,
            part,
            "data split",
            settings,
            file,
            len(records),
            text_field,
            label_field,
            overwrite=overwrite,
            started=started,
            option=option,
            fmt=out_format.value,
        )
    report_rejects(output, rejects)
    say(f"wrote {len(train)} training rows to {output} and {len(dev)} dev rows to {dev_output}")


def _write_part(
    path: Path,
    records: list,
    command: str,
    settings: dict,
    source: Path,
    input_rows: int,
    text_field: str,
    label_field: str,
    *,
    overwrite: bool,
    started: float,
    option: str = "--output",
    fmt: str = "auto",
) -> None:
    """Write a subset of the input in the input's own schema, with its meta sidecar:
    JSONL, or CSV, TSV or Parquet (``fmt``; auto follows the suffix)."""
    from augtool.data import FieldMap, JsonlWriter, build_meta, run_key, write_meta
    from augtool.data.formats import is_dataset_source, output_format, write_table
    from augtool.data.provenance import file_fingerprint

    fields = FieldMap(text=text_field, label=label_field)
    fmt = output_format(path, fmt)
    if fmt == "jsonl":
        writer = JsonlWriter(
            path,
            run_key=run_key(
                command,
                settings=settings,
                input=file_fingerprint(source) if is_dataset_source(source) else str(source),
                ids=[r.id for r in records],
            ),
            fields=fields,
            overwrite=overwrite,
            inputs=[source],
            option=option,
        )
        with writer:
            writer.write(r for r in records if r.id not in writer.done_ids)
            writer.commit()
    else:
        from augtool.data import prepare_output
        from augtool.data.lock import lock_output

        prepare_output(path, overwrite=overwrite, inputs=[source], option=option)
        with lock_output(path, option=option):
            write_table(path, [r.to_dict(fields) for r in records], fmt, option=option)
    meta = build_meta(
        command,
        config=settings,
        inputs=[source],
        seed=settings.get("seed"),
        counts={"input": input_rows, "output": len(records)},
        started=started,
        extra={"format": fmt},
    )
    write_meta(path, meta)


@app.command("convert")
@handle_errors
def convert(
    file: Annotated[
        Path, typer.Argument(help="Dataset to convert (JSONL, CSV, TSV, Parquet, hf://...).")
    ],
    output: OutputOpt,
    out_format: FormatOpt = OutFormat.auto,
    text_field: TextFieldOpt = "text",
    label_field: LabelFieldOpt = "label",
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Convert between JSONL, CSV, TSV and Parquet (and from Hugging Face datasets),
    validating every row; each row's id is written, derived ones too, so rows keep their
    ids in the new format."""
    started = time.time()
    records, rejects = read_input(
        file,
        text_field=text_field,
        label_field=label_field,
        require_text=False,
        skip_invalid=skip_invalid,
    )
    _write_part(
        output,
        records,
        "data convert",
        {},
        file,
        len(records),
        text_field,
        label_field,
        overwrite=overwrite,
        started=started,
        fmt=out_format.value,
    )
    report_rejects(output, rejects)
    say(f"wrote {len(records)} rows to {output}")
