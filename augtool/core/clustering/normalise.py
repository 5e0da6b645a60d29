"""Min-max normalisation of a classifier's output space."""

from __future__ import annotations

import numpy as np


def minmax_normalise(values: np.ndarray, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Scale every column of ``values`` linearly onto ``[low, high]``.

    A constant column (no spread to scale) maps to the middle of the range, so it adds
    nothing to distances instead of blowing up.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"expected a 2D array, got shape {values.shape}")
    if len(values) == 0:
        return values.copy()
    lo = values.min(axis=0)
    span = values.max(axis=0) - lo
    flat = span <= 1e-12
    scaled = (values - lo) / np.where(flat, 1.0, span)
    scaled[:, flat] = 0.5
    return low + scaled * (high - low)
