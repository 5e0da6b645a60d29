"""A Gaussian mixture fitted to real embeddings, exposing its analytic score for SVGD.

PInR moves synthetic particles along the score ``grad_x log p(x)`` of a density fitted to
the real embeddings. A Gaussian mixture has that score in closed form, so each SVGD step
costs ``O(M * K * d)`` (``M`` particles, ``K`` components, ``d`` dimensions) whatever the
number of real embeddings, and no autograd graph is needed.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from augtool.core.progress import SILENT, Reporter
from augtool.errors import AugtoolError, OptionError

#: Covariance structures a :class:`GaussianMixtureScore` (and :func:`fit_gmm`) supports.
COVARIANCES = ("diag", "spherical", "full")

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixtureScore:
    """Weights, means and covariances of a Gaussian mixture, with its log-density and score.

    Parameters are kept as float32 tensors (covariances: ``(K, d)`` for "diag", ``(K,)`` for
    "spherical", ``(K, d, d)`` for "full"). :meth:`score` and :meth:`log_prob` compute in the
    dtype and on the device of their input, so float64 inputs get float64 precision.
    """

    def __init__(
        self,
        weights: np.ndarray | torch.Tensor,
        means: np.ndarray | torch.Tensor,
        covariances: np.ndarray | torch.Tensor,
        covariance: str = "diag",
        *,
        fallback: str | None = None,
    ) -> None:
        if covariance not in COVARIANCES:
            raise OptionError(
                "covariance",
                f"unknown covariance {covariance!r}; use one of {', '.join(COVARIANCES)}",
            )
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float32)).reshape(-1)
        self.means = torch.as_tensor(np.asarray(means, dtype=np.float32))
        self.covariances = torch.as_tensor(np.asarray(covariances, dtype=np.float32))
        self.covariance = covariance
        self.fallback = fallback
        k = self.weights.shape[0]
        if self.means.ndim != 2 or self.means.shape[0] != k or k == 0:
            raise AugtoolError(
                f"GMM means must have shape (components, dimension) = ({k}, d), "
                f"got {tuple(self.means.shape)}"
            )
        d = self.means.shape[1]
        expected = {"diag": (k, d), "spherical": (k,), "full": (k, d, d)}[covariance]
        if tuple(self.covariances.shape) != expected:
            raise AugtoolError(
                f"{covariance} GMM covariances must have shape {expected}, "
                f"got {tuple(self.covariances.shape)}"
            )
        if not bool((self.weights > 0).all()):
            raise AugtoolError("GMM weights must be positive")
        self.weights = self.weights / self.weights.sum()
        if covariance == "full":
            cov64 = self.covariances.double()
            try:
                chol = torch.linalg.cholesky(cov64)
            except RuntimeError as exc:
                raise AugtoolError("GMM covariances must be positive definite") from exc
            eye = torch.eye(d, dtype=torch.float64).expand(k, d, d)
            # Precision P = L^-T L^-1; store U = L^-T so that P = U U^T and |U^T (x - mu)|^2
            # is the Mahalanobis distance.
            inv_chol = torch.linalg.solve_triangular(chol, eye, upper=False)
            self._prec_chol = inv_chol.transpose(-1, -2).float()
            log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        else:
            if not bool((self.covariances > 0).all()):
                raise AugtoolError("GMM variances must be positive")
            variances = self.covariances.double()
            log_det = variances.log().sum(-1) if covariance == "diag" else d * variances.log()
        # log w_k - (log|Sigma_k| + d log 2 pi) / 2: the part of log N that does not depend on x.
        self._log_norm = (self.weights.double().log() - 0.5 * (log_det + d * _LOG_2PI)).float()
        self._cache: dict[tuple[torch.dtype, torch.device], dict[str, torch.Tensor]] = {}

    @property
    def components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.means.shape[1])

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: components, covariance type, dimension, fallback (or None)."""
        return {
            "components": self.components,
            "covariance": self.covariance,
            "dimension": self.dimension,
            "fallback": self.fallback,
        }

    def _params(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Parameters (and precomputed precision terms) in ``x``'s dtype and device."""
        key = (x.dtype, x.device)
        if key not in self._cache:
            to = {"dtype": x.dtype, "device": x.device}
            means = self.means.to(**to)
            params = {"means": means, "log_norm": self._log_norm.to(**to)}
            if self.covariance == "full":
                params["prec_chol"] = self._prec_chol.to(**to)
            else:
                precision = 1.0 / self.covariances.double()
                if self.covariance == "spherical":
                    precision = precision[:, None].expand(-1, self.dimension)
                params["precision"] = precision.to(**to)  # (K, d)
                params["mean_precision"] = (self.means.double() * precision).to(**to)  # (K, d)
                params["mean_maha"] = (self.means.double() ** 2 * precision).sum(-1).to(**to)
            self._cache[key] = params
        return self._cache[key]

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dimension:
            raise AugtoolError(
                f"points must have shape (M, {self.dimension}), got {tuple(x.shape)}"
            )
        return x if x.is_floating_point() else x.float()

    def _joint(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``log w_k + log N(x | k)`` as (M, K), plus the whitened residuals for "full"."""
        p = self._params(x)
        if self.covariance == "full":
            # y[m, k] = U_k^T (x_m - mu_k): (M, K, d); Mahalanobis = |y|^2.
            y = torch.einsum("md,kde->mke", x, p["prec_chol"]) - torch.einsum(
                "kd,kde->ke", p["means"], p["prec_chol"]
            )
            maha = (y * y).sum(-1)
            return p["log_norm"] - 0.5 * maha, y
        # sum_d (x - mu)^2 / var expanded into matrix products: O(M K d), no (M, K, d) tensor.
        maha = (x * x) @ p["precision"].T - 2.0 * x @ p["mean_precision"].T + p["mean_maha"]
        return p["log_norm"] - 0.5 * maha.clamp_min(0.0), None

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` for each row of ``x`` (M, d), via log-sum-exp over components."""
        x = self._check(x)
        joint, _ = self._joint(x)
        return torch.logsumexp(joint, dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities ``p(k | x)`` (M, K), computed stably."""
        x = self._check(x)
        joint, _ = self._joint(x)
        return torch.softmax(joint, dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Analytic ``grad_x log p(x)`` (M, d): ``sum_k r_k(x) Sigma_k^-1 (mu_k - x)``.

        Responsibilities ``r_k`` are a softmax of the per-component joint log-densities, so
        points far from every component do not underflow to a zero density.
        """
        x = self._check(x)
        joint, y = self._joint(x)
        resp = torch.softmax(joint, dim=1)  # (M, K)
        p = self._params(x)
        if self.covariance == "full":
            # Sigma^-1 (x - mu) = U U^T (x - mu) = U y.
            weighted = torch.einsum("mk,mke->mke", resp, y)
            return -torch.einsum("mke,kde->md", weighted, p["prec_chol"])
        return resp @ p["mean_precision"] - x * (resp @ p["precision"])

    def sample(self, m: int, *, seed: int = 0) -> torch.Tensor:
        """``m`` float32 draws (m, d) from the mixture: starting particles that copy no real
        embedding yet cover every component, unlike noise around the overall mean."""
        if isinstance(m, bool) or int(m) != m or m < 1:
            raise OptionError("m", f"must be a positive integer, got {m!r}")
        gen = torch.Generator().manual_seed(seed)
        which = torch.multinomial(self.weights.double(), int(m), replacement=True, generator=gen)
        z = torch.randn(int(m), self.dimension, generator=gen, dtype=torch.float64)
        means = self.means.double()[which]
        if self.covariance == "full":
            # Cov = U^-T U^-1, so U^-T z has covariance Cov; U^T is lower triangular.
            upper_t = self._prec_chol.double()[which].transpose(-1, -2)
            noise = torch.linalg.solve_triangular(upper_t, z[:, :, None], upper=False)[..., 0]
        elif self.covariance == "diag":
            noise = z * self.covariances.double()[which].sqrt()
        else:
            noise = z * self.covariances.double()[which].sqrt()[:, None]
        return (means + noise).float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(x)

    def __repr__(self) -> str:
        extra = f", fallback={self.fallback!r}" if self.fallback else ""
        return (
            f"GaussianMixtureScore(components={self.components}, covariance={self.covariance!r}, "
            f"dimension={self.dimension}{extra})"
        )


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _isotropic(embeddings: np.ndarray, reg: float, reason: str) -> GaussianMixtureScore:
    """One spherical Gaussian at the mean with the data's average per-dimension variance."""
    mean = embeddings.mean(axis=0, keepdims=True)
    variance = float(embeddings.var(axis=0).mean()) + reg
    if variance <= 0:
        variance = 1e-6
    return GaussianMixtureScore(
        np.ones(1), mean, np.array([variance]), "spherical", fallback=reason
    )


def _try_fit(
    embeddings: np.ndarray, components: int, covariance: str, seed: int, reg: float
) -> tuple[Any | None, str | None]:
    """A fitted sklearn GaussianMixture, or None and why it failed."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    model = GaussianMixture(
        n_components=components,
        covariance_type=covariance,
        reg_covar=reg,
        max_iter=200,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            model.fit(embeddings)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return None, f"fit failed: {first_line or type(exc).__name__}"
    if not model.converged_:
        return None, f"EM did not converge in {model.max_iter} iterations"
    return model, None


def fit_gmm(
    embeddings: np.ndarray,
    components: int,
    *,
    covariance: str = "diag",
    seed: int = 0,
    reg: float = 1e-4,
    reporter: Reporter = SILENT,
) -> GaussianMixtureScore:
    """Fit a Gaussian mixture to ``embeddings`` (N, d) and return its analytic score.

    ``reg`` is added to every variance (sklearn's ``reg_covar``) so that components stay
    proper on low-rank data. When the data cannot support ``components`` components (fewer
    than two points per component, a failed or non-converged EM) fewer are used, halving
    down to one; with fewer than two points (or, for "full", no more points than
    dimensions) the result is one isotropic Gaussian at the mean. Every such fallback is
    logged through ``reporter`` and recorded in :meth:`GaussianMixtureScore.describe`.
    """
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)):
        raise OptionError("components", f"must be an integer, got {components!r}")
    if components < 1:
        raise OptionError("components", f"must be at least 1, got {components}")
    if covariance not in COVARIANCES:
        raise OptionError(
            "covariance", f"unknown covariance {covariance!r}; use one of {', '.join(COVARIANCES)}"
        )
    if not reg >= 0:
        raise OptionError("reg", f"must be non-negative, got {reg}")
    data = np.asarray(embeddings, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise AugtoolError(f"embeddings must be a non-empty (N, d) array, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise AugtoolError("embeddings contain NaN or infinite values")
    n, d = data.shape
    components = int(components)

    def fallback_to_isotropic(why: str) -> GaussianMixtureScore:
        reason = (
            f"GMM with {_count(components, 'component')} could not be fitted on "
            f"{_count(n, 'point')} ({why}); "
            "using one isotropic Gaussian at the mean"
        )
        reporter.log(reason)
        return _isotropic(data, reg, reason)

    if n < 2:
        return fallback_to_isotropic("too few points")
    if covariance == "full" and n <= d:
        return fallback_to_isotropic(f"full covariance needs more points than the {d} dimensions")

    k = min(components, n // 2)
    reasons: list[str] = []
    if k < components:
        reasons.append(f"fewer than 2 points per component for {components}")
    while True:
        model, why = _try_fit(data, k, covariance, seed, reg)
        if model is not None:
            break
        reasons.append(f"{_count(k, 'component')}: {why}")
        if k == 1:
            return fallback_to_isotropic("; ".join(reasons))
        k = max(1, k // 2)
    fallback = None
    if k < components:
        fallback = (
            f"GMM with {_count(components, 'component')} could not be fitted on "
            f"{_count(n, 'point')}; using {k} "
            f"({'; '.join(reasons)})"
        )
        reporter.log(fallback)
    else:
        reporter.log(
            f"fitted a {covariance} GMM with {_count(k, 'component')} on {n} points (d={d})"
        )
    return GaussianMixtureScore(
        model.weights_, model.means_, model.covariances_, covariance, fallback=fallback
    )
