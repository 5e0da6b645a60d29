"""PInR's particle stage: the Gaussian-mixture score, SVGD and particle initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from augtool.core.particles import (
    GaussianMixtureScore,
    SVGDResult,
    fit_gmm,
    init_particles,
    svgd,
)
from augtool.core.particles.svgd import median_bandwidth, svgd_direction
from augtool.core.progress import Reporter
from augtool.errors import AugtoolError, OptionError


class RecordingReporter(Reporter):
    """Keeps every logged line and every task's total and advances."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.tasks: list[tuple[str, int | None]] = []
        self.advanced = 0

    def task(self, description: str, total: int | None, completed: int = 0):
        self.tasks.append((description, total))

        def advance(n: int) -> None:
            self.advanced += n

        return advance

    def log(self, message: str) -> None:
        self.lines.append(message)


pytestmark = pytest.mark.usefixtures("one_thread")


def random_mixture(covariance: str, d: int = 5, k: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    if covariance == "diag":
        covariances = rng.uniform(0.2, 2.0, (k, d))
    elif covariance == "spherical":
        covariances = rng.uniform(0.2, 2.0, k)
    else:
        a = rng.standard_normal((k, d, d))
        covariances = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d)
    weights = rng.uniform(0.2, 1.0, k)
    means = 2.0 * rng.standard_normal((k, d))
    return GaussianMixtureScore(weights, means, covariances, covariance), rng


# (a) the analytic score --------------------------------------------------------------------


@pytest.mark.parametrize("covariance", ["diag", "spherical", "full"])
def test_score_matches_finite_differences_of_log_prob(covariance: str) -> None:
    gmm, rng = random_mixture(covariance)
    x = torch.tensor(2.0 * rng.standard_normal((20, gmm.dimension)))  # float64
    eps = 1e-5
    numeric = torch.stack(
        [
            (gmm.log_prob(x + eps * e) - gmm.log_prob(x - eps * e)) / (2 * eps)
            for e in torch.eye(gmm.dimension, dtype=torch.float64)
        ],
        dim=1,
    )
    analytic = gmm.score(x)
    assert analytic.shape == x.shape and analytic.dtype == torch.float64
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-6)
    # The float32 path agrees with the float64 one.
    torch.testing.assert_close(gmm.score(x.float()), analytic.float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("covariance", ["diag", "spherical", "full"])
def test_log_prob_matches_sklearn(covariance: str) -> None:
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(-3, 1, (150, 4)), rng.normal(3, 0.5, (150, 4))])
    gmm = fit_gmm(data, 2, covariance=covariance, seed=0)
    from sklearn.mixture import GaussianMixture

    reference = GaussianMixture(2, covariance_type=covariance, reg_covar=1e-4, random_state=0)
    reference.fit(data)
    ours = gmm.log_prob(torch.tensor(data)).numpy()
    np.testing.assert_allclose(ours, reference.score_samples(data), rtol=1e-5, atol=1e-4)
    assert gmm.describe() == {
        "components": 2,
        "covariance": covariance,
        "dimension": 4,
        "fallback": None,
    }


def test_score_is_stable_far_from_every_component() -> None:
    # Every component density underflows to 0 in float32 at this distance; log-sum-exp
    # responsibilities still give the nearest component's pull, (mu - x) / var.
    gmm = GaussianMixtureScore(
        [0.5, 0.5], [[0.0, 0.0], [10.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]], "diag"
    )
    x = torch.tensor([[1000.0, 0.0], [-1000.0, 5.0]])
    assert bool(torch.isfinite(gmm.log_prob(x)).all())
    torch.testing.assert_close(gmm.score(x), torch.tensor([[-990.0, 0.0], [1000.0, -5.0]]))


def test_samples_follow_the_mixture() -> None:
    gmm = GaussianMixtureScore([0.25, 0.75], [[-4.0, 0.0], [4.0, 1.0]], [0.25, 1.0], "spherical")
    draws = gmm.sample(20000, seed=3)
    assert draws.shape == (20000, 2) and draws.dtype == torch.float32
    torch.testing.assert_close(draws.mean(0), torch.tensor([2.0, 0.75]), atol=0.06, rtol=0)
    assert float((draws[:, 0] < 0).float().mean()) == pytest.approx(0.25, abs=0.02)
    assert torch.equal(gmm.sample(5, seed=3), gmm.sample(5, seed=3))
    assert not torch.equal(gmm.sample(5, seed=3), gmm.sample(5, seed=4))


