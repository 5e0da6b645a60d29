"""``augtool eda``: Easy Data Augmentation (synonym replacement, insertion, swap, deletion)."""

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
from augtool.cli.console import progress_reporter, say
from augtool.cli.options import config_options
from augtool.methods.eda import EDAConfig

_CHUNK = 512


@handle_errors
@config_options(EDAConfig)
def eda(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help=DATASET_HELP + " Labels optional."),
    ],
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """EDA (Wei & Zou, 2019): --n-aug sentences per row by synonym replacement, random
    insertion, random swap and random deletion; WordNet synonyms, offline."""
    from augtool.core.wordnet import WordNetSynonyms
    from augtool.data import FieldMap, JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.data.writer import completion_record
    from augtool.methods.eda import augment_record, needs_synonyms, vocabulary

    started = time.time()
    settings = make_config(ctx, EDAConfig, config)
    check_input_file(file)
    key = run_key("eda", settings=config_dict(settings), input=file_fingerprint(file))
    if finished_already(output, key):
        return
    prepare_output(output, overwrite=overwrite, inputs=[file])
    records, rejects = read_input(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        skip_invalid=skip_invalid,
    )
    synonyms = None
    if needs_synonyms(settings):
        synonyms = WordNetSynonyms()
    fields = FieldMap(text=settings.text_field, label=settings.label_field)
    writer = JsonlWriter(output, run_key=key, fields=fields, overwrite=overwrite, inputs=[file])
    written = 0
    with writer, progress_reporter() as reporter:
        if synonyms is not None:
            vocab = vocabulary(records)
            advance = reporter.task("looking up synonyms", len(vocab))
            synonyms.prefetch(vocab)
            advance(len(vocab))
        lookup = synonyms.synonyms if synonyms is not None else _no_synonyms
        if writer.resumed:
            reporter.log(f"resuming: {writer.resumed} rows already written")
        advance = reporter.task("augmenting", len(records))
        taken = frozenset(record.id for record in records)
        for start in range(0, len(records), _CHUNK):
            rows = [
                row
                for record in records[start : start + _CHUNK]
                for row in augment_record(record, settings, lookup, taken)
                if row.id not in writer.done_ids
            ]
            written += writer.write(rows)
            advance(min(_CHUNK, len(records) - start))
        writer.commit()
    if synonyms is not None:
        synonyms.close()
    total = written + writer.resumed
    write_meta(
        output,
        build_meta(
            "eda",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            counts={"input": len(records), "output": total, "resumed": writer.resumed},
            started=started,
            extra=completion_record(output, key),
        ),
    )
    report_rejects(output, rejects)
    say(f"wrote {total} rows ({settings.n_aug} per input row) to {output}")


def _no_synonyms(word: str) -> tuple[str, ...]:
    return ()
