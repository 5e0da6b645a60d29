"""Clustering a point cloud: OPTICS (TopEx's default) and HDBSCAN, looked up by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from augtool.core.registry import Registry
from augtool.errors import OptionError

#: name -> function(points, **params) -> cluster id per point (-1: noise).
CLUSTERERS: Registry[Callable[..., np.ndarray]] = Registry("clusterer")


@CLUSTERERS.register("optics")
def optics(
    points: np.ndarray,
    *,
    min_samples: int = 5,
    min_cluster_size: int | None = None,
    xi: float = 0.05,
    max_eps: float = float("inf"),
    **_: Any,
) -> np.ndarray:
    """scikit-learn's OPTICS with xi-steep cluster extraction."""
    from sklearn.cluster import OPTICS

    model = OPTICS(
        min_samples=min_samples,
        min_cluster_size=min_cluster_size,
        xi=xi,
        max_eps=max_eps,
        n_jobs=None,
    )
    return model.fit_predict(points)


@CLUSTERERS.register("hdbscan")
def hdbscan(
    points: np.ndarray,
    *,
    min_samples: int | None = 5,
    min_cluster_size: int | None = None,
    cluster_selection_epsilon: float = 0.0,
    **_: Any,
) -> np.ndarray:
    """The ``hdbscan`` package (McInnes et al.), excess-of-mass cluster selection."""
    import hdbscan as hdbscan_lib

    model = hdbscan_lib.HDBSCAN(
        min_cluster_size=min_cluster_size or 5,
        min_samples=min_samples,
        cluster_selection_epsilon=cluster_selection_epsilon,
        core_dist_n_jobs=1,
    )
    return np.asarray(model.fit_predict(points), dtype=np.int64)


def cluster_points(points: np.ndarray, method: str = "optics", **params: Any) -> np.ndarray:
    """Cluster ids for ``points`` (-1 for noise) by the clusterer registered as ``method``.

    Fails with an option error when there are fewer points than the clusterer's
    minimum sizes allow, instead of the libraries' own exceptions.
    """
    clusterer = CLUSTERERS.get(method)
    count = len(points)
    for option in ("min_samples", "min_cluster_size"):
        value = params.get(option)
        if value is not None and value > count:
            raise OptionError(option, f"is {value} but there are only {count} points to cluster")
    if count < 2:
        raise OptionError("min_samples", f"clustering needs at least 2 points, got {count}")
    return np.asarray(clusterer(np.asarray(points, dtype=np.float64), **params), dtype=np.int64)