def test_mixture_rejects_bad_parameters() -> None:
    with pytest.raises(OptionError, match="--covariance"):
        GaussianMixtureScore([1.0], [[0.0]], [1.0], "tied")
    with pytest.raises(AugtoolError, match="shape"):
        GaussianMixtureScore([1.0], [[0.0, 0.0]], [[1.0]], "diag")
    with pytest.raises(AugtoolError, match="positive definite"):
        GaussianMixtureScore([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]], "full")
    gmm = GaussianMixtureScore([1.0], [[0.0, 0.0]], [1.0], "spherical")
    with pytest.raises(AugtoolError, match=r"\(M, 2\)"):
        gmm.score(torch.zeros(3, 4))


# (b) SVGD covers every mode ----------------------------------------------------------------


def triangle_mixture(separation: float) -> tuple[GaussianMixtureScore, torch.Tensor]:
    """Three unit-variance 2-D Gaussians at the corners of a triangle of side ``separation``."""
    radius = separation / math.sqrt(3)
    angles = torch.tensor([90.0, 210.0, 330.0]) * math.pi / 180
    means = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)
    return GaussianMixtureScore(torch.ones(3) / 3, means, torch.ones(3), "spherical"), means


def test_svgd_from_one_corner_spreads_over_all_three_modes() -> None:
    # Modes 4 std apart: the 2-std discs around them are disjoint. (Much further apart, a
    # median-heuristic kernel cannot push particles over the density valleys and SVGD from
    # a corner collapses onto the nearest mode, a known limit of the method.)
    gmm, means = triangle_mixture(4.0)
    generator = torch.Generator().manual_seed(0)
    corner = means.min(dim=0).values - 3.0
    init = corner + 0.2 * torch.randn(60, 2, generator=generator)
    assert bool((torch.cdist(init, means).min(dim=1).values > 2.5).all())  # no mode is near

    result = svgd(init, gmm.score, iterations=500, step_size=1.0, tol=0)

    assert isinstance(result, SVGDResult) and result.iterations_run == 500
    particles = result.particles
    distances = torch.cdist(particles, means)
    for k in range(3):
        near = particles[distances[:, k] < 2.0]  # within 2 std of mode k
        assert len(near) >= 10, f"mode {k} got {len(near)} particles"
        assert float(near.std(dim=0).min()) > 0.2  # spread out, not piled on the mean
    pairwise = torch.cdist(particles, particles) + 1e9 * torch.eye(len(particles))
    assert float(pairwise.min()) > 0.01  # the repulsion kept every particle apart


def test_svgd_matches_the_formula_term_by_term() -> None:
    torch.manual_seed(0)
    x = torch.randn(7, 3, dtype=torch.float64)
    scores = torch.randn(7, 3, dtype=torch.float64)
    h = 0.8
    phi, used = svgd_direction(x, scores, h)
    assert used == h
    expected = torch.zeros_like(x)
    for i in range(7):
        for j in range(7):
            xj = x[j].clone().requires_grad_(True)
            k = torch.exp(-((xj - x[i]) ** 2).sum() / h)
            (grad_k,) = torch.autograd.grad(k, xj)
            expected[i] += k.detach() * scores[j] + grad_k
    torch.testing.assert_close(phi, expected / 7)


def test_single_particle_climbs_to_the_mode_and_stops_early() -> None:
    gmm = GaussianMixtureScore([1.0], [[1.0, -2.0]], [[0.5, 2.0]], "diag")
    reporter = RecordingReporter()
    result = svgd(
        torch.tensor([[5.0, 5.0]]),
        gmm.score,
        iterations=5000,
        step_size=0.5,
        tol=1e-6,
        log_every=100,
        reporter=reporter,
    )
    torch.testing.assert_close(result.particles, torch.tensor([[1.0, -2.0]]), atol=1e-4, rtol=0)
    assert result.converged and result.iterations_run < 5000
    assert [e["iteration"] for e in result.history[:-1]] == list(
        range(100, result.iterations_run, 100)
    )
    assert result.history[-1]["iteration"] == result.iterations_run
    assert result.history[-1]["mean_step_norm"] < 1e-6
    assert any("converged after" in line for line in reporter.lines)
    assert reporter.tasks[0][1] == 5000 and reporter.advanced == result.iterations_run


