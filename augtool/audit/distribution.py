"""Distribution fidelity of an augmented set (issue 20, deliverable 2).

The measures of ``pinr evaluate`` (:func:`augtool.core.distribution.distribution_report`:
FID, KL, TV, sliced Wasserstein, MAUVE, precision/recall/F1), computed once per seed for
the noisy ones and reported with their spread; the augmented rows outside the originals'
k-NN manifold (precision's misses) are the check's flagged rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from augtool.audit.diversity import CheckResult
from augtool.core.distribution import (
    distribution_report,
    histogram_divergences,
    outside_manifold,
    sliced_wasserstein,
)
from augtool.core.metrics import mean_std

#: Measures that depend on a seed (k-means bins, random projections, MAUVE's k-means).
NOISY = ("kl", "tv", "wasserstein")


def _spread(values: list[float]) -> dict[str, Any]:
    mean, std = mean_std(values)
    return {"mean": float(mean), "std": float(std), "values": [float(v) for v in values]}


def distribution_check(
    aug_ids: Sequence[Any],
    aug_emb: Any,
    ref_emb: Any,
    *,
    seeds: int = 3,
    mauve: bool = True,
    k: int = 3,
) -> CheckResult:
    """The ``distribution`` check of one augmented set against the originals.

    ``kl``, ``tv``, ``wasserstein`` and ``mauve`` are ``{mean, std, values}`` over seeds
    ``0..seeds-1``; FID and precision/recall/F1 are deterministic. Rows outside the
    originals' manifold are flagged ``off-manifold``.
    """
    x, y = np.asarray(aug_emb, dtype=np.float64), np.asarray(ref_emb, dtype=np.float64)
    report = distribution_report(
        x, y, seed=0, mauve_seeds=tuple(range(seeds)), skip_mauve=not mauve
    )
    runs = {name: [report[name]] for name in NOISY}
    for seed in range(1, seeds):
        hist = histogram_divergences(x, y, seed=seed)
        runs["kl"].append(hist["kl"])
        runs["tv"].append(hist["tv"])
        runs["wasserstein"].append(sliced_wasserstein(x, y, seed=seed))
    figures: dict[str, Any] = dict(report)
    for name, values in runs.items():
        figures[name] = _spread(values)
    figures["seeds"] = seeds
    outside = outside_manifold(x, y, k=k)
    flagged = [
        {
            "id": aug_ids[i],
            "kind": "off-manifold",
            "reason": f"outside the originals' {k}-NN manifold",
        }
        for i in np.flatnonzero(outside).tolist()
    ]
    return CheckResult(check="distribution", figures=figures, flagged=flagged)
