"""Helpers for testing code that uses augtool (and for augtool's own tests and benchmarks)."""

from __future__ import annotations
