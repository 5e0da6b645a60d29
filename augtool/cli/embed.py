"""``augtool embed``: sentence embeddings of a dataset as ``.npy`` (+ ids)."""

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
from augtool.cli.console import print_error, progress_reporter, say
from augtool.core.encoders.job import EmbedConfig as E


@handle_errors
def embed(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help=DATASET_HELP),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output .npy file (float32, one row per row).")
    ],
    encoder: Annotated[str, typer.Option(help=help_of(E, "encoder"))] = default_of(E, "encoder"),
    pooling: Annotated[str | None, typer.Option(help=help_of(E, "pooling"))] = None,
    max_length: Annotated[int | None, typer.Option(help=help_of(E, "max_length"))] = None,
    batch_size: Annotated[int, typer.Option(help=help_of(E, "batch_size"))] = default_of(
        E, "batch_size"
    ),
    device: Annotated[str, typer.Option(help=help_of(E, "device"))] = "auto",
    dtype: Annotated[str, typer.Option(help=help_of(E, "dtype"))] = "auto",
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help=help_of(E, "cache"))] = True,
    text_field: Annotated[str, typer.Option(help=help_of(E, "text_field"))] = "text",
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Embed every text with a sentence encoder (default: all-MiniLM-L6-v2, offline).

    Writes OUTPUT (a NumPy .npy file, float32, one row per input row; other names are
    refused), OUTPUT.ids.json and OUTPUT.meta.json. Vectors are cached on disk: embedding
    the same texts again with the same model is a lookup, and an interrupted run resumes
    from the cache when the same command is run again.
    """
    from augtool.core.encoders.job import EmbedInterrupted, check_output_name, embed_records
    from augtool.core.hub import model_key
    from augtool.data import build_meta, prepare_output, run_key, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.data.writer import completion_record

    started = time.time()
    check_output_name(output)
    settings = make_config(ctx, E, config)
    check_input_file(file)
    operational = {"batch_size", "device", "cache"}
    key = run_key(
        "embed",
        settings={k: v for k, v in config_dict(settings).items() if k not in operational},
        input=file_fingerprint(file),
        encoder=model_key(settings.encoder),
    )
    if finished_already(output, key):
        return
    prepare_output(output, overwrite=overwrite, inputs=[file])
    records, rejects = read_input(file, text_field=settings.text_field, skip_invalid=skip_invalid)
    try:
        with progress_reporter() as reporter:
            described = embed_records(
                records, output, settings, overwrite=overwrite, inputs=[file], reporter=reporter
            )
    except EmbedInterrupted as exc:
        print_error(str(exc))
        raise typer.Exit(130) from None
    write_meta(
        output,
        build_meta(
            "embed",
            config=settings,
            inputs=[file],
            models={"encoder": described},
            counts={"rows": len(records)},
            started=started,
            extra=completion_record(output, key),
        ),
    )
    report_rejects(output, rejects)
    say(f"wrote {len(records)} embeddings to {output}")
