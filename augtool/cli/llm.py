"""``augtool llm``: the LLM prompting baselines (rewrite, generate, mix) and labelling."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from augtool.cli.common import (
    DATASET_HELP,
    ConfigOpt,
    OutputOpt,
    OverwriteOpt,
    SkipInvalidOpt,
    handle_errors,
    make_config,
    read_input,
    report_rejects,
)
from augtool.cli.console import console, print_error, print_warning, progress_reporter, say
from augtool.cli.options import config_options
from augtool.core.generation import OPERATIONAL_OPTIONS
from augtool.methods.llm_baselines import GenerateConfig, LabelConfig, MixConfig, RewriteConfig

app = typer.Typer(
    help="LLM prompting baselines (rewrite, generate, mix) and LLM labelling, on any "
    "OpenAI-compatible server (openai:) or a local transformers model (hf:).",
    no_args_is_help=True,
)

InputArg = Annotated[
    Path,
    typer.Argument(help=DATASET_HELP),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Show the prompts, request count and a token estimate; "
        "make no call and write nothing.",
    ),
]


@app.command("rewrite")
@handle_errors
@config_options(RewriteConfig)
def rewrite(
    ctx: typer.Context,
    file: InputArg,
    output: OutputOpt,
    dry_run: DryRunOpt = False,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """LLM-Rew: rewrite every labelled row --n times, keeping its label."""
    _run(ctx, "rewrite", RewriteConfig, file, output, dry_run, overwrite, skip_invalid, config)


@app.command("generate")
@handle_errors
@config_options(GenerateConfig)
def generate(
    ctx: typer.Context,
    file: InputArg,
    output: OutputOpt,
    dry_run: DryRunOpt = False,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """LLM-Gen: --per-label new rows per label (the paper's prompt with --topic, or
    --prompt-style augtool with --shots examples)."""
    _run(ctx, "generate", GenerateConfig, file, output, dry_run, overwrite, skip_invalid, config)


@app.command("mix")
@handle_errors
@config_options(MixConfig)
def mix(
    ctx: typer.Context,
    file: InputArg,
    output: OutputOpt,
    dry_run: DryRunOpt = False,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """LLM-Mix: --pairs rows fusing two inputs into one; soft labels."""
    _run(ctx, "mix", MixConfig, file, output, dry_run, overwrite, skip_invalid, config)


@app.command("label")
@handle_errors
@config_options(LabelConfig)
def label(
    ctx: typer.Context,
    file: InputArg,
    output: OutputOpt,
    dry_run: DryRunOpt = False,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Label every row with one label of --labels (log-likelihood on hf:, parsing on openai:)."""
    _run(ctx, "label", LabelConfig, file, output, dry_run, overwrite, skip_invalid, config)


