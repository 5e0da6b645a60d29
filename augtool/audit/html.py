"""Self-contained HTML page of an audit report (``augtool audit --html``).

The page is rendered from the JSON report alone (plus optional pre-drawn figures), so it
can be rebuilt from a saved report. Everything is in one file: inline CSS, images as
``data:`` URIs, and no script besides what an embedded plotly map brings; every value taken
from the report is HTML-escaped, since texts and names come from user data.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

#: Longest text shown in the worst-rows tables (longer ones are cut with an ellipsis).
TEXT_LIMIT = 300

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { max-width: 40em; white-space: pre-wrap; word-break: break-word; }
.pass { color: #17692c; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
.muted { color: #777; } img { max-width: 100%; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; } dd { margin: 0; }
"""

#: Checks in the order they are shown; any other check of the report follows, sorted.
CHECK_ORDER = ("label", "distribution", "diversity", "duplicates")


def render_html(
    report: dict[str, Any],
    *,
    map_div: str | None = None,
    map_png: bytes | None = None,
    curve_png: bytes | None = None,
    worst: int = 20,
) -> str:
    """The audit report as one self-contained HTML page.

    One table per check present (a row per set, a column per scalar figure), the gates,
    the embedding map (``map_div``: an HTML fragment inserted as is, e.g. from
    :func:`augtool.core.plotting.group_map_html_div`; else ``map_png``), the label-issue
    rate by lambda curve (``curve_png``) and, per check, up to ``worst`` flagged rows
    (label issues least confident first).
    """
    checks = report.get("checks") or {}
    names = [c for c in CHECK_ORDER if c in checks] + sorted(set(checks) - set(CHECK_ORDER))
    passed = report.get("passed")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>augtool audit</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>augtool audit</h1>",
        _summary(report),
    ]
    if passed is not None:
        parts.append(f"<p>Overall: {_verdict(bool(passed))}</p>")
    for name in names:
        parts.append(_check_section(name, checks[name] or {}))
    parts.append(_gates(report.get("gates") or []))
    if map_div is not None or map_png is not None:
        parts.append("<h2>Embedding map</h2>")
        parts.append(map_div if map_div is not None else _img(map_png, "embedding map"))
    if curve_png is not None:
        parts.append("<h2>Label-issue rate by lambda</h2>")
        parts.append(_img(curve_png, "label-issue rate by lambda"))
    worst_parts = [_worst(name, checks[name] or {}, worst) for name in names]
    worst_parts = [p for p in worst_parts if p]
    if worst_parts:
        parts.append("<h2>Worst rows</h2>")
        parts.extend(worst_parts)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _e(value: Any) -> str:
    """``value`` as escaped text."""
    return escape(str(value), quote=True)


def _verdict(passed: bool) -> str:
    return '<span class="pass">PASS</span>' if passed else '<span class="fail">FAIL</span>'


