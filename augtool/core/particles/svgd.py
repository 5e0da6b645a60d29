"""Stein variational gradient descent (SVGD) and the particles it starts from.

SVGD (Liu & Wang, 2016) moves a set of particles ``x_1..x_M`` along

    phi(x_i) = 1/M sum_j [ k(x_j, x_i) grad log p(x_j) + grad_{x_j} k(x_j, x_i) ],

a kernel-smoothed score (drives particles to high density) plus a repulsion (keeps them
apart), so the set spreads over ``p`` instead of every particle climbing to a mode (with few
particles in many dimensions it still sits nearer the modes than samples would). PInR uses it
to condense N real embeddings into M synthetic ones. One step needs only the M x M kernel
and the score at the M particles, so its cost does not depend on N.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from augtool.core.progress import SILENT, Reporter
from augtool.errors import AugtoolError, OptionError

#: Particle initialisations understood by :func:`init_particles`.
INIT_MODES = ("real", "noise")

#: Step-size rules understood by :func:`svgd`: Adagrad (the default), Liu & Wang's
#: "Adagrad with momentum", and "plain", the fixed step xi of PInR's Eq. (2).
OPTIMIZERS = ("adagrad", "rmsprop", "plain")

#: Added to the Adagrad denominator, and the "rmsprop" averaging factor, as in Liu & Wang's
#: reference implementation.
_FUDGE = 1e-6
_MOMENTUM = 0.9

#: Up to this many multiply-adds per kernel product (``M * M * d``), CPU SVGD runs on one
#: thread by default. Its tensors are then small (M = 120, d = 384: 5.5M), so a step is a
#: few dozen sub-millisecond ops, and making every one of them wait for a second OpenMP
#: thread costs far more than it saves: on a 2-core machine with other work running, 500
#: iterations took over 60 s on 2 threads against under 1 s on one.
SINGLE_THREAD_WORK = 1 << 27


@dataclass
class SVGDResult:
    """The final particles, how many iterations ran, and the logged trajectory."""

    particles: torch.Tensor
    iterations_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    converged: bool = False


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances (M, M), clamped at zero, exact zero diagonal."""
    sq = (x * x).sum(1)
    dist = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
    dist.fill_diagonal_(0.0)
    return dist


def median_bandwidth(x_or_sqdist: torch.Tensor, *, squared: bool = False) -> float:
    """The median heuristic ``h = med^2 / log(M + 1)`` for ``k(x, y) = exp(-|x - y|^2 / h)``.

    ``med^2`` is the median squared distance over distinct pairs ``i < j`` (the mean of the
    two middle values for an even count). A median-distance pair then has kernel value
    ``1 / (M + 1)``, so a particle's own term and those of all the others weigh about the
    same (Liu & Wang).
    Returns 1.0 for a single particle and falls back to the mean squared distance (or 1.0)
    when over half of the pairs coincide.
    """
    dist = x_or_sqdist if squared else squared_distances(x_or_sqdist)
    m = dist.shape[0]
    if m < 2:
        return 1.0
    iu = torch.triu_indices(m, m, offset=1, device=dist.device)
    pairs = torch.sort(dist[iu[0], iu[1]]).values
    count = pairs.numel()
    mid = count // 2
    med2 = float(pairs[mid]) if count % 2 else float(pairs[mid - 1] + pairs[mid]) / 2.0
    if med2 <= 0.0:
        med2 = float(pairs.mean())
    if med2 <= 0.0:
        return 1.0
    return med2 / math.log(m + 1)


