"""Back-translation engines, looked up by name (``marian``, ``apertium``)."""

from __future__ import annotations

from augtool.core.registry import Registry
from augtool.core.translation.base import BackTranslator, Direction

ENGINES: Registry[type[BackTranslator]] = Registry("back-translation engine")
ENGINES.register("marian", "augtool.core.translation.marian:MarianBackTranslator")
ENGINES.register("apertium", "augtool.core.translation.apertium:ApertiumBackTranslator")

__all__ = ["ENGINES", "BackTranslator", "Direction"]
