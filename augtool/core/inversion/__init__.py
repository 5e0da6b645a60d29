"""Embedding-to-text inversion: the adaptor + frozen-LM soft-prompt inverter (invmix)."""

from __future__ import annotations
