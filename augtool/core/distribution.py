"""Distribution metrics between a condensed text set and its reference set.

PInR condensation turns N reference texts into M synthetic ones. These metrics compare the
two sets as point clouds in one embedding space: both arguments are precomputed embeddings,
``condensed`` of shape (M, d) and ``reference`` of shape (N, d), usually with M much smaller
than N (and often smaller than d). Every function takes the condensed set first.

All results are plain floats / dicts of floats so they can go straight into JSON reports.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from augtool.errors import AugtoolError

F = TypeVar("F", bound=Callable[..., Any])

#: Added to the covariance diagonals when (Σa Σb)^{1/2} is not finite or clearly complex.
FID_EPS = 1e-6
#: Pseudo-count added to every cluster for the KL divergence (Krichevsky-Trofimov / Jeffreys).
KL_SMOOTHING = 0.5
#: BLAS / OpenMP threads while a metric runs (numpy, scipy, sklearn, faiss inside MAUVE). The
#: problems are small (d x d matrices, thousands of points) and multi-threaded BLAS and
#: k-means spin-wait badly on busy machines (seconds instead of milliseconds for a 384 x 384
#: eigendecomposition), so by default they run single-threaded. ``None`` leaves them alone.
MAX_THREADS: int | None = 1
#: Upper bound on the rows of one block of pairwise distances (rows x columns <= this).
_BLOCK_ELEMENTS = 4_000_000


def _as_pair(a: Any, b: Any, *, min_rows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as finite float64 matrices with the same number of columns."""
    out = []
    for name, x in (("condensed", a), ("reference", b)):
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2:
            raise AugtoolError(
                f"{name} embeddings must be a 2-D array (rows x dimension), got shape {arr.shape}"
            )
        if arr.shape[0] < min_rows:
            raise AugtoolError(
                f"{name} embeddings need at least {min_rows} row(s), got {arr.shape[0]}"
            )
        if arr.shape[1] == 0:
            raise AugtoolError(f"{name} embeddings have dimension 0")
        if not np.isfinite(arr).all():
            raise AugtoolError(f"{name} embeddings contain NaN or infinite values")
        out.append(arr)
    if out[0].shape[1] != out[1].shape[1]:
        raise AugtoolError(
            "condensed and reference embeddings have different dimensions "
            f"({out[0].shape[1]} vs {out[1].shape[1]}); embed both with the same encoder"
        )
    return out[0], out[1]


