"""PInR's particle stage: GMM fit plus SVGD, timed for growing N and M.

Synthetic unit-normalised embeddings (d = 384, 10 clusters) stand in for sentence
embeddings. Targets: the whole stage (GMM fit, initialisation, 500 SVGD iterations) for
N = 5,000 and M = 120 in under 30 s on a 2-core CPU, and an SVGD iteration whose cost does
not grow with N (time per iteration for N = 20,000 about that for N = 5,000), since only the
fit sees the real embeddings.

    python benchmarks/pinr_particles.py [--iterations 500] [--threads N] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from _common import save_result


def clustered_embeddings(n: int, d: int, clusters: int, seed: int) -> np.ndarray:
    """``n`` unit vectors around ``clusters`` random directions (cosine to the centre ~0.85)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, d)) * (
        0.6 / np.sqrt(d)
    )
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--particles", type=int, nargs="+", default=[120, 60])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2, help="SVGD runs per cell; best kept")
    parser.add_argument("--threads", type=int, default=None, help="default: torch's default")
    parser.add_argument(
        "--svgd-threads", type=int, default=None, help="svgd(threads=...); default: automatic"
    )
    args = parser.parse_args()

    from augtool.core.particles import fit_gmm, init_particles, svgd
    from augtool.core.particles.svgd import SINGLE_THREAD_WORK

    if args.threads:
        torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"PInR particle stage: d={args.dim}, {args.clusters} clusters, {args.components}-component"
        f" diag GMM, {args.iterations} SVGD iterations (tol 0), best of {args.repeats}"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {load}; SVGD threads: "
        + (
            str(args.svgd_threads)
            if args.svgd_threads
            else f"automatic (1 while M*M*d <= {SINGLE_THREAD_WORK:,})"
        )
    )
    print(
        f"{'N':>6} {'M':>4} {'fit s':>7} {'SVGD s':>7} {'ms/iter':>8} {'stage s':>8} "
        f"{'log p: data':>11} {'init':>7} {'final':>7}"
    )
    per_iter: dict[tuple[int, int], float] = {}
    stage: dict[tuple[int, int], float] = {}
    cells: list[dict[str, object]] = []
    for n in args.sizes:
        embeddings = clustered_embeddings(n, args.dim, args.clusters, seed=n)
        start = time.perf_counter()
        gmm = fit_gmm(embeddings, args.components, seed=0)
        fit_s = time.perf_counter() - start
        data_logp = float(gmm.log_prob(torch.from_numpy(embeddings[:2000])).mean())
        for m in args.particles:
            start = time.perf_counter()
            init = init_particles(embeddings, m, seed=0)
            init_s = time.perf_counter() - start
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = svgd(
                    init,
                    gmm.score,
                    iterations=args.iterations,
                    tol=0,
                    threads=args.svgd_threads,
                )
                best = min(best, time.perf_counter() - start)
            assert result.iterations_run == args.iterations
            per_iter[n, m] = best / args.iterations
            stage[n, m] = fit_s + init_s + best
            cells.append(
                {
                    "n": n,
                    "m": m,
                    "fit_s": round(fit_s, 3),
                    "svgd_s": round(best, 3),
                    "ms_per_iteration": round(1e3 * per_iter[n, m], 3),
                    "stage_s": round(stage[n, m], 3),
                }
            )
            print(
                f"{n:6d} {m:4d} {fit_s:7.2f} {best:7.2f} {1e3 * per_iter[n, m]:8.2f} "
                f"{stage[n, m]:8.2f} {data_logp:11.1f} {float(gmm.log_prob(init).mean()):7.1f} "
                f"{float(gmm.log_prob(result.particles).mean()):7.1f}"
            )

    small_n, large_n = min(args.sizes), max(args.sizes)
    small_m, large_m = min(args.particles), max(args.particles)
    if small_n != large_n:
        for m in args.particles:
            ratio = per_iter[large_n, m] / per_iter[small_n, m]
            print(
                f"time per iteration, N={large_n} / N={small_n} at M={m}: {ratio:.2f}"
                "  (target ~1: independent of N)"
            )
    if small_m != large_m:
        for n in args.sizes:
            ratio = per_iter[n, large_m] / per_iter[n, small_m]
            print(
                f"time per iteration, M={large_m} / M={small_m} at N={n}: {ratio:.2f}"
                f"  (O(M^2 d) kernel would give up to {(large_m / small_m) ** 2:.0f})"
            )
    key = (small_n, large_m)
    if key in stage:
        verdict = "meets" if stage[key] < 30 else "MISSES"
        print(
            f"particle stage N={small_n}, M={large_m}: {stage[key]:.2f} s "
            f"({verdict} the < 30 s target)"
        )
    save_result(
        "pinr_particles",
        {"cells": cells, "target_stage_s": 30.0, "target_cell": {"n": key[0], "m": key[1]}},
        {
            "dim": args.dim,
            "clusters": args.clusters,
            "components": args.components,
            "iterations": args.iterations,
            "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
        },
    )


if __name__ == "__main__":
    main()
