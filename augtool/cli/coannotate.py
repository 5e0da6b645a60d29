"""``augtool coannotate``: label a pool with several annotators (LLMs, task models, people's
labels), aggregate their answers, send the doubtful rows to review, merge the decisions
back, and report agreement."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from augtool.cli.common import (
    ConfigOpt,
    JsonOpt,
    OutputOpt,
    OverwriteOpt,
    SkipInvalidOpt,
    handle_errors,
    make_config,
    read_input,
    report_rejects,
)
from augtool.cli.console import console, print_error, print_json, print_warning, say
from augtool.cli.group import DefaultCommandGroup
from augtool.cli.options import config_options
from augtool.core.generation import OPERATIONAL_OPTIONS
from augtool.methods.coannotate.config import CoannotateConfig, MergeConfig, ReportConfig


class _Group(DefaultCommandGroup):
    default_command = "run"


app = typer.Typer(
    cls=_Group,
    help="Co-annotation: several annotators (LLMs, saved task models, people's labels in a "
    "field) label every row; their answers are aggregated (majority, weighted, Dawid-Skene, "
    "GLAD), doubtful rows go to a review file, people's decisions merge back. "
    "`augtool coannotate FILE ...` runs `run`.",
    no_args_is_help=True,
)

InputArg = Annotated[
    Path, typer.Argument(help="The pool to label: JSONL (or any dataset format augtool reads).")
]
LabelledArg = Annotated[
    Path, typer.Argument(help="Labelled JSONL written by `augtool coannotate` (or merge).")
]

# Options that change the aggregation and review only: answers are kept when they change.
_AGGREGATION = {"aggregate", "iterations", "review", "min_agreement", "min_confidence", "export"}


@app.command("run")
@handle_errors
@config_options(CoannotateConfig)
def run(
    ctx: typer.Context,
    file: InputArg,
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Ask every annotator about every row, aggregate the answers into one label with
    agreement and confidence, and write the doubtful rows to --review."""
    from augtool.cli.common import require_modules

    require_modules("crowdkit")
    started = time.time()
    settings = make_config(ctx, CoannotateConfig, config)
    from augtool.core.generation import RequestBudget, RequestBudgetExhausted
    from augtool.core.generation.labels import load_label_set
    from augtool.data import FieldMap, JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.data.writer import atomic_write_text, dumps_row
    from augtool.methods.coannotate.annotators import FAILED, load_annotators, parse_annotators
    from augtool.methods.coannotate.export import export_paths, write_export
    from augtool.methods.coannotate.pipeline import AnswerCheckpoint, coannotate, collect_answers

    specs = parse_annotators(settings.annotator)
    label_set = load_label_set(settings.labels)
    check_input_file(file)
    prepare_output(output, overwrite=overwrite, inputs=[file])
    review = Path(settings.review) if settings.review else None
    if review is not None:
        prepare_output(review, overwrite=overwrite, inputs=[file, output], option="--review")
        for path in export_paths(review, settings.export) if settings.export else []:
            prepare_output(path, overwrite=overwrite, inputs=[file, output], option="--export")
    fields = FieldMap(text=settings.text_field, label=settings.label_field)
    records, rejects = read_input(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        skip_invalid=skip_invalid,
    )
    locate = _locator(file, records, fields)
    budget = RequestBudget(settings.max_requests)
    from augtool.cli.console import progress_reporter

    with progress_reporter() as reporter:
        annotators = load_annotators(specs, settings, label_set, budget=budget, reporter=reporter)
        try:
            for annotator in annotators:
                annotator.check(records, locate)
            identity = {
                k: v
                for k, v in config_dict(settings).items()
                if k not in OPERATIONAL_OPTIONS | _AGGREGATION | {"annotator"}
            }
            answers_key = run_key(
                "coannotate",
                settings=identity,
                input=file_fingerprint(file),
                labels=file_fingerprint(settings.labels),
                annotators=[annotator.identity() for annotator in annotators],
            )
            described = [annotator.describe() for annotator in annotators]
            checkpoint = AnswerCheckpoint(output, answers_key)
            if checkpoint.resumed:
                reporter.log(f"resuming: {checkpoint.resumed} answers kept from before")
            try:
                answers = collect_answers(
                    records, annotators, checkpoint=checkpoint, reporter=reporter
                )
            except RequestBudgetExhausted as exc:
                checkpoint.close()
                print_error(f"{exc}; answers so far are kept ({checkpoint.path}.partial)")
                raise typer.Exit(exc.exit_code) from None
            except BaseException:
                checkpoint.close()
                raise
            requests = {a.name: {"requests": a.requests, "cached": a.cached} for a in annotators}
        finally:
            for annotator in annotators:
                annotator.close()

    result = coannotate(
        records,
        answers,
        method=settings.aggregate,
        iterations=settings.iterations,
        min_agreement=settings.min_agreement,
        min_confidence=settings.min_confidence,
        fields=fields,
    )
    output_key = run_key(
        "coannotate",
        answers=str(answers_key),
        settings={k: v for k, v in config_dict(settings).items() if k in _AGGREGATION},
    )
    writer = JsonlWriter(output, run_key=output_key, overwrite=overwrite, inputs=[file])
    with writer:
        writer.write(row for row in result.rows if str(row.get(fields.id)) not in writer.done_ids)
        if review is not None:
            text = "".join(dumps_row(row) + "\n" for row in result.review)
            atomic_write_text(review, text)
            if settings.export:
                write_export(
                    settings.export,
                    review,
                    result.review,
                    label_set.names,
                    method=settings.aggregate,
                    id_field=fields.id,
                    text_field=fields.text,
                )
        writer.commit()
    failed = [
        {"annotator": name, "id": record.id, **answer.evidence}
        for name, values in answers.items()
        for record, answer in zip(records, values, strict=True)
        if answer.status == FAILED
    ]
    from augtool.core.generation.jobs import write_failures

    failed_path = write_failures(output, failed)
    figures = result.aggregation.annotators()
    for entry in described:
        entry.update(figures.get(entry["name"], {}))
        entry["answers"] = result.counts["answers"].get(entry["name"], {})
        entry.update(requests.get(entry["name"], {}))
    meta = build_meta(
        "coannotate",
        config=settings,
        inputs=[file],
        seed=settings.seed,
        models={entry["name"]: entry.get("llm") or entry.get("model") for entry in described},
        counts={k: v for k, v in result.counts.items() if k != "answers"},
        started=started,
        extra={
            "annotators": described,
            "labels": label_set.names,
            "aggregate": settings.aggregate,
            "review": str(review) if review is not None else None,
        },
    )
    write_meta(output, meta)
    checkpoint.discard()
    report_rejects(output, rejects)
    _print_run(described)
    for entry in described:
        unparsed = entry["answers"].get("unparsed", 0)
        if unparsed:
            print_warning(
                f"{entry['name']}: {unparsed} replies named no label of {settings.labels} "
                "(counted as unparsed, not as answers)"
            )
    if failed_path is not None:
        print_warning(
            f"{len(failed)} requests failed after retries (see {failed_path}); "
            "rerun with --overwrite to retry them (answers given come from the cache)"
        )
    where = f"; {len(result.review)} to review in {review}" if review is not None else ""
    say(f"wrote {len(result.rows)} rows to {output} ({result.counts['labelled']} labelled{where})")