def _thread_limited(func: F) -> F:
    """Run ``func`` with BLAS and OpenMP thread pools capped at ``MAX_THREADS``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Load scipy's BLAS and sklearn's OpenMP first: threadpoolctl caps only loaded pools.
        import scipy.linalg  # noqa: F401
        import sklearn.cluster  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=MAX_THREADS):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------- FID


@_thread_limited
def fid(a: Any, b: Any) -> float:
    """Fréchet distance between Gaussians fitted to ``a`` and ``b``.

    ``||μa − μb||² + Tr(Σa + Σb − 2 (Σa Σb)^{1/2})`` with sample covariances (ddof=1) and
    ``scipy.linalg.sqrtm``, as in pytorch-fid: tiny imaginary parts of the matrix square root
    (numerical noise) are dropped, and if the root is not finite or clearly complex, which
    happens when the product is singular, ``FID_EPS * I`` is added to both covariances and
    the root recomputed. Rank-deficient covariances (M < d) are fine. Needs 2+ rows per set.
    """
    from scipy import linalg

    x, y = _as_pair(a, b, min_rows=2)
    mu_a, mu_b = x.mean(axis=0), y.mean(axis=0)
    sigma_a = np.atleast_2d(np.cov(x, rowvar=False))
    sigma_b = np.atleast_2d(np.cov(y, rowvar=False))

    def _clearly_complex(m: np.ndarray) -> bool:
        return np.iscomplexobj(m) and not np.allclose(np.diagonal(m).imag, 0.0, atol=1e-3)

    covmean = linalg.sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(covmean).all() or _clearly_complex(covmean):
        offset = np.eye(sigma_a.shape[0]) * FID_EPS
        covmean = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
        if not np.isfinite(covmean).all():
            raise AugtoolError("FID: the covariance square root is not finite")
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean)
    # The true distance is >= 0; tiny negatives are round-off.
    return float(max(value, 0.0))


# ------------------------------------------------------------ histogram divergences


def default_bins(n_condensed: int, n_reference: int) -> int:
    """Default k-means bins: ``round(sqrt(M + N) / 2)`` clipped to [2, 50].

    Grows slowly with the data so that histograms over M + N points stay populated
    (about 2·sqrt(M + N) points per bin) while capping the cost of the clustering.
    """
    return int(max(2, min(50, round(math.sqrt(n_condensed + n_reference) / 2))))


@_thread_limited
def histogram_divergences(
    a: Any, b: Any, *, bins: int | None = None, seed: int = 0
) -> dict[str, float]:
    """KL and total-variation distance between cluster histograms of ``a`` and ``b``.

    The union of both sets is quantised with k-means (``bins`` clusters, default
    :func:`default_bins`, never more than the number of distinct points); ``p`` is the
    histogram of the condensed set ``a`` and ``q`` that of the reference set ``b``.

    * ``kl`` = KL(q || p) = Σ q log(q / p): the reference distribution measured against the
      condensed one, so it grows when the condensed set misses or under-weights regions the
      reference covers (the failure that matters for condensation). The condensed set is
      small and often leaves clusters empty, which would make it infinite, so both count
      vectors get ``KL_SMOOTHING`` (0.5, Krichevsky-Trofimov) added per cluster before
      normalising.
    * ``tv`` = 0.5 Σ |p − q| on the unsmoothed histograms, in [0, 1].

    Also returns ``bins``, the number of clusters used.
    """
    from sklearn.cluster import KMeans

    x, y = _as_pair(a, b)
    if bins is not None and bins < 1:
        raise AugtoolError(f"bins must be at least 1, got {bins}")
    k = bins if bins is not None else default_bins(len(x), len(y))
    union = np.vstack([x, y])
    n_distinct = len(np.unique(union, axis=0))
    k = max(1, min(k, n_distinct))
    if k == 1:
        labels = np.zeros(len(union), dtype=np.int64)
    else:
        km = KMeans(n_clusters=k, n_init=3, random_state=seed)
        labels = km.fit_predict(union)
    counts_p = np.bincount(labels[: len(x)], minlength=k).astype(np.float64)
    counts_q = np.bincount(labels[len(x) :], minlength=k).astype(np.float64)
    p, q = counts_p / counts_p.sum(), counts_q / counts_q.sum()
    ps = (counts_p + KL_SMOOTHING) / (counts_p.sum() + KL_SMOOTHING * k)
    qs = (counts_q + KL_SMOOTHING) / (counts_q.sum() + KL_SMOOTHING * k)
    kl = float(np.sum(qs * np.log(qs / ps)))
    tv = float(0.5 * np.abs(p - q).sum())
    return {"kl": max(kl, 0.0), "tv": tv, "bins": int(k)}


# ------------------------------------------------------------ sliced Wasserstein


@_thread_limited
def sliced_wasserstein(a: Any, b: Any, *, projections: int = 128, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance: the mean 1-D W1 over random unit directions.

    Both sets are projected onto ``projections`` directions drawn uniformly from the unit
    sphere (normalised Gaussians, ``numpy.random.default_rng(seed)``) and
    ``scipy.stats.wasserstein_distance`` (W1 between the two empirical 1-D distributions)
    is averaged over them. Sets of different sizes are fine.
    """
    from scipy.stats import wasserstein_distance

    x, y = _as_pair(a, b)
    if projections < 1:
        raise AugtoolError(f"projections must be at least 1, got {projections}")
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((projections, x.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    px, py = x @ dirs.T, y @ dirs.T
    total = sum(wasserstein_distance(px[:, j], py[:, j]) for j in range(projections))
    return float(total / projections)


# ------------------------------------------------------------ precision / recall


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _block_rows(n_cols: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def _sq_dists(x: np.ndarray, y: np.ndarray, xn: np.ndarray, yn: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of x and y (BLAS, clipped at 0)."""
    d2 = xn[:, None] + yn[None, :] - 2.0 * (x @ y.T)
    np.maximum(d2, 0.0, out=d2)
    return d2


def _knn_sq_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row (k clamped)."""
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(n)
    xn = _sq_norms(x)
    radii = np.empty(n)
    step = _block_rows(n)
    for start in range(0, n, step):
        stop = min(n, start + step)
        d2 = _sq_dists(x[start:stop], x, xn[start:stop], xn)
        # Column k of the sorted row: index 0 is the point itself (distance 0).
        d2[np.arange(stop - start), np.arange(start, stop)] = 0.0
        radii[start:stop] = np.partition(d2, k, axis=1)[:, k]
    return radii


def _inside_manifold(queries: np.ndarray, support: np.ndarray, sq_radii: np.ndarray) -> np.ndarray:
    """For each query, whether it lies within the k-NN ball of at least one support point."""
    qn, sn = _sq_norms(queries), _sq_norms(support)
    # Round-off of the BLAS expansion, relative to the magnitudes involved.
    tol = 1e-9 * (float(qn.max()) + float(sn.max()) + 1.0)
    inside = np.empty(len(queries), dtype=bool)
    step = _block_rows(len(support))
    for start in range(0, len(queries), step):
        stop = min(len(queries), start + step)
        d2 = _sq_dists(queries[start:stop], support, qn[start:stop], sn)
        inside[start:stop] = (d2 <= sq_radii[None, :] + tol).any(axis=1)
    return inside


@_thread_limited
def outside_manifold(a: Any, b: Any, *, k: int = 3) -> np.ndarray:
    """For each row of ``a``, whether it lies outside ``b``'s k-NN manifold: the rows that
    :func:`precision_recall`'s precision counts as misses (``k`` clamped as there)."""
    x, y = _as_pair(a, b)
    if k < 1:
        raise AugtoolError(f"k must be at least 1, got {k}")
    return ~_inside_manifold(x, y, _knn_sq_radii(y, k))


@_thread_limited
def precision_recall(a: Any, b: Any, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN manifolds.

    A set's manifold is the union of balls around its points, each with the radius to that
    point's k-th nearest neighbour in the same set. ``precision`` is the fraction of
    condensed points (``a``) inside the reference manifold (fidelity); ``recall`` the
    fraction of reference points (``b``) inside the condensed manifold (coverage); ``f1``
    their harmonic mean. ``k`` is clamped to ``len(set) - 1`` per set (a single point gets
    radius 0). Distances are computed in blocks, so N in the thousands is fine.
    """
    x, y = _as_pair(a, b)
    if k < 1:
        raise AugtoolError(f"k must be at least 1, got {k}")
    precision = float(_inside_manifold(x, y, _knn_sq_radii(y, k)).mean())
    recall = float(_inside_manifold(y, x, _knn_sq_radii(x, k)).mean())
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": float(f1)}


# ------------------------------------------------------------ MAUVE


MAUVE_MISSING = "MAUVE needs the mauve-text package: pip install 'augtool[pinr]'"


def mauve_score(
    a: Any, b: Any, *, seeds: Sequence[int] = (0, 1, 2, 3, 4), **kwargs: Any
) -> dict[str, Any]:
    """MAUVE (Pillutla et al., 2021) of the condensed set ``a`` against the reference ``b``.

    Runs ``mauve.compute_mauve(p_features=a, q_features=b, ...)`` on the precomputed
    embeddings once per seed (the seed drives MAUVE's k-means) and returns
    ``{"mean", "std", "values"}`` (std with ddof=1, 0 for one seed). MAUVE l2-normalises,
    reduces with PCA (90% variance) and quantises the union with k-means; by default it uses
    ``num_buckets = max(2, round(min(M, N) / 10))`` (MAUVE's "auto"), so the small
    condensed set still fills its buckets. Extra ``kwargs`` go to ``compute_mauve``.
    """
    from threadpoolctl import threadpool_limits

    from augtool.core.metrics import mean_std

    try:
        import mauve
    except ImportError as exc:
        raise AugtoolError(MAUVE_MISSING) from exc
    x, y = _as_pair(a, b)
    if not seeds:
        raise AugtoolError("mauve_score needs at least one seed")
    options: dict[str, Any] = {"num_buckets": "auto", "verbose": False}
    options.update(kwargs)
    values = []
    # MAX_THREADS must cover faiss's OpenMP runtime, which is loaded by `import mauve` above.
    with threadpool_limits(limits=MAX_THREADS):
        for seed in seeds:
            out = mauve.compute_mauve(p_features=x, q_features=y, seed=int(seed), **options)
            values.append(float(out.mauve))
    mean, std = mean_std(values)
    return {"mean": float(mean), "std": float(std), "values": values}


# ------------------------------------------------------------ report


@_thread_limited
def distribution_report(
    condensed: Any,
    reference: Any,
    *,
    seed: int = 0,
    mauve_seeds: Sequence[int] = (0, 1, 2, 3, 4),
    skip_mauve: bool = False,
) -> dict[str, Any]:
    """All distribution metrics of ``condensed`` (M, d) against ``reference`` (N, d).

    Keys: fid, kl, tv, wasserstein (sliced W1), mauve ({mean, std, values}, or None with
    ``skip_mauve``), precision, recall, f1, n_condensed, n_reference, dimension. ``seed``
    drives the k-means histograms and the random projections.
    """
    x, y = _as_pair(condensed, reference, min_rows=2)
    hist = histogram_divergences(x, y, seed=seed)
    pr = precision_recall(x, y)
    return {
        "fid": fid(x, y),
        "kl": hist["kl"],
        "tv": hist["tv"],
        "wasserstein": sliced_wasserstein(x, y, seed=seed),
        "mauve": None if skip_mauve else mauve_score(x, y, seeds=mauve_seeds),
        "precision": pr["precision"],
        "recall": pr["recall"],
        "f1": pr["f1"],
        "n_condensed": int(x.shape[0]),
        "n_reference": int(y.shape[0]),
        "dimension": int(x.shape[1]),
    }
