"""Plots (matplotlib, headless) for reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


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


def pyplot():  # noqa: ANN202 - matplotlib's pyplot module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reconstruction_map(
    originals: Any,
    reconstructions: Any,
    labels: Sequence[str | None],
    path: str | Path,
    *,
    title: str,
) -> Path:
    """2D PCA of original (dots) and reconstructed (crosses) embeddings, pairs joined."""
    import numpy as np
    from sklearn.decomposition import PCA

    plt = pyplot()
    both = np.concatenate([originals, reconstructions])
    points = PCA(n_components=2, random_state=0).fit_transform(both)
    first, second = points[: len(originals)], points[len(originals) :]
    names = sorted({str(label) for label in labels})
    colours = {name: plt.cm.tab10(i % 10) for i, name in enumerate(names)}
    figure, axes = plt.subplots(figsize=(6.4, 5.0), dpi=120)
    for (x0, y0), (x1, y1) in zip(first, second, strict=True):
        axes.plot([x0, x1], [y0, y1], color="0.8", linewidth=0.6, zorder=1)
    for name in names:
        rows = [i for i, label in enumerate(labels) if str(label) == name]
        axes.scatter(
            first[rows, 0], first[rows, 1], s=18, color=colours[name], label=name, zorder=2
        )
        axes.scatter(
            second[rows, 0], second[rows, 1], s=22, marker="x", color=colours[name], zorder=3
        )
    axes.set_title(title)
    axes.legend(
        frameon=False, fontsize=8, title="dots: original, x: reconstruction", title_fontsize=8
    )
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def stacked_bins(
    bins: Sequence[dict[str, Any]],
    categories: Sequence[str],
    path: str | Path,
    *,
    title: str,
    xlabel: str,
) -> Path:
    """Stacked bars of category proportions per bin (``bins[i]['proportions']``)."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.0, 4.0), dpi=120)
    positions = list(range(len(bins)))
    bottom = [0.0] * len(bins)
    for category in categories:
        heights = [(b["proportions"].get(category) or 0.0) for b in bins]
        axes.bar(positions, heights, bottom=bottom, label=category)
        bottom = [x + h for x, h in zip(bottom, heights, strict=True)]
    axes.set_xticks(
        positions,
        [f"{b['lambda'][0]:.2f}–{b['lambda'][1]:.2f}\n(n={b['n']})" for b in bins],
        fontsize=7,
    )
    axes.set_xlabel(xlabel)
    axes.set_ylabel("share of rows")
    axes.set_title(title)
    axes.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
