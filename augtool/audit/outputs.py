"""The files of an audit folder: report.json, report.html, map.png and curve.png.

The map puts the originals and every audited set (one marker per set, or per method when
a set mixes several) in one 2D PCA of the embedding space, coloured by label: the
TopEx/PInR plot machinery of :mod:`augtool.core.plotting`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augtool.audit.fidelity import hard_label
from augtool.audit.judges import AuditSet
from augtool.data.records import Record
from augtool.data.writer import atomic_write_text, write_json

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
MAP_PNG = "map.png"
CURVE_PNG = "curve.png"


def _label(value: Any) -> str | None:
    return None if value is None else hard_label(value)


def map_groups(
    reference: Sequence[Record],
    ref_emb: np.ndarray,
    sets: Sequence[AuditSet],
    embeddings: Sequence[np.ndarray],
) -> list[Any]:
    """The map's groups: the originals, then each set (split by method when mixed)."""
    from augtool.core.plotting import MapGroup

    groups = [
        MapGroup(
            "original",
            ref_emb,
            [_label(r.label_dist or r.label) for r in reference],
            [r.text or "" for r in reference],
        )
    ]
    for aset, emb in zip(sets, embeddings, strict=True):
        methods = aset.method_counts()
        split = len(methods) > 1
        for method in methods if split else [None]:
            rows = [i for i, m in enumerate(aset.methods) if method is None or m == method]
            groups.append(
                MapGroup(
                    f"{aset.name}/{method}" if split else aset.name,
                    np.asarray(emb)[rows],
                    [_label(aset.labels[i]) for i in rows],
                    [aset.texts[i] for i in rows],
                )
            )
    return groups


def lambda_series(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Label-issue rate by lambda bin, per set that has mixed rows (the intrusion curve)."""
    figures = report["checks"].get("label", {}).get("figures", {})
    return {name: f["by_lambda"] for name, f in figures.items() if f.get("by_lambda")}


def write_report_files(
    folder: Path,
    report: dict[str, Any],
    *,
    groups: list[Any] | None,
    worst: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Write every file of the audit into ``folder`` (a staging folder); returns what the
    map drew (for the meta file), or an empty dict without a map."""
    from augtool.audit.html import render_html
    from augtool.core.plotting import group_map, group_map_html_div, rate_by_bin

    drawn: dict[str, Any] = {}
    map_png = map_div = curve_png = None
    if groups is not None:
        title = "Originals and augmented rows (PCA of the embeddings)"
        drawn = group_map(groups, folder / MAP_PNG, title=title, seed=seed)
        map_png = (folder / MAP_PNG).read_bytes()
        if importlib.util.find_spec("plotly") is not None:
            map_div = group_map_html_div(groups, title=title, seed=seed)
    series = lambda_series(report)
    if series:
        rate_by_bin(
            series,
            folder / CURVE_PNG,
            title="Label issues by mixing ratio",
            xlabel="lambda",
            ylabel="share of rows with a label issue",
        )
        curve_png = (folder / CURVE_PNG).read_bytes()
    write_json(folder / REPORT_JSON, report)
    atomic_write_text(
        folder / REPORT_HTML,
        render_html(
            report,
            map_div=map_div,
            map_png=None if map_div else map_png,
            curve_png=curve_png,
            worst=worst,
        ),
    )
    return drawn
