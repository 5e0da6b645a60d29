"""TopEx's map of the output space: an interactive HTML (plotly) and a PNG (matplotlib).

Correct points are drawn in light grey, wrong points outside the clusters of mistakes as
grey crosses, and the wrong points of each cluster of mistakes in its own colour; the
chosen cluster is outlined. Hovering shows text, label and
prediction. With ``previous`` (``explore --compare``) the members of the earlier run's
chosen cluster are ringed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from augtool.core.plotting import pyplot

CORRECT = "correct"
WRONG_ELSEWHERE = "wrong, not in a cluster of mistakes"
PREVIOUS = "in the previous chosen cluster"


@dataclass
class Trace:
    """One group of points drawn together."""

    name: str
    points: list[dict[str, Any]]
    chosen: bool = False

    @property
    def label(self) -> str:
        """The legend entry."""
        return self.name + (" (chosen)" if self.chosen else "")


def traces(
    points: Sequence[dict[str, Any]],
    names: dict[int, str],
    chosen: int | None,
    previous: set[str] | None = None,
) -> list[Trace]:
    """The groups in drawing order: correct points, wrong points outside the clusters of
    mistakes (``names`` holds those clusters), wrong points by cluster of mistakes, and
    the previous run's chosen cluster."""
    correct = Trace(CORRECT, [p for p in points if p["correct"]])
    elsewhere = Trace(
        WRONG_ELSEWHERE, [p for p in points if not p["correct"] and p["cluster"] not in names]
    )
    by_cluster: dict[int, list[dict[str, Any]]] = {}
    for point in points:
        if not point["correct"] and point["cluster"] in names:
            by_cluster.setdefault(point["cluster"], []).append(point)
    out = [correct, elsewhere]
    for cluster_id in sorted(by_cluster):
        name = f"cluster {cluster_id}: {names[cluster_id]}"
        out.append(Trace(name, by_cluster[cluster_id], chosen=cluster_id == chosen))
    if previous:
        out.append(Trace(PREVIOUS, [p for p in points if p["id"] in previous]))
    return [t for t in out if t.points]


def _hover(point: dict[str, Any]) -> str:
    text = str(point.get("text", ""))
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{escape(text)}<br>label: {escape(point['label'])}<br>pred: {escape(point['pred'])}"


def cluster_map(
    points: Sequence[dict[str, Any]],
    names: dict[int, str],
    chosen: int | None,
    html_path: str | Path,
    png_path: str | Path,
    *,
    title: str,
    previous: set[str] | None = None,
) -> dict[str, int]:
    """Write both plots; returns the number of points in each trace."""
    groups = traces(points, names, chosen, previous)
    write_html(groups, html_path, title)
    write_png(groups, png_path, title)
    return {t.label: len(t.points) for t in groups}


def write_html(groups: list[Trace], path: str | Path, title: str) -> None:
    """A self-contained interactive HTML page (plotly.js embedded: opens offline)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for trace in groups:
        marker: dict[str, Any] = {"size": 6}
        if trace.name == CORRECT:
            marker.update(size=4, color="lightgrey", opacity=0.5)
        elif trace.name == WRONG_ELSEWHERE:
            marker.update(size=5, color="dimgrey", symbol="x")
        elif trace.name == PREVIOUS:
            marker.update(symbol="circle-open", size=11, color="black")
        elif trace.chosen:
            marker.update(size=9, line={"width": 2, "color": "black"})
        figure.add_trace(
            go.Scattergl(
                x=[p["x"] for p in trace.points],
                y=[p["y"] for p in trace.points],
                mode="markers",
                name=trace.label,
                text=[_hover(p) for p in trace.points],
                customdata=[p["id"] for p in trace.points],
                hovertemplate="%{text}<extra>%{fullData.name}</extra>",
                marker=marker,
            )
        )
    figure.update_layout(title=title, template="plotly_white", legend={"itemsizing": "constant"})
    figure.write_html(str(path), include_plotlyjs=True, full_html=True)


def write_png(groups: list[Trace], path: str | Path, title: str) -> None:
    """A static PNG of the same map."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    for trace in groups:
        xs = [p["x"] for p in trace.points]
        ys = [p["y"] for p in trace.points]
        if trace.name == CORRECT:
            ax.scatter(xs, ys, s=6, c="lightgrey", alpha=0.5, label=trace.name)
        elif trace.name == WRONG_ELSEWHERE:
            ax.scatter(xs, ys, s=10, c="dimgrey", marker="x", linewidths=0.8, label=trace.name)
        elif trace.name == PREVIOUS:
            ax.scatter(xs, ys, s=60, facecolors="none", edgecolors="black", label=trace.name)
        else:
            label = trace.name if len(trace.name) <= 40 else trace.name[:37] + "..."
            label += " (chosen)" if trace.chosen else ""
            ax.scatter(
                xs,
                ys,
                s=40 if trace.chosen else 14,
                edgecolors="black" if trace.chosen else "none",
                linewidths=1.5 if trace.chosen else 0,
                label=label,
            )
    ax.set_title(title)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.legend(fontsize=7, loc="best", markerscale=1.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