def svgd_direction(
    x: torch.Tensor, scores: torch.Tensor, bandwidth: float | None = None
) -> tuple[torch.Tensor, float]:
    """The SVGD update direction ``phi`` (M, d) at particles ``x`` and the bandwidth used.

    With ``k_ij = exp(-|x_i - x_j|^2 / h)``, ``grad_{x_j} k(x_j, x_i) = 2/h (x_i - x_j) k_ij``,
    so the repulsion summed over ``j`` is ``2/h (x_i sum_j k_ij - (K x)_i)``: two matrix
    products, ``O(M^2 d)``.
    """
    dist = squared_distances(x)
    h = median_bandwidth(dist, squared=True) if bandwidth is None else float(bandwidth)
    kernel = torch.exp(-dist / h)
    attraction = kernel @ scores
    repulsion = (2.0 / h) * (x * kernel.sum(1, keepdim=True) - kernel @ x)
    return (attraction + repulsion) / x.shape[0], h


def svgd(
    init: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    iterations: int = 500,
    step_size: float = 0.01,
    bandwidth: float | None = None,
    tol: float = 1e-5,
    log_every: int = 50,
    optimizer: str = "adagrad",
    threads: int | None = None,
    reporter: Reporter = SILENT,
) -> SVGDResult:
    """Run SVGD from ``init`` (M, d) under ``score_fn`` (``grad log p``, (M, d) -> (M, d)).

    Steps are scaled per coordinate by the root of the accumulated squared SVGD directions
    (Adagrad), so ``step_size`` is how far a coordinate moves on the first step whatever the
    magnitude of the score (a GMM score on embeddings is in the hundreds). The default 0.01
    suits unit-norm embeddings, whose per-coordinate spread is about ``1/sqrt(d)`` (0.05 for
    d = 384); scale it with the data (about 0.5 for 2-D points of unit spread). Liu & Wang's
    reference code uses "Adagrad with momentum" (an exponential average, factor 0.9:
    ``optimizer="rmsprop"``), which keeps stepping about ``step_size`` and jitters around the
    fixed point, so its step never falls below ``tol``; the default plain Adagrad's steps
    shrink as the particles settle, so the run converges and ``tol`` means something.

    ``bandwidth`` None: the median heuristic (:func:`median_bandwidth`), recomputed every
    iteration. Stops early once the mean per-particle update norm falls below ``tol`` (0:
    run every iteration). ``history`` gets an entry every ``log_every`` iterations and at
    the last one. Cost per iteration: ``O(M^2 d)`` plus one ``score_fn`` call.

    ``threads``: torch CPU threads for the loop (restored afterwards); None picks one thread
    when ``M * M * d <= SINGLE_THREAD_WORK`` and leaves torch's setting alone otherwise.
    """
    if not isinstance(init, torch.Tensor):
        raise AugtoolError("init must be a torch tensor of shape (M, d)")
    if init.ndim != 2 or init.shape[0] == 0 or init.shape[1] == 0:
        raise AugtoolError(f"init must have shape (M, d), got {tuple(init.shape)}")
    if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 0:
        raise OptionError("iterations", f"must be a non-negative integer, got {iterations!r}")
    if not step_size > 0:
        raise OptionError("step_size", f"must be positive, got {step_size}")
    if bandwidth is not None and not bandwidth > 0:
        raise OptionError("bandwidth", f"must be positive, got {bandwidth}")
    if not tol >= 0:
        raise OptionError("tol", f"must be non-negative, got {tol}")
    if int(log_every) < 1:
        raise OptionError("log_every", f"must be at least 1, got {log_every}")
    if optimizer not in OPTIMIZERS:
        raise OptionError(
            "optimizer", f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}"
        )
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise OptionError("threads", f"must be a positive integer, got {threads!r}")
    iterations = int(iterations)
    x = (init if init.is_floating_point() else init.float()).detach().clone()
    m, d = x.shape
    accumulated = torch.zeros_like(x)
    history: list[dict[str, Any]] = []
    advance = reporter.task(f"SVGD ({m} particles, d={d})", iterations)
    if threads is None and x.device.type == "cpu" and m * m * d <= SINGLE_THREAD_WORK:
        threads = 1
    reporter.log(
        f"SVGD: {m} particles in {d} dimensions, up to {iterations} iterations"
        + (f", {threads} CPU thread(s)" if threads and x.device.type == "cpu" else "")
    )
    converged = False
    done = 0
    pending = 0
    with torch.no_grad(), _cpu_threads(threads if x.device.type == "cpu" else None):
        for it in range(1, iterations + 1):
            scores = score_fn(x)
            if scores.shape != x.shape:
                raise AugtoolError(
                    f"score function returned shape {tuple(scores.shape)} for particles of "
                    f"shape {tuple(x.shape)}"
                )
            phi, h = svgd_direction(x, scores.to(x.dtype), bandwidth)
            if optimizer == "plain":  # Eq. (2): e <- e + xi * phi (phi already has the 1/M)
                step = step_size * phi
            else:
                if optimizer == "rmsprop" and it > 1:
                    accumulated.mul_(_MOMENTUM).add_((1.0 - _MOMENTUM) * phi * phi)
                else:
                    accumulated += phi * phi
                step = step_size * phi / (_FUDGE + accumulated.sqrt())
            x += step
            if not bool(torch.isfinite(x).all()):
                raise AugtoolError(
                    f"SVGD diverged at iteration {it} (non-finite particles); "
                    "lower --step-size or check the score function"
                )
            mean_step = float(step.norm(dim=1).mean())
            done = it
            pending += 1
            converged = tol > 0 and mean_step < tol
            if it % log_every == 0 or it == iterations or converged:
                entry = {"iteration": it, "mean_step_norm": mean_step, "bandwidth": h}
                history.append(entry)
                reporter.log(
                    f"SVGD iteration {it}/{iterations}: mean step {mean_step:.3g}, "
                    f"bandwidth {h:.3g}"
                )
                advance(pending)
                pending = 0
            if converged:
                reporter.log(
                    f"SVGD converged after {it} iterations (mean step {mean_step:.3g} < {tol})"
                )
                break
    if not converged and iterations:
        reporter.log(f"SVGD ran all {iterations} iterations without reaching tol {tol}")
    return SVGDResult(particles=x, iterations_run=done, history=history, converged=converged)


