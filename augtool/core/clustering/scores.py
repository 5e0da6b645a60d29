"""TopEx's cluster scores and the choice of the cluster to augment.

Five raw scores per cluster (see docs/topex.md):

- ``density``: cluster size over its largest internal distance, ``|C| / max diameter``;
- ``pairwise``: the average distance from the cluster's points to the points outside it;
- ``geomedian``: the average distance of the cluster's points to their geometric median
  (lower is tighter);
- ``ctc``: CTC "preservation" between the cluster name and its texts (token-embedding
  alignment, see :mod:`augtool.core.clustering.text_scores`);
- ``cosine``: cosine similarity of count vectors between the name and the texts;

plus ``weighted``: ``0.68 cosine + 0.65 pairwise + 0.41 density`` by default, each score
first divided by its largest value over the candidate clusters (so each lies in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from augtool.core.clustering.geometry import (
    geometric_median,
    max_diameter,
    mean_distance_to,
    mean_outside_distance,
)

RAW_SCORES = ("density", "pairwise", "geomedian", "ctc", "cosine")
SCORES = (*RAW_SCORES, "weighted")
#: Scores where a smaller value marks the better cluster.
LOWER_IS_BETTER = frozenset({"geomedian"})
SCORE_TITLES = {
    "density": "density",
    "pairwise": "pairwise distance",
    "geomedian": "geometric-median distance",
    "ctc": "CTC preservation",
    "cosine": "cosine similarity",
    "weighted": "weighted score",
}
#: Diameters below this count as this (a cluster of identical points is very dense, not
#: infinitely so).
MIN_DIAMETER = 1e-6


@dataclass(frozen=True)
class Weights:
    """Weights of the weighted score (TopEx's defaults)."""

    cosine: float = 0.68
    pairwise: float = 0.65
    density: float = 0.41

    def items(self) -> list[tuple[str, float]]:
        return list(asdict(self).items())


def geometric_scores(
    space: np.ndarray,
    members: np.ndarray,
    *,
    max_outside: int | None = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """``density``, ``pairwise`` and ``geomedian`` of the cluster whose point indices
    are ``members`` in ``space``."""
    space = np.asarray(space, dtype=np.float64)
    inside_mask = np.zeros(len(space), dtype=bool)
    inside_mask[members] = True
    inside = space[inside_mask]
    median = geometric_median(inside)
    return {
        "density": len(inside) / max(max_diameter(inside), MIN_DIAMETER),
        "pairwise": mean_outside_distance(
            inside, space[~inside_mask], max_points=max_outside, seed=seed
        ),
        "geomedian": mean_distance_to(inside, median),
    }


def scaled(raw: Mapping[int, Mapping[str, float]], score: str) -> dict[int, float]:
    """``score`` of every cluster divided by its largest value (0 when all are 0)."""
    values = {cluster: float(scores[score]) for cluster, scores in raw.items()}
    top = max(values.values(), default=0.0)
    return {cluster: (value / top if top > 0 else 0.0) for cluster, value in values.items()}


def weighted_scores(
    raw: Mapping[int, Mapping[str, float]], weights: Weights = Weights()
) -> dict[int, float]:
    """The weighted score of every cluster (scaled scores times their weights)."""
    total = dict.fromkeys(raw, 0.0)
    for score, weight in weights.items():
        for cluster, value in scaled(raw, score).items():
            total[cluster] += weight * value
    return total


def with_weighted(
    raw: Mapping[int, Mapping[str, float]], weights: Weights = Weights()
) -> dict[int, dict[str, float]]:
    """The raw scores with ``weighted`` added."""
    weighted = weighted_scores(raw, weights)
    return {cluster: {**raw[cluster], "weighted": weighted[cluster]} for cluster in raw}


@dataclass
class Choice:
    """The chosen cluster, the score that chose it and why, in words."""

    cluster: int
    method: str
    value: float
    reason: str


def rank_clusters(scores: Mapping[int, Mapping[str, float]], method: str) -> list[int]:
    """Cluster ids, best first by ``method`` (ties broken by the smaller id)."""
    if method not in SCORES:
        raise ValueError(f"unknown score {method!r} (known: {', '.join(SCORES)})")
    sign = 1.0 if method in LOWER_IS_BETTER else -1.0
    return sorted(scores, key=lambda c: (sign * float(scores[c][method]), c))


def choose_cluster(
    scores: Mapping[int, Mapping[str, float]], method: str, weights: Weights = Weights()
) -> Choice | None:
    """The best cluster by ``method`` and a reason like the paper's ("cosine similarity
    2.17x the mean of all clusters"); None when there are no clusters."""
    if not scores:
        return None
    best = rank_clusters(scores, method)[0]
    parts = [method] if method != "weighted" else [name for name, _ in weights.items()]
    ratios = []
    for name in parts:
        mean = float(np.mean([float(s[name]) for s in scores.values()]))
        value = float(scores[best][name])
        ratio = value / mean if mean > 0 else 1.0
        ratios.append((name, ratio))
    if method == "weighted":
        ratios.sort(key=lambda item: -item[1])
    described = ", ".join(
        f"{SCORE_TITLES[name]} {ratio:.2f}x the mean of all clusters" for name, ratio in ratios
    )
    lead = f"best {SCORE_TITLES[method]} of {len(scores)} cluster(s)"
    if method == "weighted":
        lead += f" ({float(scores[best]['weighted']):.3f})"
    return Choice(best, method, float(scores[best][method]), f"{lead}: {described}")