def _img(png: bytes | None, alt: str) -> str:
    data = base64.b64encode(png or b"").decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def format_value(value: Any) -> str:
    """A figure as table text (unescaped): numbers to 4 significant digits, ``mean ± std``
    for a ``{"mean", "std"}`` dict, ``-`` for None; other values as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    if isinstance(value, Mapping) and "mean" in value and "std" in value:
        return f"{format_value(value['mean'])} ± {format_value(value['std'])}"
    return str(value)


def _scalar(value: Any) -> bool:
    """Whether a figure gets a table column: scalars and mean/std dicts."""
    if isinstance(value, Mapping):
        return "mean" in value and "std" in value
    return not isinstance(value, (list, tuple))


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    numeric = numeric or (isinstance(value, Mapping) and "mean" in value)
    css = ' class="num"' if numeric else ""
    return f"<td{css}>{_e(format_value(value))}</td>"


def _figure_cell(values: Mapping[str, Any] | None, key: str) -> str:
    """The cell of one figure; a nested value (shown elsewhere or not at all) reads ``-``."""
    value = (values or {}).get(key)
    return _cell(value if _scalar(value) else None)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of already rendered ``<td>`` cells under an escaped header."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(report: Mapping[str, Any]) -> str:
    """Creation time, version, reference, sets, encoder and judge."""
    items = []
    for key, label in (("created", "Created"), ("augtool", "augtool")):
        if report.get(key) is not None:
            items.append((label, _e(report[key])))
    reference = report.get("reference")
    if isinstance(reference, Mapping):
        text = f"{_e(reference.get('path', '?'))} ({_e(format_value(reference.get('rows')))} rows)"
        items.append(("Reference", text))
    for key, label in (("encoder", "Encoder"), ("judge", "Judge")):
        value = report.get(key)
        if isinstance(value, Mapping) and value:
            text = ", ".join(f"{_e(k)}: {_e(format_value(v))}" for k, v in value.items())
            items.append((label, text))
        elif value is not None:
            items.append((label, _e(value)))
    out = ["<dl>"] + [f"<dt>{label}</dt><dd>{text}</dd>" for label, text in items] + ["</dl>"]
    if isinstance(reference, Mapping) and isinstance(reference.get("labels"), Mapping):
        rows = [[f"<td>{_e(k)}</td>", _cell(v)] for k, v in reference["labels"].items()]
        out.append("<h3>Reference labels</h3>" + _table(["label", "rows"], rows))
    sets = report.get("sets") or []
    if sets:
        rows = []
        for entry in sets:
            methods = entry.get("methods") or {}
            shown = ", ".join(f"{k}: {format_value(v)}" for k, v in methods.items())
            rows.append(
                [
                    f"<td>{_e(entry.get('name', ''))}</td>",
                    f"<td>{_e(entry.get('path', ''))}</td>",
                    _cell(entry.get("rows")),
                    f"<td>{_e(shown)}</td>",
                ]
            )
        out.append("<h3>Augmented sets</h3>" + _table(["set", "path", "rows", "methods"], rows))
    return "\n".join(out)


def _check_section(name: str, check: Mapping[str, Any]) -> str:
    """The figures table of one check (plus the label check's per-method table)."""
    figures = check.get("figures") or {}
    out = [f"<h2>Check: {_e(name)}</h2>"]
    if not figures:
        out.append('<p class="muted">No figures.</p>')
        return "\n".join(out)
    columns: list[str] = []
    for values in figures.values():
        for key, value in (values or {}).items():
            if key not in columns and _scalar(value):
                columns.append(key)
    rows = [
        [f"<td>{_e(set_name)}</td>"] + [_figure_cell(values, c) for c in columns]
        for set_name, values in figures.items()
    ]
    out.append(_table(["set", *columns], rows))
    if name == "label":
        out.append(_by_method(figures))
    return "\n".join(out)


def _by_method(figures: Mapping[str, Any]) -> str:
    """The label check's figures per set and method."""
    rows = []
    columns: list[str] = []
    for values in figures.values():
        for stats in ((values or {}).get("by_method") or {}).values():
            for key, value in (stats or {}).items():
                if key not in columns and _scalar(value):
                    columns.append(key)
    for set_name, values in figures.items():
        for method, stats in ((values or {}).get("by_method") or {}).items():
            cells = [f"<td>{_e(set_name)}</td>", f"<td>{_e(method)}</td>"]
            rows.append(cells + [_figure_cell(stats, c) for c in columns])
    if not rows:
        return ""
    return "<h3>Label issues by method</h3>" + _table(["set", "method", *columns], rows)


def _gates(gates: Sequence[Mapping[str, Any]]) -> str:
    out = ["<h2>Gates</h2>"]
    if not gates:
        out.append('<p class="muted">No gates.</p>')
        return "\n".join(out)
    rows = [
        [
            f"<td>{_e(g.get('check', ''))}</td>",
            f"<td>{_e(g.get('set', ''))}</td>",
            _cell(g.get("value")),
            _cell(g.get("threshold")),
            f"<td>{_verdict(bool(g.get('passed')))}</td>",
        ]
        for g in gates
    ]
    out.append(_table(["check", "set", "value", "threshold", "result"], rows))
    return "\n".join(out)


def _short(text: Any, limit: int = TEXT_LIMIT) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _worst(name: str, check: Mapping[str, Any], limit: int) -> str:
    """Up to ``limit`` flagged rows of one check (label issues least confident first)."""
    flagged = list(check.get("flagged") or [])
    if not flagged or limit <= 0:
        return ""
    if name == "label":

        def confidence(row: Mapping[str, Any]) -> tuple[bool, float]:
            value = row.get("confidence")
            missing = not isinstance(value, (int, float)) or isinstance(value, bool)
            return (missing, 0.0 if missing else float(value))

        flagged.sort(key=confidence)  # stable: rows without a confidence keep their order
    shown = flagged[:limit]
    extra = [k for k in ("label", "confidence") if any(k in row for row in shown)]
    rows = [
        [
            f"<td>{_e(row.get('set', ''))}</td>",
            f"<td>{_e(row.get('id', ''))}</td>",
            f"<td>{_e(row.get('kind', ''))}</td>",
            f"<td>{_e(row.get('reason', ''))}</td>",
            *(_cell(row.get(k)) for k in extra),
            f'<td class="text">{_e(_short(row.get("text")))}</td>',
        ]
        for row in shown
    ]
    note = f" ({len(shown)} of {len(flagged)})" if len(flagged) > len(shown) else ""
    return f"<h3>{_e(name)}{_e(note)}</h3>" + _table(
        ["set", "id", "kind", "reason", *extra, "text"], rows
    )