def test_svgd_runs_every_iteration_with_tol_zero_and_validates_options() -> None:
    gmm, means = triangle_mixture(4.0)
    init = torch.randn(10, 2, generator=torch.Generator().manual_seed(1))
    for optimizer in ("adagrad", "rmsprop", "plain"):
        result = svgd(init, gmm.score, iterations=30, step_size=0.1, tol=0, optimizer=optimizer)
        assert result.iterations_run == 30 and not result.converged
        assert [e["iteration"] for e in result.history] == [30]
        assert not torch.equal(result.particles, init)  # moved, and the input is untouched
    with pytest.raises(OptionError, match="--iterations"):
        svgd(init, gmm.score, iterations=-1)
    with pytest.raises(OptionError, match="--threads"):
        svgd(init, gmm.score, threads=0)
    with pytest.raises(OptionError, match="--step-size"):
        svgd(init, gmm.score, step_size=0)
    with pytest.raises(OptionError, match="--optimizer"):
        svgd(init, gmm.score, optimizer="adam")


def test_plain_svgd_is_eq_2_with_a_fixed_step() -> None:
    """PInR's Eq. (2): e_j <- e_j + xi/M sum_h [k(e_h, e_j) grad log p(e_h) + grad k]."""
    from augtool.core.particles.svgd import svgd_direction

    gmm, _ = triangle_mixture(4.0)
    init = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    one = svgd(init, gmm.score, iterations=1, step_size=0.05, tol=0, optimizer="plain")
    phi, h = svgd_direction(init, gmm.score(init))
    assert torch.allclose(one.particles, init + 0.05 * phi)
    # the same sum written out term by term, with the RBF kernel exp(-|a - b|^2 / h)
    scores = gmm.score(init)
    by_hand = torch.zeros_like(init)
    for j in range(6):
        for k in range(6):
            kernel = torch.exp(-((init[k] - init[j]) ** 2).sum() / h)
            by_hand[j] += kernel * scores[k] + (2 / h) * kernel * (init[j] - init[k])
    assert torch.allclose(phi, by_hand / 6)
    with pytest.raises(AugtoolError, match="score function returned"):
        svgd(init, lambda x: x[:, :1], iterations=1)


def test_small_svgd_runs_on_one_thread_and_restores_the_setting() -> None:
    gmm, _ = triangle_mixture(4.0)
    seen: list[int] = []

    def score(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return gmm.score(x)

    init = torch.randn(10, 2, generator=torch.Generator().manual_seed(1))
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        svgd(init, score, iterations=3, tol=0)
        assert seen == [1, 1, 1] and torch.get_num_threads() == 2
        svgd(init, score, iterations=1, tol=0, threads=2)
        assert seen[-1] == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)


# (c) fallbacks when the data cannot support the requested mixture --------------------------


def test_eight_components_on_five_points_falls_back_and_says_so() -> None:
    points = np.random.default_rng(0).standard_normal((5, 3))
    reporter = RecordingReporter()
    gmm = fit_gmm(points, 8, reporter=reporter)
    assert 1 <= gmm.components <= 2
    fallback = gmm.describe()["fallback"]
    assert fallback is not None
    assert fallback.startswith("GMM with 8 components could not be fitted on 5 points; using ")
    assert fallback in reporter.lines
    assert bool(torch.isfinite(gmm.score(torch.tensor(points, dtype=torch.float32))).all())


def test_a_single_point_gives_an_isotropic_gaussian_at_it() -> None:
    reporter = RecordingReporter()
    gmm = fit_gmm(np.array([[1.0, 2.0, 3.0]]), 4, reg=1e-3, reporter=reporter)
    assert (gmm.components, gmm.covariance) == (1, "spherical")
    torch.testing.assert_close(gmm.means, torch.tensor([[1.0, 2.0, 3.0]]))
    torch.testing.assert_close(gmm.covariances, torch.tensor([1e-3]))
    assert "isotropic" in gmm.describe()["fallback"] and len(reporter.lines) == 1


def test_full_covariance_with_no_more_points_than_dimensions_is_isotropic() -> None:
    points = np.random.default_rng(0).standard_normal((6, 10)) * 2.0
    gmm = fit_gmm(points, 2, covariance="full", reg=1e-4)
    assert (gmm.components, gmm.covariance) == (1, "spherical")
    expected = points.var(axis=0).mean() + 1e-4
    assert float(gmm.covariances[0]) == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(gmm.means[0], torch.tensor(points.mean(0), dtype=torch.float32))


