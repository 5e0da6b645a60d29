"""The augmentation and condensation methods: plain Python, one config dataclass each."""

from __future__ import annotations
