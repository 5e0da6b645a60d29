"""Reproducibility: one call seeds every generator augtool uses."""

from __future__ import annotations

import os
import random


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch and ask torch for deterministic kernels."""
    import numpy as np
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