def test_enough_data_fits_every_component_without_a_fallback() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    points = np.concatenate([c + 0.3 * rng.standard_normal((40, 2)) for c in centres])
    reporter = RecordingReporter()
    gmm = fit_gmm(points, 3, covariance="spherical", reporter=reporter)
    assert gmm.components == 3 and gmm.describe()["fallback"] is None
    found = gmm.means[torch.argsort(gmm.means[:, 0])]
    torch.testing.assert_close(found, torch.tensor(centres, dtype=torch.float32), atol=0.15, rtol=0)
    assert not any("could not" in line for line in reporter.lines)


def test_fit_gmm_rejects_bad_options() -> None:
    points = np.zeros((10, 2))
    with pytest.raises(OptionError, match="--components"):
        fit_gmm(points, 0)
    with pytest.raises(OptionError, match="--covariance"):
        fit_gmm(points, 2, covariance="tied")
    with pytest.raises(AugtoolError, match="NaN"):
        fit_gmm(np.full((10, 2), np.nan), 2)


# (d) starting particles --------------------------------------------------------------------


def test_real_init_picks_distinct_real_embeddings_deterministically() -> None:
    data = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    particles = init_particles(data, 20, seed=4)
    assert particles.shape == (20, 8) and particles.dtype == torch.float32
    rows = {tuple(row) for row in data.tolist()}
    chosen = [tuple(row) for row in particles.numpy().tolist()]
    assert len(set(chosen)) == 20 and set(chosen) <= rows
    assert torch.equal(particles, init_particles(data, 20, seed=4))
    assert not torch.equal(particles, init_particles(data, 20, seed=5))


def test_real_init_with_more_particles_than_embeddings_jitters_the_repeats() -> None:
    data = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    particles = init_particles(data, 12, seed=0)
    assert particles.shape == (12, 4)
    pairwise = torch.cdist(particles, particles) + 1e9 * torch.eye(12)
    assert float(pairwise.min()) > 0  # no two particles coincide
    # Every embedding is used exactly, and each repeat lies within a tiny jitter of one.
    to_data = torch.cdist(particles, torch.from_numpy(data)).min(dim=1).values
    assert int((to_data < 1e-6).sum()) == 5
    assert float(to_data.max()) < 0.05


def test_noise_init_matches_the_data_moments_and_copies_nothing() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(loc=[1.0, -2.0, 0.5], scale=[0.1, 2.0, 1.0], size=(400, 3))
    particles = init_particles(data, 4000, mode="noise", seed=7)
    assert particles.shape == (4000, 3)
    np.testing.assert_allclose(particles.mean(0).numpy(), data.mean(0), atol=0.1)
    np.testing.assert_allclose(particles.std(0).numpy(), data.std(0), rtol=0.05)
    assert float(torch.cdist(particles, torch.tensor(data, dtype=torch.float32)).min()) > 0
    assert torch.equal(particles, init_particles(data, 4000, mode="noise", seed=7))


def test_init_particles_rejects_bad_options() -> None:
    data = np.zeros((5, 2))
    with pytest.raises(OptionError, match="--m"):
        init_particles(data, 0)
    with pytest.raises(OptionError, match="--init"):
        init_particles(data, 3, mode="uniform")


# (e) the median heuristic ------------------------------------------------------------------


def test_median_bandwidth_on_known_points() -> None:
    # Squared distances of 0, 1, 3 on a line: 1, 9, 4 -> median 4.
    three = torch.tensor([[0.0], [1.0], [3.0]])
    assert median_bandwidth(three) == pytest.approx(4.0 / math.log(4))
    # 0, 1, 3, 7: 1, 9, 49, 4, 36, 16 -> even count, median (9 + 16) / 2.
    four = torch.tensor([[0.0, 5.0], [1.0, 5.0], [3.0, 5.0], [7.0, 5.0]])
    assert median_bandwidth(four) == pytest.approx(12.5 / math.log(5))
    assert median_bandwidth(torch.zeros(1, 3)) == 1.0
    # svgd recomputes it at every iteration and logs the one it used.
    flat = GaussianMixtureScore([1.0], [[0.0]], [1e6], "spherical")
    result = svgd(three, flat.score, iterations=1, tol=0)
    assert result.history[0]["bandwidth"] == pytest.approx(4.0 / math.log(4))
    fixed = svgd(three, flat.score, iterations=1, tol=0, bandwidth=2.5)
    assert fixed.history[0]["bandwidth"] == 2.5
