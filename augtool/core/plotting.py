"""Plots (matplotlib, headless) for reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    return _save(figure, path)


def _save(figure: Any, path: str | Path) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot().close(figure)
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
    return _save(figure, path)


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
    return _save(figure, path)


def confusion_grid(
    matrices: Mapping[str, Sequence[Sequence[int]]],
    labels: Sequence[str],
    path: str | Path,
    *,
    title: str,
    ylabel: str = "reference",
) -> Path:
    """One confusion matrix per panel (rows: ``ylabel``, columns: the panel's answers),
    counts written in the cells; shading is per row share, so panels compare."""
    import math

    plt = pyplot()
    names = list(matrices)
    columns = min(3, max(1, len(names)))
    rows = math.ceil(len(names) / columns) if names else 1
    side = 1.0 + 0.45 * max(2, len(labels))
    figure, grid = plt.subplots(
        rows, columns, figsize=(side * columns + 0.5, side * rows + 0.8), dpi=120, squeeze=False
    )
    for position, axes in enumerate(grid.flat):
        if position >= len(names):
            axes.axis("off")
            continue
        name = names[position]
        counts = [list(row) for row in matrices[name]]
        shares = [[c / max(1, sum(row)) for c in row] for row in counts]
        axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for i, row in enumerate(counts):
            for j, value in enumerate(row):
                if value:
                    colour = "white" if shares[i][j] > 0.6 else "black"
                    axes.text(j, i, str(value), ha="center", va="center", fontsize=7, color=colour)
        axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        axes.set_yticks(range(len(labels)), labels, fontsize=7)
        axes.set_title(name, fontsize=8)
        axes.set_ylabel(ylabel, fontsize=7)
        axes.set_xlabel("answer", fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


#: ``--plot`` suffixes: matplotlib's (static) and ``.html`` (plotly, interactive).
STATIC_FORMATS = (".png", ".jpg", ".jpeg", ".svg", ".pdf")
HTML_FORMAT = ".html"
#: At most this many points of each group are drawn (a seeded sample beyond it).
MAX_POINTS = 5000


def check_plot_path(path: str | Path | None, *, html: bool = True) -> None:
    """Refuse an unsupported ``--plot`` suffix before any work (``.html`` needs plotly)."""
    from augtool.errors import OptionError

    if path is None:
        return
    suffix = Path(path).suffix.lower()
    allowed = STATIC_FORMATS + ((HTML_FORMAT,) if html else ())
    if suffix not in allowed:
        names = ", ".join(allowed[:-1]) + " or " + allowed[-1]
        shown = f"'{suffix}'" if suffix else "no suffix"
        raise OptionError("plot", f"{path}: {shown} is not a plot format (use {names})")
    if suffix == HTML_FORMAT:
        import importlib.util

        if importlib.util.find_spec("plotly") is None:
            raise ModuleNotFoundError("No module named 'plotly'", name="plotly")


def _sample(count: int, seed: int) -> list[int]:
    """Indices of the points drawn: all, or a seeded sample of ``MAX_POINTS``."""
    if count <= MAX_POINTS:
        return list(range(count))
    import random

    return sorted(random.Random(seed).sample(range(count), MAX_POINTS))


@dataclass(frozen=True)
class MapGroup:
    """One group of points of :func:`group_map`: its vectors, a label per row (the colour)
    and optionally a text per row (shown on hover in ``.html``)."""

    name: str
    vectors: Any
    labels: Sequence[str | None]
    texts: Sequence[str] | None = None


#: Markers of the groups in order (cycling): matplotlib's marker, size and alpha, then
#: plotly's symbol, size and opacity; the first group (faint dots) is the background.
_MARKERS = (
    ("o", 12, 0.45, "circle", 6, 0.5),
    ("x", 30, 0.9, "x", 8, 0.95),
    ("+", 36, 0.9, "cross", 8, 0.95),
    ("^", 20, 0.75, "triangle-up", 7, 0.8),
    ("s", 16, 0.75, "square", 6, 0.8),
    ("D", 14, 0.75, "diamond", 6, 0.8),
)


def _marker(index: int) -> tuple[Any, ...]:
    return _MARKERS[index % len(_MARKERS)]


def _prepare(
    groups: Sequence[MapGroup], title: str, seed: int
) -> tuple[list[dict[str, Any]], list[str], str]:
    """Sample, project (PCA over all groups together) and label the groups.

    Returns the drawn groups (``name``, ``xy``, ``labels``, ``texts``, ``total``), the
    sorted label names and the title, noting the sample sizes when any group was sampled.
    """
    import numpy as np

    from augtool.core.clustering.projection import project_2d

    if not groups:
        raise ValueError("a map needs at least one group")
    source = next((g.vectors for g in groups if len(g.labels)), groups[-1].vectors)
    width = np.asarray(source).shape[-1]
    drawn: list[dict[str, Any]] = []
    for group in groups:
        labels, texts = group.labels, group.texts
        vectors = np.asarray(group.vectors, dtype=np.float64).reshape(len(labels), width)
        keep = _sample(len(labels), seed)
        drawn.append(
            {
                "name": group.name,
                "vectors": vectors[keep],
                "labels": ["(no label)" if labels[i] is None else str(labels[i]) for i in keep],
                "texts": [str(texts[i]) for i in keep] if texts is not None else None,
                "total": len(labels),
            }
        )
    points = project_2d(np.concatenate([g["vectors"] for g in drawn]), "pca", seed=seed)
    start = 0
    for group in drawn:
        group["xy"] = points[start : start + len(group["labels"])]
        start += len(group["labels"])
    names = sorted({label for g in drawn for label in g["labels"]})
    if any(len(g["labels"]) < g["total"] for g in drawn):
        title += " (" + ", ".join(f"{len(g['labels'])} of {g['total']}" for g in drawn) + " shown)"
    return drawn, names, title


def _draw(
    groups: Sequence[MapGroup], path: str | Path, title: str, seed: int
) -> list[dict[str, Any]]:
    """Write the map of ``groups`` to ``path`` (``.html``: plotly, else matplotlib)."""
    drawn, names, title = _prepare(groups, title, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == HTML_FORMAT:
        _embedding_figure(drawn, names, title).write_html(
            str(path), include_plotlyjs=True, full_html=True
        )
    else:
        _embedding_static(drawn, names, path, title)
    return drawn


def group_map(
    groups: Sequence[MapGroup], path: str | Path, *, title: str, seed: int = 0
) -> dict[str, Any]:
    """2D PCA of any number of groups of embeddings, projected together, coloured by label.

    Each group has its own marker (dots, crosses, pluses, triangles, squares, diamonds,
    cycling) and is drawn whole up to ``MAX_POINTS`` rows, a seeded sample beyond.
    PNG/JPEG/SVG/PDF through matplotlib, ``.html`` through plotly (one trace per group and
    label, named ``"<group>: <label>"``; hovering shows the text). Returns what was drawn
    (for ``<out>.meta.json``): ``legend`` lists the group names, ``points`` and ``rows``
    map each name to its drawn and total rows. Group names must be distinct.
    """
    _check_names(groups)
    drawn = _draw(groups, path, title, seed)
    return {
        "path": str(Path(path)),
        "projection": "pca",
        "legend": [g["name"] for g in drawn],
        "points": {g["name"]: len(g["labels"]) for g in drawn},
        "rows": {g["name"]: g["total"] for g in drawn},
    }


def group_map_html_div(groups: Sequence[MapGroup], *, title: str, seed: int = 0) -> str:
    """The plotly map of :func:`group_map` as an HTML ``<div>`` with plotly.js inlined, to
    embed in a larger self-contained page (no network needed to view it)."""
    _check_names(groups)
    drawn, names, title = _prepare(groups, title, seed)
    return _embedding_figure(drawn, names, title).to_html(full_html=False, include_plotlyjs=True)


def _check_names(groups: Sequence[MapGroup]) -> None:
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"map group names must be distinct: {names}")


def embedding_map(
    originals: Any,
    generated: Any,
    original_labels: Sequence[str | None],
    generated_labels: Sequence[str | None],
    path: str | Path,
    *,
    title: str,
    generated_name: str = "generated",
    original_texts: Sequence[str] | None = None,
    generated_texts: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """2D PCA of original (dots) and generated (crosses) embeddings, coloured by label.

    :func:`group_map` with two groups, ``"original"`` and ``generated_name``; the result
    is keyed ``"original"``/``"generated"`` whatever the names. Returns what was drawn
    (for ``<out>.meta.json``).
    """
    first, second = _draw(
        [
            MapGroup("original", originals, original_labels, original_texts),
            MapGroup(generated_name, generated, generated_labels, generated_texts),
        ],
        path,
        title,
        seed,
    )
    return {
        "path": str(Path(path)),
        "projection": "pca",
        "legend": {"original": first["name"], "generated": second["name"]},
        "points": {"original": len(first["labels"]), "generated": len(second["labels"])},
        "rows": {"original": first["total"], "generated": second["total"]},
    }


def rate_by_bin(
    series: Mapping[str, Sequence[dict[str, Any]]],
    path: str | Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """One line per series: each entry's ``rate`` at the midpoint of its ``lambda`` bin
    ``[low, high]`` (entries whose rate is None, e.g. empty bins, are skipped)."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, entries in series.items():
        points = sorted(
            ((e["lambda"][0] + e["lambda"][1]) / 2, e["rate"])
            for e in entries
            if e.get("rate") is not None
        )
        axes.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if series:
        axes.legend(frameon=False, fontsize=8)
    return _save(figure, path)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _colour_table(names: Sequence[str]) -> dict[str, Any]:
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _embedding_static(
    groups: list[dict[str, Any]], names: list[str], path: Path, title: str
) -> None:
    from matplotlib.lines import Line2D

    plt = pyplot()
    colours = _colour_table(names)
    figure, axes = plt.subplots(figsize=(7.0, 5.4), dpi=120)
    styles = [{"marker": m[0], "s": m[1], "alpha": m[2]} for m in map(_marker, range(len(groups)))]
    for group, style in zip(groups, styles, strict=True):
        for name in names:
            rows = [i for i, label in enumerate(group["labels"]) if label == name]
            if rows:
                xy = group["xy"][rows]
                axes.scatter(xy[:, 0], xy[:, 1], color=colours[name], linewidths=1, **style)
    handles = [
        Line2D([], [], marker=s["marker"], linestyle="", color="0.3", label=g["name"])
        for g, s in zip(groups, styles, strict=True)
    ]
    if len(names) <= 20:
        handles += [
            Line2D([], [], marker="s", linestyle="", color=colours[n], label=n) for n in names
        ]
    axes.legend(handles=handles, frameon=False, fontsize=7, loc="best")
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("PCA 1")
    axes.set_ylabel("PCA 2")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _embedding_figure(groups: list[dict[str, Any]], names: list[str], title: str) -> Any:
    """The plotly figure of a map (shared by the ``.html`` file and the embeddable div)."""
    from html import escape

    import plotly.graph_objects as go
    from matplotlib.colors import to_hex

    colours = {name: to_hex(c) for name, c in _colour_table(names).items()}
    figure = go.Figure()
    for index, group in enumerate(groups):
        _, _, _, symbol, size, opacity = _marker(index)
        for name in names:
            rows = [i for i, label in enumerate(group["labels"]) if label == name]
            if not rows:
                continue
            texts = group["texts"]
            hover = [escape(_short(texts[i])) if texts else "" for i in rows]
            figure.add_trace(
                go.Scattergl(
                    x=group["xy"][rows, 0].tolist(),
                    y=group["xy"][rows, 1].tolist(),
                    mode="markers",
                    name=f"{group['name']}: {name}",
                    legendgroup=group["name"],
                    text=hover,
                    hovertemplate="%{text}<extra>%{fullData.name}</extra>",
                    marker={
                        "symbol": symbol,
                        "size": size,
                        "opacity": opacity,
                        "color": colours[name],
                    },
                )
            )
    figure.update_layout(
        title=title,
        template="plotly_white",
        xaxis_title="PCA 1",
        yaxis_title="PCA 2",
        legend={"itemsizing": "constant"},
    )
    return figure
