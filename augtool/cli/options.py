"""Typer options generated from a config dataclass, so a command's options are its
config fields by construction (help text, defaults and types come from the dataclass)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


def config_options(cls: type) -> Callable[[F], F]:
    """Add one ``--option`` per field of ``cls`` that the command does not declare itself.

    The values reach the command through ``ctx.params`` (build the config with
    :func:`augtool.cli.common.make_config`); they are not passed as arguments.
    """
    hints = typing.get_type_hints(cls)

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        declared = set(signature.parameters)
        added: list[inspect.Parameter] = []
        for item in dataclasses.fields(cls):
            if item.name in declared:
                continue
            hint = hints[item.name]
            help_text = str(item.metadata.get("help", ""))
            flag = "--" + item.name.replace("_", "-")
            if hint is bool:
                option = typer.Option(f"{flag}/--no-{flag[2:]}", help=help_text)
            else:
                option = typer.Option(flag, help=help_text)
            default = item.default if item.default is not dataclasses.MISSING else None
            added.append(
                inspect.Parameter(
                    item.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=default,
                    annotation=Annotated[hint, option],
                )
            )
        names = {parameter.name for parameter in added}

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **{k: v for k, v in kwargs.items() if k not in names})

        resolved = typing.get_type_hints(func, include_extras=True)
        parameters = [
            p.replace(annotation=resolved.get(p.name, p.annotation))
            for p in signature.parameters.values()
        ]
        keyword_only = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in parameters
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        positional = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=positional + keyword_only + added
        )
        wrapper.__annotations__ = {**resolved, **{p.name: p.annotation for p in added}}
        return wrapper  # type: ignore[return-value]

    return decorate
