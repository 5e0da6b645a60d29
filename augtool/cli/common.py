"""Shared CLI plumbing: error handling, common options, config building."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from click.core import ParameterSource

from augtool.cli.console import print_error
from augtool.core.config import build_config, field_default, field_help
from augtool.errors import AugtoolError

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")


#: Packages of the optional extras (pyproject.toml) -> the extra that installs them.
OPTIONAL_MODULES = {
    "bertopic": "topex",
    "hdbscan": "topex",
    "umap": "topex",
    "plotly": "topex",
    "openai": "llm",
    "nlpaug": "peers",
    "accelerate": "gpu",
    "mauve": "pinr",
    "trl": "train",
    "peft": "train",
    "datasets": "train",
    "pyarrow": "formats",
    "crowdkit": "coannotate",
    "krippendorff": "coannotate",
    "cleanlab": "audit",
    "sacrebleu": "audit",
}


def require_modules(*names: str) -> None:
    """Fail before any work when an optional package a command needs is missing."""
    import importlib.util

    for name in names:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def handle_errors(func: F) -> F:
    """Turn user errors into one line on stderr and a non-zero exit (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            check_option_ranges(kwargs)
            with output_locks(kwargs):
                return func(*args, **kwargs)
        except AugtoolError as exc:
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print_error("interrupted; finished work is kept, rerun the same command to resume")
            raise typer.Exit(130) from None
        except ModuleNotFoundError as exc:
            extra = OPTIONAL_MODULES.get((exc.name or "").split(".")[0])
            if extra is None:
                raise
            print_error(
                f"this command needs the {exc.name!r} package: pip install 'augtool[{extra}]'"
            )
            raise typer.Exit(1) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            print_error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def check_option_ranges(kwargs: dict[str, Any]) -> None:
    """Every numeric option's range (:mod:`augtool.core.option_ranges`), before any work.

    Options generated from a config dataclass reach the command through the click
    context rather than as arguments, so both are checked.
    """
    from augtool.core.option_ranges import check_ranges

    context = next((v for v in kwargs.values() if isinstance(v, typer.Context)), None)
    context = context or _current_context()
    values = dict(context.params) if context is not None else {}
    values.update(kwargs)
    check_ranges(values)


#: Parameters naming files or folders a command writes; each is locked while it runs.
OUTPUT_PARAMS = ("output", "dev_output")


def output_locks(kwargs: dict[str, Any]) -> Any:
    """Hold the write lock of every output for the whole command (one writer per output).

    Outputs whose folder does not exist yet are skipped here: the writer inside creates
    the folder and takes the same (re-entrant) lock. Under ``accelerate launch`` only
    rank 0 writes, so only rank 0 locks (another rank would be refused its own job's lock).
    """
    import contextlib

    from augtool.core.distributed import is_main_process
    from augtool.data.lock import OutputLock

    stack = contextlib.ExitStack()
    if not is_main_process():
        return stack
    try:
        for name in OUTPUT_PARAMS:
            output = kwargs.get(name)
            if isinstance(output, Path) and str(output) != "-" and output.parent.is_dir():
                option = "--" + name.replace("_", "-")
                stack.enter_context(OutputLock(output, option=option))
    except BaseException:
        stack.close()  # the locks taken so far
        raise
    return stack


def finished_already(output: Path, key: str) -> bool:
    """True (and says so) when ``output`` is a finished run of this very job: rerunning a
    command after it completed, e.g. a script restarted after a crash, is a no-op."""
    from augtool.cli.console import say
    from augtool.data.writer import output_is_current

    if not output_is_current(output, key):
        return False
    from augtool.core.distributed import is_main_process

    if not is_main_process():  # under `accelerate launch`, rank 0 says it
        return True
    meta = output / "meta.json" if output.is_dir() else f"{output}.meta.json"
    say(
        f"{output} is already complete for these inputs and settings (see {meta}); "
        "nothing to do. Delete it to run again."
    )
    return True


def _current_context() -> Any:
    """The running command's context (typer >= 0.26 vendors click under ``typer._click``)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import get_current_context
    return get_current_context(silent=True)


def explicit_params(ctx: typer.Context) -> set[str]:
    """Names of the options the user typed (or set through the environment)."""
    typed = {ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT}
    return {name for name in ctx.params if ctx.get_parameter_source(name) in typed}


def make_config(ctx: typer.Context, cls: type[C], config_file: Path | None) -> C:
    """The command's config dataclass from defaults, ``--config`` and typed options."""
    return build_config(cls, ctx.params, explicit=explicit_params(ctx), config_file=config_file)


def help_of(cls: type, name: str) -> str:
    return field_help(cls, name)


def default_of(cls: type, name: str) -> Any:
    return field_default(cls, name)


# Options shared by many commands.
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output path.")]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace the output if it exists (inputs never).")
]
SkipInvalidOpt = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        help="Skip invalid rows instead of failing; they go to <out>.rejects.jsonl.",
    ),
]
TextFieldOpt = Annotated[str, typer.Option("--text-field", help="JSON field holding the text.")]
LabelFieldOpt = Annotated[str, typer.Option("--label-field", help="JSON field holding the label.")]
#: Help of a dataset argument: every reader takes these (augtool/data/formats.py).
DATASET_HELP = "Dataset: JSONL, CSV/TSV, Parquet, a save_to_disk folder or hf://NAME:SPLIT."
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML file with option values (options typed here win)."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Inference batch size.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]


def read_input(
    paths: Path | list[Path],
    *,
    text_field: str = "text",
    label_field: str = "label",
    require_label: bool = False,
    require_text: bool = True,
    known_labels: frozenset[str] | None = None,
    skip_invalid: bool = False,
) -> tuple[list[Any], list[Any]]:
    """Read and validate the input up front (JSONL, CSV, TSV, Parquet, datasets; see
    :mod:`augtool.data.formats`); returns ``(records, rejected rows)``."""
    from augtool.data import FieldMap, RecordSpec, read_records

    spec = RecordSpec(
        fields=FieldMap(text=text_field, label=label_field),
        require_text=require_text,
        require_label=require_label,
        known_labels=known_labels,
    )
    rejects: list[Any] | None = [] if skip_invalid else None
    records = read_records(paths, spec, rejects=rejects)
    return records, rejects or []


def report_rejects(output: Path, rejects: list[Any]) -> None:
    """Write skipped rows next to the output and say so."""
    from augtool.cli.console import print_warning
    from augtool.data import write_rejects

    path = write_rejects(output, rejects)
    if path is not None:
        print_warning(f"skipped {len(rejects)} invalid rows; see {path}")
