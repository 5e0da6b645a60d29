"""Config dataclass helpers shared by every method: help text, YAML loading, merging.

Each method has one dataclass whose fields carry ``metadata={"help": ...}`` and whose
``__post_init__`` checks values. The CLI builds it from its options; ``--config file.yaml``
supplies the same fields, and options given on the command line win over the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from augtool.errors import AugtoolError, OptionError

C = TypeVar("C")


def field_help(cls: type, name: str) -> str:
    """The ``help`` metadata of a config field (used for CLI option help)."""
    for item in dataclasses.fields(cls):
        if item.name == name:
            return str(item.metadata.get("help", ""))
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def field_default(cls: type, name: str) -> Any:
    """The default value of a config field."""
    for item in dataclasses.fields(cls):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def config_fields(cls: type) -> list[str]:
    """Names of a config dataclass's fields."""
    return [item.name for item in dataclasses.fields(cls)]


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping of config fields; keys may use dashes or underscores."""
    from augtool.core.yamlfile import load_yaml_file

    path = Path(path)
    if not path.is_file():
        raise OptionError("config", f"{path}: file not found")
    data = load_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AugtoolError(f"{path}: expected a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def build_config(
    cls: type[C],
    cli_values: Mapping[str, Any],
    *,
    explicit: set[str] | None = None,
    config_file: str | Path | None = None,
) -> C:
    """Instantiate ``cls`` from defaults < config file < options set on the command line.

    ``explicit`` names the options the user actually typed (the others hold defaults and
    must not override the file). Unknown keys in the file are an error naming them.
    """
    known = set(config_fields(cls))
    values: dict[str, Any] = {}
    if config_file is not None:
        from_file = load_yaml_config(config_file)
        unknown = sorted(set(from_file) - known)
        if unknown:
            raise AugtoolError(
                f"{config_file}: unknown option(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        values.update(from_file)
    for name, value in cli_values.items():
        if name not in known:
            continue
        if explicit is None or name in explicit or name not in values:
            values[name] = value
    hints = typing.get_type_hints(cls)
    values = {
        name: _coerce(_joined_servers(name, value), hints.get(name), name)
        for name, value in values.items()
    }
    _check_servers(values)
    if config_file is not None:
        from augtool.core.option_ranges import check_ranges

        check_ranges(
            {name: values[name] for name in from_file if name in values}, source=str(config_file)
        )
    try:
        return cls(**values)
    except TypeError as exc:
        raise AugtoolError(f"invalid configuration: {exc}") from exc


def is_server_option(name: str) -> bool:
    """Whether a config field holds OpenAI-compatible server URLs (``base_url``,
    ``judge_base_url``...): one, or several comma-separated serving the same model."""
    return name == "base_url" or name.endswith("_base_url")


def _joined_servers(name: str, value: Any) -> Any:
    """A YAML list of server URLs as the option's comma-separated form."""
    if is_server_option(name) and isinstance(value, list):
        return ",".join(str(item) for item in value)
    return value


def _check_servers(values: dict[str, Any]) -> None:
    """Check every server URL (one-line errors naming the option) and write the value in
    canonical form (no spaces or trailing slashes), so equal lists give equal run keys."""
    from augtool.core.generation.servers import normalize_base_url

    for name, value in values.items():
        if is_server_option(name) and isinstance(value, str):
            values[name] = normalize_base_url(value, name)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Convert YAML scalars to the field's type (YAML reads ``2e-5`` as a string)."""
    if value is None or hint is None:
        return value
    options = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    if type(None) in options and value is None:
        return None
    for option in options:
        if option is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
                return value.lower() in ("true", "yes")
        elif option is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
        elif option is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
        elif option is str:
            if isinstance(value, str):
                return value
        else:
            return value
    wanted = " or ".join(
        getattr(option, "__name__", str(option)) for option in options if option is not type(None)
    )
    raise OptionError(name, f"expected {wanted}, got {value!r}")


def check(condition: bool, option: str, message: str) -> None:
    """Raise :class:`OptionError` for ``option`` unless ``condition`` holds."""
    if not condition:
        raise OptionError(option, message)
