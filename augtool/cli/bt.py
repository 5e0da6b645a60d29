"""``augtool bt``: back-translation through MarianMT or Apertium."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from augtool.cli.common import (
    DATASET_HELP,
    ConfigOpt,
    OutputOpt,
    OverwriteOpt,
    SkipInvalidOpt,
    finished_already,
    handle_errors,
    make_config,
    read_input,
    report_rejects,
)
from augtool.cli.console import print_warning, progress_reporter, say
from augtool.cli.options import config_options
from augtool.methods.backtranslation import BTConfig

_CHUNK = 256


@handle_errors
@config_options(BTConfig)
def bt(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help=DATASET_HELP),
    ],
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Back-translation: English -> pivot -> English with MarianMT (--engine marian,
    online or local models) or Apertium (--engine apertium, offline)."""
    from augtool.data import FieldMap, JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.data.writer import completion_record
    from augtool.methods.backtranslation import bt_rows, build_engine, output_id

    started = time.time()
    settings = make_config(ctx, BTConfig, config)
    check_input_file(file)
    operational = {"batch_size", "device"}
    key = run_key(
        "bt",
        settings={k: v for k, v in config_dict(settings).items() if k not in operational},
        input=file_fingerprint(file),
    )
    if finished_already(output, key):
        return
    prepare_output(output, overwrite=overwrite, inputs=[file])
    records, rejects = read_input(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        skip_invalid=skip_invalid,
    )
    fields = FieldMap(text=settings.text_field, label=settings.label_field)
    engine = build_engine(settings, warn=print_warning)
    writer = JsonlWriter(output, run_key=key, fields=fields, overwrite=overwrite, inputs=[file])
    todo = [
        r
        for r in records
        if any(output_id(r, v, settings) not in writer.done_ids for v in range(settings.n))
    ]
    written = dropped = 0
    try:
        with writer, progress_reporter() as reporter:
            if writer.resumed:
                reporter.log(f"resuming: {writer.resumed} rows already written")
            advance = reporter.task(
                "back-translating",
                len(records) * settings.n,
                completed=(len(records) - len(todo)) * settings.n,
            )
            for start in range(0, len(todo), _CHUNK):
                rows = bt_rows(todo[start : start + _CHUNK], settings, engine, advance)
                keep = [
                    row
                    for row, identical in rows
                    if (settings.keep_identical or not identical) and row.id not in writer.done_ids
                ]
                dropped += sum(
                    1 for _, identical in rows if identical and not settings.keep_identical
                )
                written += writer.write(keep)
            writer.commit()
    finally:
        engine.close()
    total = written + writer.resumed
    counts = {
        "input": len(records),
        "output": total,
        "dropped_identical": dropped,
        "resumed": writer.resumed,
    }
    write_meta(
        output,
        build_meta(
            "bt",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            models={"engine": engine.describe()},
            counts=counts,
            started=started,
            extra=completion_record(output, key),
        ),
    )
    report_rejects(output, rejects)
    note = f", {dropped} identical to their input dropped" if dropped else ""
    say(f"wrote {total} back-translations to {output}{note}")
