"""TopEx's cluster scores and the choice of the cluster to augment (paper §2.3).

Every score is higher-is-better by default, and the cluster with the highest one is
chosen. With ``C`` a cluster of the normalised output space ``Y`` (``|Y|`` points):

- ``density``: ``|C| / max(diam(C))``, ``diam`` the cluster's extent ``max - min``
  along each dimension (variant ``euclidean``: the largest distance between two points);
- ``pairwise``: ``sum_{j in C, k not in C} ||C_j - Y_k|| / (|Y| - |C|)`` (variant
  ``pairs``: divided by ``|C| (|Y| - |C|)``, the mean over the pairs);
- ``geomedian``: ``sum_{j not in C} ||g - Y_j|| / (|Y| - |C|)``, ``g`` the cluster's
  geometric median (variant ``inside``: the mean distance of the cluster's own points
  to ``g``, lower-is-better);
- ``ctc``: ``sum_j CTC_preservation(name, text_j) / |C|``;
- ``cosine``: ``sum_{j != k} cos(v_j, v_k) / |C|`` over the count vectors of the
  cluster's texts (variant ``name``: the mean cosine between the name and each text);
- ``weighted``: ``sum_method w_method * s_method`` over the raw scores, weights 0.68
  cosine, 0.65 pairwise, 0.41 density (normalisation ``max``: each score divided by its
  largest value over the clusters first).

:func:`geometric_measures` and the text scores give the *measures* of a cluster (every
variant's ingredients); :func:`scores_from` turns them into the five raw scores under
:class:`Variants`, so a saved exploration can be rescored under any variant without a
model. See docs/topex.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from augtool.core.clustering.geometry import (
    geometric_median,
    max_diameter,
    max_extent,
    mean_distance_to,
    outside_distance_sum,
)

RAW_SCORES = ("density", "pairwise", "geomedian", "ctc", "cosine")
SCORES = (*RAW_SCORES, "weighted")
SCORE_TITLES = {
    "density": "density",
    "pairwise": "average pairwise distance",
    "geomedian": "average geometric-median distance",
    "ctc": "CTC preservation",
    "cosine": "cosine similarity",
    "weighted": "weighted score",
}
#: The variants of each score; the first is the paper's equation.
DENSITY_DIAMETERS = ("extent", "euclidean")
PAIRWISE_NORMS = ("outside", "pairs")
GEOMEDIAN_TO = ("outside", "inside")
COSINE_AMONG = ("texts", "name")
WEIGHTED_NORMALISE = ("none", "max")
#: What a cluster is measured by (stored per cluster by explore): sizes, both diameters,
#: the pairwise sum, the median's mean distance to the outside and to its own points,
#: CTC, and both cosines.
MEASURES = (
    "size",
    "outside",
    "extent",
    "diameter",
    "pairwise_sum",
    "median_outside",
    "median_inside",
    "ctc",
    "cosine_texts",
    "cosine_name",
)
#: Diameters below this count as this (a cluster of identical points is very dense, not
#: infinitely so).
MIN_DIAMETER = 1e-6


@dataclass(frozen=True)
class Weights:
    """Weights of the weighted score: the paper's 0.68 / 0.65 / 0.41 for cosine
    similarity / average pairwise distance / density; the other two scores are
    weightable ("any or all of our proposed methods") and weigh 0 by default."""

    cosine: float = 0.68
    pairwise: float = 0.65
    density: float = 0.41
    geomedian: float = 0.0
    ctc: float = 0.0

    def items(self) -> list[tuple[str, float]]:
        return list(asdict(self).items())

    def used(self) -> list[tuple[str, float]]:
        """The scores with a non-zero weight, largest weight first."""
        return sorted(((k, w) for k, w in self.items() if w != 0), key=lambda kw: -abs(kw[1]))


@dataclass(frozen=True)
class Variants:
    """Which reading of each score to compute; the defaults are the paper's equations."""

    density: str = "extent"
    pairwise: str = "outside"
    geomedian: str = "outside"
    cosine: str = "texts"
    normalise: str = "none"

    def __post_init__(self) -> None:
        for name, known in (
            ("density", DENSITY_DIAMETERS),
            ("pairwise", PAIRWISE_NORMS),
            ("geomedian", GEOMEDIAN_TO),
            ("cosine", COSINE_AMONG),
            ("normalise", WEIGHTED_NORMALISE),
        ):
            if getattr(self, name) not in known:
                raise ValueError(f"unknown {name} variant {getattr(self, name)!r}")

    def lower_is_better(self, method: str) -> bool:
        """True for the one score where smaller marks the better cluster (``geomedian``
        measured to the cluster's own points)."""
        return method == "geomedian" and self.geomedian == "inside"

    def describe(self) -> dict[str, str]:
        return asdict(self)


