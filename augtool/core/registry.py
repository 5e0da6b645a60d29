"""Name -> implementation registries for pluggable backends (encoders, LLMs, methods).

Entries may be given as ``"module:attribute"`` strings so that listing or validating
names never imports the heavy module behind them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from augtool.errors import AugtoolError

T = TypeVar("T")


def import_path(path: str) -> Any:
    """The object named by ``"package.module:attribute"``, imported now."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class UnknownNameError(AugtoolError):
    """A backend name that no registry entry matches."""


class Registry(Generic[T]):
    """A small registry with aliases and a clear error listing known names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self, name: str, target: T | str | None = None, *, aliases: tuple[str, ...] = ()
    ) -> Callable[[T], T] | None:
        """Register ``target`` under ``name``; without ``target``, act as a decorator."""

        def add(obj: T | str) -> T | str:
            self._entries[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
            return obj

        if target is not None:
            add(target)
            return None
        return add  # type: ignore[return-value]

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or an alias of it."""
        key = self._aliases.get(name, name)
        if key not in self._entries:
            known = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} {name!r} (known: {known})")
        return key

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._aliases)

    def get(self, name: str) -> T:
        """The implementation registered as ``name``, importing it on first use."""
        key = self.canonical(name)
        entry = self._entries[key]
        if isinstance(entry, str):
            entry = import_path(entry)
            self._entries[key] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        """Registered names (aliases excluded), sorted."""
        return sorted(self._entries)
