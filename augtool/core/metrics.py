"""Summary statistics and significance tests for benchmark tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


@dataclass(frozen=True)
class PairedTest:
    """A Wilcoxon signed-rank test of ``a`` against ``b`` over paired observations."""

    n: int
    statistic: float | None
    p_value: float | None
    mean_difference: float

    @property
    def note(self) -> str:
        if self.n == 0:
            return "no paired runs"
        if self.p_value is None:
            return "all differences are zero"
        return ""


def paired_wilcoxon(a: Mapping[object, float], b: Mapping[object, float]) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test on the keys both ``a`` and ``b`` have (seeds).

    Uses scipy (exact distribution for small samples, zero differences dropped as in
    Wilcoxon's method). All-zero differences have no p-value.
    """
    from scipy.stats import wilcoxon

    keys = sorted(set(a) & set(b), key=str)
    x = [a[k] for k in keys]
    y = [b[k] for k in keys]
    if not keys:
        return PairedTest(0, None, None, math.nan)
    diff = sum(xi - yi for xi, yi in zip(x, y, strict=True)) / len(keys)
    if all(xi == yi for xi, yi in zip(x, y, strict=True)):
        return PairedTest(len(keys), None, None, diff)
    result = wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
    return PairedTest(len(keys), float(result.statistic), float(result.pvalue), diff)