def geometric_measures(
    space: np.ndarray,
    members: np.ndarray,
    *,
    max_outside: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """The geometric measures of the cluster whose point indices are ``members``.

    ``max_outside`` caps each side of the pairwise sum with a seeded sample (the sum is
    then an estimate of the full one, see :func:`outside_distance_sum`); by default
    every (inside, outside) pair is summed as the paper's equation does.
    """
    space = np.asarray(space, dtype=np.float64)
    inside_mask = np.zeros(len(space), dtype=bool)
    inside_mask[np.asarray(members, dtype=np.int64)] = True
    inside, outside = space[inside_mask], space[~inside_mask]
    median = geometric_median(inside)
    return {
        "size": float(len(inside)),
        "outside": float(len(outside)),
        "extent": max_extent(inside),
        "diameter": max_diameter(inside),
        "pairwise_sum": outside_distance_sum(inside, outside, max_points=max_outside, seed=seed),
        "median_outside": mean_distance_to(outside, median),
        "median_inside": mean_distance_to(inside, median),
    }


def scores_from(measures: Mapping[str, float], variants: Variants = Variants()) -> dict[str, float]:
    """The five raw scores of one cluster from its measures, under ``variants``."""
    size, outside = float(measures["size"]), float(measures["outside"])
    diameter = measures["extent"] if variants.density == "extent" else measures["diameter"]
    if variants.pairwise == "outside":
        pairs = outside
    else:
        pairs = size * outside
    return {
        "density": size / max(float(diameter), MIN_DIAMETER),
        "pairwise": float(measures["pairwise_sum"]) / pairs if pairs > 0 else 0.0,
        "geomedian": float(
            measures["median_outside" if variants.geomedian == "outside" else "median_inside"]
        ),
        "ctc": float(measures["ctc"]),
        "cosine": float(measures["cosine_texts" if variants.cosine == "texts" else "cosine_name"]),
    }


def scaled(raw: Mapping[int, Mapping[str, float]], score: str) -> dict[int, float]:
    """``score`` of every cluster divided by its largest value (0 when that is not
    positive)."""
    values = {cluster: float(scores[score]) for cluster, scores in raw.items()}
    top = max(values.values(), default=0.0)
    return {cluster: (value / top if top > 0 else 0.0) for cluster, value in values.items()}


def weighted_scores(
    raw: Mapping[int, Mapping[str, float]],
    weights: Weights = Weights(),
    normalise: str = "none",
) -> dict[int, float]:
    """The weighted score of every cluster: ``sum w * s`` over the raw scores (the
    paper's), or over each score divided by its maximum (``normalise="max"``)."""
    if normalise not in WEIGHTED_NORMALISE:
        raise ValueError(f"unknown normalisation {normalise!r}")
    total = dict.fromkeys(raw, 0.0)
    for score, weight in weights.items():
        if weight == 0:
            continue
        if normalise == "max":
            values = scaled(raw, score)
        else:
            values = {cluster: float(scores[score]) for cluster, scores in raw.items()}
        for cluster, value in values.items():
            total[cluster] += weight * value
    return total


def with_weighted(
    raw: Mapping[int, Mapping[str, float]],
    weights: Weights = Weights(),
    normalise: str = "none",
) -> dict[int, dict[str, float]]:
    """The raw scores with ``weighted`` added."""
    weighted = weighted_scores(raw, weights, normalise)
    return {cluster: {**raw[cluster], "weighted": weighted[cluster]} for cluster in raw}


@dataclass
class Choice:
    """The chosen cluster, the score that chose it and why, in words."""

    cluster: int
    method: str
    value: float
    reason: str


def rank_clusters(
    scores: Mapping[int, Mapping[str, float]], method: str, variants: Variants = Variants()
) -> list[int]:
    """Cluster ids, best first by ``method`` (ties broken by the smaller id)."""
    if method not in SCORES:
        raise ValueError(f"unknown score {method!r} (known: {', '.join(SCORES)})")
    sign = 1.0 if variants.lower_is_better(method) else -1.0
    return sorted(scores, key=lambda c: (sign * float(scores[c][method]), c))


def _ratio(value: float, mean: float) -> float:
    return value / mean if mean > 0 else 1.0


def choose_cluster(
    scores: Mapping[int, Mapping[str, float]],
    method: str,
    weights: Weights = Weights(),
    variants: Variants = Variants(),
) -> Choice | None:
    """The best cluster by ``method`` and a reason in the paper's words (App. A: "the
    cosine similarity ... is 2.17-times greater than the mean of all found clusters.
    The minimum is 0.57-times the mean"); None when there are no clusters."""
    if not scores:
        return None
    best = rank_clusters(scores, method, variants)[0]
    value = float(scores[best][method])
    if len(scores) == 1:
        reason = f"the only cluster of mistakes ({SCORE_TITLES[method]} {value:.3f})"
        return Choice(best, method, value, reason)
    lead = f"best {SCORE_TITLES[method]} of {len(scores)} cluster(s) ({value:.3f})"
    if method != "weighted":
        values = [float(s[method]) for s in scores.values()]
        mean = float(np.mean(values))
        extreme = max(values) if variants.lower_is_better(method) else min(values)
        word = "maximum" if variants.lower_is_better(method) else "minimum"
        reason = (
            f"{lead}: {SCORE_TITLES[method]} {_ratio(value, mean):.2f}x the mean of all "
            f"clusters; the {word} is {_ratio(extreme, mean):.2f}x the mean"
        )
        return Choice(best, method, value, reason)
    parts = []
    for name, weight in weights.used():
        mean = float(np.mean([float(s[name]) for s in scores.values()]))
        part = float(scores[best][name])
        term = scaled(scores, name)[best] if variants.normalise == "max" else part
        parts.append(
            f"{SCORE_TITLES[name]} {_ratio(part, mean):.2f}x the mean of all clusters "
            f"(adds {weight:g} x {term:.3f})"
        )
    reason = f"{lead}: {', '.join(parts)}" if parts else f"{lead}: every weight is 0"
    return Choice(best, method, value, reason)
