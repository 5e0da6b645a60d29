"""Shared core: encoders, the task model, and (in later modules) inversion, generation,
clustering, particles and metrics. Importing this package does not import torch."""

from __future__ import annotations
