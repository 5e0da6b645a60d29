"""2D projections of the output space for plots: SparsePCA (TopEx), UMAP or PCA."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from augtool.core.registry import Registry

#: name -> function(points, seed) -> (n, 2) coordinates.
PROJECTIONS: Registry[Callable[[np.ndarray, int], np.ndarray]] = Registry("projection")


@PROJECTIONS.register("sparsepca")
def sparse_pca(points: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import SparsePCA

    return SparsePCA(n_components=2, random_state=seed).fit_transform(points)


@PROJECTIONS.register("pca")
def pca(points: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(points)


@PROJECTIONS.register("umap")
def umap(points: np.ndarray, seed: int) -> np.ndarray:
    from umap import UMAP

    neighbours = max(2, min(15, len(points) - 1))
    model = UMAP(n_components=2, n_neighbors=neighbours, random_state=seed, n_jobs=1)
    return model.fit_transform(points)


def project_2d(points: np.ndarray, method: str = "sparsepca", *, seed: int = 0) -> np.ndarray:
    """2D coordinates of ``points`` (a copy padded with zeros when there is only one
    dimension or fewer than three points, where the projections are undefined)."""
    project = PROJECTIONS.get(method)
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3 or points.shape[1] < 2:
        out = np.zeros((len(points), 2))
        width = min(2, points.shape[1])
        out[:, :width] = points[:, :width]
        return out
    return np.asarray(project(points, seed), dtype=np.float64)
