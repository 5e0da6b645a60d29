"""``augtool bench``: K-shot x seeds x methods tables (run, report, and single cells)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from augtool.cli.common import handle_errors
from augtool.cli.console import console, print_warning, progress_reporter, say


class DefaultToRun(TyperGroup):
    """``augtool bench CONFIG ...`` means ``augtool bench run CONFIG ...``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=DefaultToRun,
    help="Benchmark augmentation methods: `augtool bench CONFIG -o RUN_DIR` runs every "
    "dataset x K x seed x method cell (resumable); `augtool bench report RUN_DIR` prints "
    "the tables.",
    no_args_is_help=True,
)

RunDirArg = Annotated[Path, typer.Argument(help="A bench run folder.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="markdown, csv, json or latex.")]


@app.command("run")
@handle_errors
def run(
    config: Annotated[Path, typer.Argument(help="Bench config (YAML).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder.")],
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Cells to run at once, in separate processes.")
    ] = 1,
    prepare_only: Annotated[
        bool,
        typer.Option(
            "--prepare-only",
            help="Write the run folder and manifest.txt (one command line per "
            "cell) without running cells, e.g. for a Slurm array.",
        ),
    ] = False,
    fmt: FormatOpt = "markdown",
) -> None:
    """Run a benchmark config; rerunning resumes (finished cells are not rerun)."""
    from augtool.bench.config import load_bench_config
    from augtool.bench.methods import check_methods
    from augtool.bench.report import build_table, render
    from augtool.bench.runner import prepare, run_bench
    from augtool.errors import OptionError

    if jobs < 1:
        raise OptionError("jobs", "must be at least 1")
    settings = load_bench_config(config)
    check_methods(settings, config)
    cells = prepare(settings, output)
    if prepare_only:
        say(
            f"prepared {len(cells)} cells in {output}; run the lines of "
            f"{output / 'manifest.txt'}, then `augtool bench report {output}`"
        )
        return
    with progress_reporter() as reporter:
        summary = run_bench(output, cells, jobs=jobs, reporter=reporter)
    table = build_table(output)
    text = render(table, fmt)
    (output / f"report.{_suffix(fmt)}").write_text(text, encoding="utf-8")
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    if summary["failed"]:
        print_warning(
            f"{len(summary['failed'])} cells failed (see {output / 'logs'}); rerun to retry them"
        )
    line = (
        f"{summary['ran']} cells run, {summary['already_done']} already done, "
        f"{summary['wall_seconds']:.0f} s"
    )
    if "harness_overhead" in summary:
        line += f"; harness overhead {100 * summary['harness_overhead']:.1f}%"
    say(line)
    if summary["failed"]:
        raise typer.Exit(1)


@app.command("report")
@handle_errors
def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="A bench run folder; more folders of the same grid (data, K, seeds, task "
            "model) add their methods to the same table."
        ),
    ],
    fmt: FormatOpt = "markdown",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the table here too.")
    ] = None,
    plot: Annotated[
        bool,
        typer.Option(
            "--plot", help="Also write <run>/plots/<dataset>.png (score vs K per method)."
        ),
    ] = False,
    metric: Annotated[
        str | None, typer.Option(help="accuracy or macro_f1 (default: the config's).")
    ] = None,
) -> None:
    """Print the tables of a run folder (partial runs too: missing cells are listed)."""
    from augtool.bench.config import METRICS
    from augtool.bench.report import FORMATS, build_tables, render
    from augtool.bench.report import plot as plot_table
    from augtool.data.writer import atomic_write_text
    from augtool.errors import OptionError

    if fmt not in FORMATS:
        raise OptionError("format", f"must be one of {', '.join(FORMATS)}")
    if metric is not None and metric not in METRICS:
        raise OptionError("metric", f"must be one of {', '.join(METRICS)}")
    table = build_tables(run_dirs, metric)
    text = render(table, fmt)
    if output is not None:
        atomic_write_text(output, text)
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    if plot:
        for path in plot_table(table, run_dirs[0] / "plots"):
            say(f"wrote {path}")


@app.command("cell")
@handle_errors
def cell(
    run_dir: RunDirArg,
    cell_id: Annotated[str, typer.Argument(help="<dataset>__k<K>__s<seed>__<method>")],
) -> None:
    """Run one cell of a prepared run folder (what manifest.txt lists)."""
    from augtool.bench.runner import run_cell

    started = time.time()
    result = run_cell(run_dir, cell_id)
    if result["status"] != "ok":
        print_warning(f"{cell_id} failed: {result['error']}")
        raise typer.Exit(1)
    say(f"{cell_id}: {_score_line(result)} in {time.time() - started:.0f} s")


def _score_line(result: dict[str, Any]) -> str:
    return f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}"


def _suffix(fmt: str) -> str:
    return {"markdown": "md", "latex": "tex"}.get(fmt, fmt)
