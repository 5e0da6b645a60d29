"""Plots (matplotlib, headless) for reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def accuracy_vs_k(
    series: Mapping[str, Mapping[str, tuple[float, float]]],
    k_order: Sequence[str],
    path: str | Path,
    *,
    title: str,
    ylabel: str = "accuracy",
) -> Path:
    """One line per method: mean score (± std as error bars) against K.

    ``series[method][k] = (mean, std)``; ``k_order`` gives the x positions (``"all"``
    last); a method missing some K simply has no point there.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    positions = {k: i for i, k in enumerate(k_order)}
    spread = 0.06  # methods side by side, so equal means do not hide each other's bars
    for index, (method, points) in enumerate(series.items()):
        ks = [k for k in k_order if k in points]
        offset = (index - (len(series) - 1) / 2) * spread
        axes.errorbar(
            [positions[k] + offset for k in ks],
            [100 * points[k][0] for k in ks],
            yerr=[100 * points[k][1] for k in ks],
            marker="o",
            capsize=3,
            label=method,
        )
    axes.set_xticks(range(len(k_order)), [f"K={k}" if k != "all" else "all" for k in k_order])
    axes.set_ylabel(f"{ylabel} (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(frameon=False)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