@contextmanager
def _cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if threads is None or int(threads) == before:
        yield
        return
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def init_particles(
    embeddings: np.ndarray, m: int, *, mode: str = "real", seed: int = 0
) -> torch.Tensor:
    """``m`` starting particles (m, d) float32 drawn from the real ``embeddings`` (N, d).

    "real": ``m`` distinct randomly chosen embeddings; when ``m > N`` every embedding is used
    and the rest are drawn with replacement, each repeat jittered by noise at 1e-3 of the
    data's per-dimension std so that no two particles coincide (SVGD cannot separate
    identical particles). "noise": Gaussian noise with the data's per-dimension mean and
    std, so no real embedding is copied (privacy mode). Deterministic for a given ``seed``.
    """
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise OptionError("m", f"must be a positive integer, got {m!r}")
    if mode not in INIT_MODES:
        raise OptionError("init", f"unknown mode {mode!r}; use one of {', '.join(INIT_MODES)}")
    data = np.asarray(embeddings, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise AugtoolError(f"embeddings must be a non-empty (N, d) array, got shape {data.shape}")
    m = int(m)
    n, d = data.shape
    rng = np.random.default_rng(seed)
    std = data.std(axis=0)
    scale = std if float(std.max()) > 0 else np.ones(d)
    if mode == "noise":
        particles = data.mean(axis=0) + rng.standard_normal((m, d)) * scale
    elif m <= n:
        particles = data[rng.choice(n, size=m, replace=False)]
    else:
        extra = rng.choice(n, size=m - n, replace=True)
        order = rng.permutation(n)
        repeats = data[extra] + 1e-3 * scale * rng.standard_normal((m - n, d))
        particles = np.concatenate([data[order], repeats])
        particles = particles[rng.permutation(m)]
    return torch.as_tensor(particles, dtype=torch.float32)
