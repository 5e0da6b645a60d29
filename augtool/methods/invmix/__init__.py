"""inversedMixup (Kong et al., 2026): Mixup in a task encoder's embedding space, made
readable by inverting the mixed embeddings with a frozen LLM through a trained adaptor."""

from __future__ import annotations