def _locator(path: Path, records: list[Any], fields: Any) -> Any:
    """``locate(record) -> "file:line"``, reading line numbers only when an error needs one."""
    positions = {record.id: index for index, record in enumerate(records)}
    lines: dict[str, int] | None = None

    def locate(record: Any) -> str:
        nonlocal lines
        if lines is None:
            from augtool.data.jsonl import iter_json_lines
            from augtool.errors import AugtoolError

            lines = {}
            try:
                for line, _, obj in iter_json_lines(path):
                    if isinstance(obj, dict):
                        row_id = obj.get(fields.id)
                        key = str(row_id) if row_id is not None else f"{path.stem}-{line}"
                        lines.setdefault(key, line)
            except (AugtoolError, OSError, ValueError):
                lines = {}  # not JSONL: rows are numbered in order instead
        line = lines.get(record.id, positions.get(record.id, 0) + 1)
        return f"{path}:{line}"

    return locate


def _print_run(described: list[dict[str, Any]]) -> None:
    table = Table(title="annotators")
    for column in ("annotator", "kind", "answered", "unparsed", "failed", "agree w/ aggregate"):
        table.add_column(column, justify="left" if column in ("annotator", "kind") else "right")
    table.add_column("est. accuracy", justify="right")
    for entry in described:
        answers = entry["answers"]
        table.add_row(
            Text(entry["name"]),
            entry["kind"],
            str(answers.get("answered", 0)),
            str(answers.get("unparsed", 0)),
            str(answers.get("failed", 0)),
            _fmt(entry.get("agreement_with_aggregate")),
            _fmt(entry.get("estimated_accuracy")),
        )
    console.print(table)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


