"""The root command group: usage errors in one line, like every other augtool error.

click (and typer's rich rendering) print a bad option value or an unknown option as a
usage block and a boxed panel over several lines; scripts that grep stderr want one
line naming the option, as :func:`augtool.cli.common.handle_errors` gives for the rest.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from augtool.cli.console import print_error


def _exception_class(name: str) -> type[BaseException]:
    """click's exception class ``name`` as typer uses it (typer may vendor click)."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cls
    raise LookupError(name)  # pragma: no cover - every click has these


_CLICK_EXCEPTION = _exception_class("ClickException")
_USAGE_ERROR = _exception_class("UsageError")


def usage_error_line(exc: BaseException) -> str:
    """``message (see 'augtool cmd --help')`` on one line."""
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, _USAGE_ERROR) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


class OneLineErrorGroup(TyperGroup):
    """A typer group whose usage errors are one ``error:`` line and exit code 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        call = super().main
        if not standalone_mode:
            return call(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            result = call(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _CLICK_EXCEPTION as exc:
            # A bare group: its help was printed when the error was built (rich mode).
            if type(exc).__name__ != "NoArgsIsHelpError":
                print_error(usage_error_line(exc))
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        except typer.Abort:
            print_error("aborted")
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


class DefaultCommandGroup(TyperGroup):
    """A group that runs :attr:`default_command` when its first argument names none of its
    commands: ``augtool coannotate pool.jsonl ...`` is ``augtool coannotate run pool.jsonl ...``
    (``--help`` alone still shows the group's help)."""

    default_command: str = ""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if (
            self.default_command
            and args
            and args[0] not in self.commands
            and args[0] not in ctx.help_option_names
        ):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)