def _run(
    ctx: typer.Context,
    kind: str,
    cls: type,
    file: Path,
    output: Path,
    dry_run: bool,
    overwrite: bool,
    skip_invalid: bool,
    config_file: Path | None,
) -> None:
    from augtool.core.generation import RequestBudget, RequestBudgetExhausted, load_llm
    from augtool.core.generation.jobs import JobSummary, estimate, run_tasks, write_failures
    from augtool.core.generation.labels import load_label_set
    from augtool.data import FieldMap, JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.errors import OptionError
    from augtool.methods import llm_baselines as methods

    started = time.time()
    settings = make_config(ctx, cls, config_file)
    template = settings.template()
    label_set = None
    if getattr(settings, "labels", None):
        label_set = load_label_set(settings.labels)
    check_input_file(file)
    if not dry_run:
        prepare_output(output, overwrite=overwrite, inputs=[file])
    records, rejects = read_input(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        require_label=kind != "label",
        skip_invalid=skip_invalid,
    )
    if label_set is not None:
        label_set.require((r.label for r in records), settings.labels)
    llm = load_llm(settings.llm, **settings.backend_options())
    scoring = getattr(settings, "scoring", None)
    if scoring == "auto":
        scoring = "loglik" if llm.scheme == "hf" else "parse"
    if scoring == "loglik" and not isinstance(llm, methods.ScoringLLM):
        raise OptionError("scoring", f"loglik needs a local model (hf:), not {llm.scheme}:")

    if kind == "rewrite":
        tasks = methods.rewrite_tasks(records, settings, template)
    elif kind == "generate":
        tasks = methods.generate_tasks(records, settings, label_set, template)
    elif kind == "mix":
        tasks = methods.mix_tasks(records, settings, template)
    else:
        tasks = methods.parse_label_tasks(records, settings, label_set, template)

    if dry_run:
        counter = getattr(llm, "count_tokens", None)
        _print_estimate(
            estimate(tasks, llm, settings.params(), counter),
            tasks,
            scoring,
            len(label_set.names) if label_set else 0,
        )
        llm.close()
        return

    llm.check()
    identity = {k: v for k, v in config_dict(settings).items() if k not in OPERATIONAL_OPTIONS}
    key = run_key(
        f"llm {kind}",
        settings=identity,
        input=file_fingerprint(file),
        prompt=[template.user, template.system],
        labels=file_fingerprint(settings.labels) if label_set else None,
    )
    fields = FieldMap(text=settings.text_field, label=settings.label_field)
    writer = JsonlWriter(output, run_key=key, fields=fields, overwrite=overwrite, inputs=[file])
    summary = JobSummary()
    budget = RequestBudget(settings.max_requests)
    try:
        with writer, progress_reporter() as reporter:
            if writer.resumed:
                reporter.log(f"resuming: {writer.resumed} rows already written")
            if scoring == "loglik":
                methods.run_loglik_labelling(
                    records,
                    llm,
                    label_set,
                    settings,
                    writer,
                    template=template,
                    budget=budget,
                    reporter=reporter,
                    summary=summary,
                )
            else:
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
    except KeyboardInterrupt:
        write_failures(output, summary.failed)
        print_error(f"interrupted: {_summary_line(summary)}; rerun the same command to resume")
        raise typer.Exit(130) from None
    except RequestBudgetExhausted as exc:
        write_failures(output, summary.failed)
        print_error(f"{exc} ({_summary_line(summary)})")
        raise typer.Exit(exc.exit_code) from None
    finally:
        llm.close()

    failed_path = write_failures(output, summary.failed)
    meta = build_meta(
        f"llm {kind}",
        config=settings,
        inputs=[file],
        seed=settings.seed,
        models={"llm": llm.identity()},
        counts=summary.as_dict(),
        started=started,
        extra={"prompt": template.describe()},
    )
    write_meta(output, meta)
    report_rejects(output, rejects)
    if failed_path is not None:
        print_warning(f"{len(summary.failed)} requests failed after retries; see {failed_path}")
    say(f"wrote {summary.resumed + summary.written} rows to {output} ({_summary_line(summary)})")


def _summary_line(summary: Any) -> str:
    parts = [f"{summary.requests} requests", f"{summary.cached} from cache"]
    if summary.resumed:
        parts.append(f"{summary.resumed} resumed")
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed")
    return ", ".join(parts)


def _print_estimate(
    figures: dict[str, Any], tasks: list[Any], scoring: str | None, options: int
) -> None:
    table = Table(title="dry run: nothing is sent", show_header=False)
    table.add_row("prompts", str(len(tasks)))
    if scoring == "loglik":
        table.add_row("forward passes", f"{len(tasks)} prompts x {options} labels (local model)")
    else:
        table.add_row("requests to send", str(figures["requests"]))
        table.add_row("already cached", str(figures["cached"]))
        table.add_row("max completion tokens", str(figures["max_completion_tokens"]))
    table.add_row("prompt tokens", f"{figures['prompt_tokens']} ({figures['tokens_counted_by']})")
    console.print(table)
    if tasks:
        first = tasks[0].prompt
        text = (
            first
            if isinstance(first, str)
            else "\n".join(f"[{m['role']}] {m['content']}" for m in first)
        )
        say("first prompt:")
        console.print(text, markup=False, highlight=False, soft_wrap=True)