@app.command("merge")
@handle_errors
@config_options(MergeConfig)
def merge(
    ctx: typer.Context,
    file: LabelledArg,
    decisions: Annotated[
        Path,
        typer.Argument(
            help="The reviewed set: the --review JSONL with 'label' filled in (null: "
            "undecided), or a Label Studio / Argilla JSON export of it."
        ),
    ],
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Fold people's decisions back into the labelled file: a decided row takes the
    person's label (recorded as source "human", with the aggregate's label kept)."""
    started = time.time()
    settings = make_config(ctx, MergeConfig, config)
    from augtool.data import JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import file_fingerprint
    from augtool.methods.coannotate.export import read_decisions
    from augtool.methods.coannotate.pipeline import merge_decisions, read_labelled, source_meta

    check_input_file(file)
    check_input_file(decisions)
    prepare_output(output, overwrite=overwrite, inputs=[file, decisions])
    rows = read_labelled(file)
    meta = source_meta(file)
    kind, found = read_decisions(
        decisions, label_field=settings.label_field, question=settings.question
    )
    merged, counts = merge_decisions(
        rows,
        found,
        labelled=file,
        label_field=settings.label_field,
        known_labels=meta.get("labels"),
        review_name=str(decisions),
    )
    key = run_key(
        "coannotate merge", labelled=file_fingerprint(file), decisions=file_fingerprint(decisions)
    )
    with JsonlWriter(output, run_key=key, overwrite=overwrite, inputs=[file, decisions]) as writer:
        writer.write(row for row in merged if str(row.get("id")) not in writer.done_ids)
        writer.commit()
    extra = {k: meta[k] for k in ("annotators", "labels", "aggregate") if k in meta}
    write_meta(
        output,
        build_meta(
            "coannotate merge",
            config=settings,
            inputs=[file, decisions],
            counts=counts,
            started=started,
            extra={**extra, "review_format": kind},
        ),
    )
    say(
        f"wrote {len(merged)} rows to {output}: {counts['decided']} decided by people "
        f"({counts['changed']} changed the aggregate's label), {counts['undecided']} left undecided"
    )


@app.command("report")
@handle_errors
@config_options(ReportConfig)
def report(
    ctx: typer.Context,
    file: LabelledArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the figures as JSON here.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Confusion matrices, one per annotator (.png, .svg, .pdf)."),
    ] = None,
    as_json: JsonOpt = False,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Per-annotator accuracy against people's labels (reviewed rows and field:
    annotators), Cohen's and Fleiss' kappa, Krippendorff's alpha, and a confusion plot."""
    from augtool.cli.common import require_modules

    require_modules("krippendorff")
    settings = make_config(ctx, ReportConfig, config)
    from augtool.core.plotting import check_plot_path, confusion_grid
    from augtool.data import prepare_output, write_json
    from augtool.data.jsonl import check_input_file
    from augtool.errors import OptionError
    from augtool.methods.coannotate.metrics import agreement_report, annotators_of
    from augtool.methods.coannotate.pipeline import read_labelled, source_meta

    check_input_file(file)
    check_plot_path(plot, html=False)
    for path, option in ((output, "--output"), (plot, "--plot")):
        if path is not None:
            prepare_output(path, overwrite=overwrite, inputs=[file], option=option)
    rows = read_labelled(file)
    names = annotators_of(rows)
    for name in settings.human:
        if name not in names:
            raise OptionError(
                "human", f"{name!r} is not an annotator of {file} ({', '.join(names)})"
            )
    humans = settings.human or [
        entry["name"]
        for entry in source_meta(file).get("annotators", [])
        if isinstance(entry, dict) and entry.get("kind") == "human"
    ]
    figures = agreement_report(rows, humans=humans, label_field=settings.label_field)
    if output is not None:
        write_json(output, figures.to_dict())
    if plot is not None:
        against = figures.confusion["against"]
        confusion_grid(
            figures.confusion["matrices"],
            figures.confusion["labels"],
            plot,
            title=f"{file.name}: answers against the {against}",
            ylabel=against,
        )
    if as_json:
        print_json(figures.to_dict())
        return
    _print_report(figures)


def _print_report(figures: Any) -> None:
    table = Table(title=f"{figures.rows} rows")
    for column in ("annotator", "answered", "agree w/ aggregate", "accuracy", "compared"):
        table.add_column(column, justify="left" if column == "annotator" else "right")
    for name, row in figures.per_annotator.items():
        shown = f"{name} (human)" if row["human"] else name
        table.add_row(
            Text(shown),
            str(row["answered"]),
            _fmt(row["agreement_with_aggregate"]),
            _fmt(row["accuracy"]),
            str(row["compared"]),
        )
    aggregate = figures.aggregate
    table.add_row("aggregate", "", "", _fmt(aggregate["accuracy"]), str(aggregate["compared"]))
    console.print(table)
    pairs = Table(title="Cohen's kappa")
    for column in ("annotator", "annotator ", "kappa", "items"):
        pairs.add_column(column, justify="right" if column in ("kappa", "items") else "left")
    for item in figures.cohen_kappa:
        pairs.add_row(Text(item["a"]), Text(item["b"]), _fmt(item["kappa"]), str(item["items"]))
    console.print(pairs)
    say(
        f"Fleiss' kappa [bold]{_fmt(figures.fleiss_kappa['kappa'])}[/] "
        f"({figures.fleiss_kappa['items']} rows every annotator answered)   "
        f"Krippendorff's alpha [bold]{_fmt(figures.krippendorff_alpha['alpha'])}[/]"
    )
    if aggregate["compared"] == 0:
        say("no row has a person's label: accuracy needs reviewed rows or a field: annotator")
