"""Distances inside and around a cluster: diameter, outside distance, geometric median."""

from __future__ import annotations

import numpy as np

#: Rows per block when a distance matrix would not fit in memory at once.
BLOCK = 2048


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and ``b`` (clipped at 0 before sqrt)."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def max_diameter(points: np.ndarray) -> float:
    """The largest distance between two points of the set (0 for one point), computed in
    blocks so large clusters never build a full n x n matrix."""
    points = np.asarray(points, dtype=np.float64)
    best = 0.0
    for start in range(0, len(points), BLOCK):
        block = points[start : start + BLOCK]
        best = max(best, float(_pairwise(block, points[start:]).max(initial=0.0)))
    return best


def mean_outside_distance(
    inside: np.ndarray,
    outside: np.ndarray,
    *,
    max_points: int | None = None,
    seed: int = 0,
) -> float:
    """The average distance from the points of a cluster to the points outside it.

    ``max_points`` caps each side with a seeded uniform sample, an unbiased estimate of
    the same mean that keeps the cost linear on large datasets.
    """
    rng = np.random.default_rng(seed)
    inside = _subsample(np.asarray(inside, dtype=np.float64), max_points, rng)
    outside = _subsample(np.asarray(outside, dtype=np.float64), max_points, rng)
    if len(inside) == 0 or len(outside) == 0:
        return 0.0
    total = 0.0
    for start in range(0, len(inside), BLOCK):
        total += float(_pairwise(inside[start : start + BLOCK], outside).sum())
    return total / (len(inside) * len(outside))


def _subsample(points: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or len(points) <= limit:
        return points
    return points[rng.choice(len(points), size=limit, replace=False)]


def geometric_median(points: np.ndarray, *, tol: float = 1e-7, max_iter: int = 500) -> np.ndarray:
    """The point minimising the sum of Euclidean distances to ``points`` (Weiszfeld's
    algorithm, with the Vardi-Zhang step when an iterate lands on a data point)."""
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
    """The average Euclidean distance of ``points`` to ``centre``."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return 0.0
    return float(np.linalg.norm(points - centre, axis=1).mean())
