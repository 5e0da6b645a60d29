"""Particle condensation for PInR: a Gaussian-mixture score and SVGD over embeddings.

- :mod:`~augtool.core.particles.gmm`: :func:`fit_gmm` fits a Gaussian mixture to the real
  embeddings (falling back to fewer components, or one isotropic Gaussian, on too little
  data) and returns a :class:`GaussianMixtureScore` whose analytic ``score`` is
  ``grad_x log p(x)``.
- :mod:`~augtool.core.particles.svgd`: :func:`init_particles` picks M starting particles
  (real embeddings, or privacy-preserving noise) and :func:`svgd` moves them along the
  Stein variational gradient of that score, returning an :class:`SVGDResult`.

A step costs ``O(M * (M + K) * d)`` for M particles and K components, independent of the
number N of real embeddings, which only the GMM fit sees. Decoding particles to text lives
elsewhere.
"""

from augtool.core.particles.gmm import COVARIANCES, GaussianMixtureScore, fit_gmm
from augtool.core.particles.svgd import INIT_MODES, OPTIMIZERS, SVGDResult, init_particles, svgd

__all__ = [
    "COVARIANCES",
    "INIT_MODES",
    "OPTIMIZERS",
    "GaussianMixtureScore",
    "SVGDResult",
    "fit_gmm",
    "init_particles",
    "svgd",
]
