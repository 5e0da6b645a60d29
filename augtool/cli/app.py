"""The root ``augtool`` app: every command group is registered here, in one place.

Command modules import only typer/rich at import time; torch and the models load inside
command bodies, so ``augtool --help`` stays instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from augtool import __version__
from augtool.cli import (
    audit,
    bench,
    bt,
    coannotate,
    data,
    eda,
    embed,
    evaluate,
    invmix,
    llm,
    lmmixup,
    pinr,
    topex,
    train,
)
from augtool.cli.group import OneLineErrorGroup
from augtool.cli.helptext import flow_help

app = typer.Typer(
    name="augtool",
    cls=OneLineErrorGroup,
    help="Text data augmentation and condensation: inversedMixup, TopEx, PInR, LM-mixup "
    "and the baselines they are judged against. Datasets in (JSONL, CSV, Parquet, HF datasets), "
    "JSONL out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"augtool {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """augtool: datasets in (JSONL, CSV, Parquet, HF datasets), JSONL out."""


app.add_typer(data.app, name="data")
app.add_typer(llm.app, name="llm")
app.add_typer(bench.app, name="bench")
app.add_typer(invmix.app, name="invmix")
app.add_typer(topex.app, name="topex")
app.add_typer(pinr.app, name="pinr")
app.add_typer(lmmixup.app, name="lmmixup")
app.add_typer(coannotate.app, name="coannotate")
app.command("embed")(embed.embed)
app.command("eda")(eda.eda)
app.command("bt")(bt.bt)
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("predict")(evaluate.predict)
app.command("audit")(audit.audit)
flow_help(app)


def main() -> None:
    """Console-script entry point."""
    app()
