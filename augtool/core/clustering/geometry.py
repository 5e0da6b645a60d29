"""Distances inside and around a cluster: extents, diameters, sums of distances to the
points outside, and the geometric median (TopEx's geometric scores, see
:mod:`augtool.core.clustering.scores`)."""

from __future__ import annotations

import numpy as np

#: Rows per block when a distance matrix would not fit in memory at once.
BLOCK = 2048


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and ``b`` (clipped at 0 before sqrt)."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def max_extent(points: np.ndarray) -> float:
    """The largest diameter of the set *along one dimension*: ``max_d (max - min)`` of
    coordinate ``d`` (TopEx's density: "the largest diameter along all dimensions");
    0 for one point or none."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return 0.0
    return float((points.max(axis=0) - points.min(axis=0)).max(initial=0.0))


def max_diameter(points: np.ndarray) -> float:
    """The largest Euclidean distance between two points of the set (0 for one point),
    computed in blocks so large clusters never build a full n x n matrix."""
    points = np.asarray(points, dtype=np.float64)
    best = 0.0
    for start in range(0, len(points), BLOCK):
        block = points[start : start + BLOCK]
        best = max(best, float(_pairwise(block, points[start:]).max(initial=0.0)))
    return best


def outside_distance_sum(
    inside: np.ndarray,
    outside: np.ndarray,
    *,
    max_points: int | None = None,
    seed: int = 0,
) -> float:
    """``sum_{j in inside, k in outside} ||inside_j - outside_k||``, the numerator of
    TopEx's average pairwise distance, computed exactly in blocks.

    ``max_points`` caps each side with a seeded uniform sample; the sample's mean
    distance is then scaled by ``len(inside) * len(outside)``, an unbiased estimate of
    the full sum (not the sample's own, smaller, sum).
    """
    inside = np.asarray(inside, dtype=np.float64)
    outside = np.asarray(outside, dtype=np.float64)
    if len(inside) == 0 or len(outside) == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    inside_sample = _subsample(inside, max_points, rng)
    outside_sample = _subsample(outside, max_points, rng)
    total = 0.0
    for start in range(0, len(inside_sample), BLOCK):
        total += float(_pairwise(inside_sample[start : start + BLOCK], outside_sample).sum())
    pairs = len(inside_sample) * len(outside_sample)
    return total * (len(inside) * len(outside) / pairs)


def mean_outside_distance(
    inside: np.ndarray,
    outside: np.ndarray,
    *,
    max_points: int | None = None,
    seed: int = 0,
) -> float:
    """The mean distance over all (inside, outside) pairs: the sum of
    :func:`outside_distance_sum` over ``len(inside) * len(outside)``."""
    pairs = len(inside) * len(outside)
    if pairs == 0:
        return 0.0
    return outside_distance_sum(inside, outside, max_points=max_points, seed=seed) / pairs


def _subsample(points: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or len(points) <= limit:
        return points
    return points[rng.choice(len(points), size=limit, replace=False)]


def geometric_median(points: np.ndarray, *, tol: float = 1e-7, max_iter: int = 500) -> np.ndarray:
    """The point minimising the sum of Euclidean distances to ``points`` (Weiszfeld's
    algorithm, with the Vardi-Zhang step when an iterate lands on a data point).

    The minimiser is unique unless the points are collinear with an even count; TopEx
    cites Cohen et al. (2016) for an algorithm that finds the same point faster in
    theory.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        raise ValueError("the geometric median of an empty set is undefined")
    if len(points) <= 2:
        return points.mean(axis=0)
    current = points.mean(axis=0)
    for _ in range(max_iter):
        distances = np.linalg.norm(points - current, axis=1)
        at_point = distances < 1e-12
        weights = 1.0 / np.where(at_point, 1.0, distances)
        weights[at_point] = 0.0
        if weights.sum() == 0:  # every point sits on the iterate: it is the median
            return current
        weighted_mean = (weights[:, None] * points).sum(0) / weights.sum()
        if at_point.any():
            # Vardi & Zhang (2000): move off a data point only if that lowers the cost.
            pull = (weights[:, None] * (points - current)).sum(0)
            strength = np.linalg.norm(pull)
            share = at_point.sum() / max(strength, 1e-300)
            candidate = max(0.0, 1.0 - share) * weighted_mean + min(1.0, share) * current
        else:
            candidate = weighted_mean
        if np.linalg.norm(candidate - current) <= tol * max(1.0, np.linalg.norm(current)):
            return candidate
        current = candidate
    return current


def mean_distance_to(points: np.ndarray, centre: np.ndarray) -> float:
    """The average Euclidean distance of ``points`` to ``centre`` (0 for no points)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return 0.0
    return float(np.linalg.norm(points - centre, axis=1).mean())
