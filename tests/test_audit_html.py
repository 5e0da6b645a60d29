"""The audit's HTML page (:mod:`augtool.audit.html`) and the plots it embeds: the
multi-group embedding map and the rate-by-lambda curve of :mod:`augtool.core.plotting`."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from augtool.audit.html import format_value, render_html
from augtool.core.plotting import MapGroup, group_map, group_map_html_div, rate_by_bin

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\nfake"


def _report() -> dict[str, Any]:
    label_flagged = [
        {
            "set": "eda",
            "id": f"r{i}",
            "kind": "label",
            "reason": "judge disagrees",
            "text": f"text {i}",
            "label": "LOC",
            "confidence": c,
        }
        for i, c in enumerate([0.5, 0.1, 0.9, 0.3, 0.05, 0.7])
    ]
    label_flagged.append(
        {
            "set": "mix<b>",
            "id": "evil",
            "kind": "label",
            "reason": "x",
            "text": "<script>alert(1)</script>" + "y" * 400,
            "label": "PER",
            "confidence": 0.01,
        }
    )
    return {
        "created": "2026-12-03T17:50:00Z",
        "augtool": "0.1",
        "reference": {"path": "train.jsonl", "rows": 500, "labels": {"LOC": 120, "PER": 380}},
        "sets": [
            {"name": "eda", "path": "eda.jsonl", "rows": 400, "methods": {"eda": 400}},
            {"name": "mix<b>", "path": "mix.jsonl", "rows": 40, "methods": {"invmix": 40}},
        ],
        "encoder": {"name": "tiny-st", "dim": 8},
        "judge": {"name": "cleanlab", "folds": 5},
        "checks": {
            "label": {
                "figures": {
                    "eda": {
                        "rows": 400,
                        "issues": 12,
                        "rate": 0.03,
                        "fidelity": 0.97,
                        "by_method": {"eda": {"rows": 400, "issues": 12, "rate": 0.03}},
                        "by_lambda": [{"lambda": [0.0, 0.1], "rows": 10, "issues": 1, "rate": 0.1}],
                    },
                    "mix<b>": {"rows": 40, "issues": 20, "rate": 0.5, "fidelity": 0.5},
                },
                "flagged": label_flagged,
            },
            "diversity": {
                "figures": {
                    "eda": {
                        "distinct_1": 0.123456789,
                        "self_bleu": 0.4,
                        "novelty": {"mean": {"a": 1.0}, "nested": {"b": 2.0}},
                    }
                },
                "flagged": [
                    {"set": "eda", "id": f"d{i}", "kind": "copy", "reason": "r", "text": "t"}
                    for i in range(5)
                ],
            },
            "distribution": {
                "figures": {
                    "eda": {
                        "fid": 0.1,
                        "kl": {"mean": 0.25, "std": 0.01, "values": [0.24, 0.26]},
                        "mauve": None,
                    }
                },
                "flagged": [],
            },
        },
        "gates": [
            {"check": "label", "set": "eda", "value": 0.97, "threshold": 0.9, "passed": True},
            {"check": "label", "set": "mix<b>", "value": 0.5, "threshold": 0.9, "passed": False},
        ],
        "passed": False,
    }


def test_render_html_tables_escaping_and_worst_rows() -> None:
    page = render_html(_report(), worst=3)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "eda" in page and "mix&lt;b&gt;" in page and "mix<b>" not in page
    # a table per present check (duplicates skipped), plus the label check's per-method table
    for check in ("label", "diversity", "distribution"):
        assert f"<h2>Check: {check}</h2>" in page
    assert "Check: duplicates" not in page
    assert "<h3>Label issues by method</h3>" in page
    assert "0.1235" in page  # 4 significant digits
    assert "0.25 ± 0.01" in page  # mean ± std
    assert "<th>novelty</th>" not in page and "<th>by_lambda</th>" not in page
    # escaped text, shortened
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "y" * 300 not in page
    # worst rows: capped, label rows least confident first
    worst = page[page.index("<h2>Worst rows</h2>") :]
    label_part = worst[: worst.index("<h3>diversity")]
    ids = re.findall(r"<td>(r\d|evil)</td>", label_part)
    assert ids == ["evil", "r4", "r1"]
    assert "(3 of 7)" in label_part
    assert len(re.findall(r"<td>d\d</td>", worst)) == 3
    # gates: one fails, and so does the whole
    gates = page[page.index("<h2>Gates</h2>") : page.index("<h2>Worst rows</h2>")]
    assert 'class="fail">FAIL' in gates and 'class="pass">PASS' in gates
    assert 'Overall: <span class="fail">FAIL</span>' in page
    # self-contained
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "Embedding map" not in page


def test_render_html_embeds_figures() -> None:
    page = render_html(_report(), map_png=PNG, curve_png=PNG + b"2")
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page
    assert base64.b64encode(PNG + b"2").decode() in page
    assert "http://" not in page and "https://" not in page
    div = '<div id="map">plot</div>'
    page = render_html(_report(), map_div=div, map_png=PNG)
    assert div in page and base64.b64encode(PNG).decode() not in page


def test_render_html_minimal_report() -> None:
    page = render_html({"checks": {}, "gates": []})
    assert "No gates." in page and "Check:" not in page and "Worst rows" not in page


def test_format_value() -> None:
    assert format_value(0.000123456) == "0.0001235"
    assert format_value(3) == "3" and format_value(None) == "-" and format_value(True) == "yes"
    assert format_value({"mean": 1.23456, "std": 0.5}) == "1.235 ± 0.5"


def _groups(with_texts: bool = False) -> list[MapGroup]:
    rng = np.random.default_rng(0)
    sizes = {"reference": 12, "eda": 6, "mix": 4}
    return [
        MapGroup(
            name,
            rng.normal(size=(n, 5)),
            [("a", "b", None)[i % 3] for i in range(n)],
            [f"<{name} {i}>" for i in range(n)] if with_texts else None,
        )
        for name, n in sizes.items()
    ]


def test_group_map_png(tmp_path: Path) -> None:
    path = tmp_path / "maps" / "map.png"
    drawn = group_map(_groups(), path, title="three groups")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn["legend"] == ["reference", "eda", "mix"]
    assert drawn["points"] == {"reference": 12, "eda": 6, "mix": 4}
    assert drawn["rows"] == drawn["points"] and drawn["projection"] == "pca"
    assert drawn["path"] == str(path)
    with pytest.raises(ValueError, match="distinct"):
        group_map([*_groups(), _groups()[0]], path, title="t")


def test_group_map_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from augtool.core import plotting

    monkeypatch.setattr(plotting, "MAX_POINTS", 5)
    drawn = group_map(_groups(), tmp_path / "m.svg", title="t")
    assert drawn["points"] == {"reference": 5, "eda": 5, "mix": 4}
    assert drawn["rows"] == {"reference": 12, "eda": 6, "mix": 4}
    assert "5 of 12, 5 of 6, 4 of 4 shown" in (tmp_path / "m.svg").read_text()


def test_group_map_html_and_div(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    path = tmp_path / "map.html"
    drawn = group_map(_groups(with_texts=True), path, title="t")
    page = path.read_text()
    for name in ("reference", "eda", "mix"):
        assert f'"name":"{name}: a"' in page
    assert drawn["points"]["mix"] == 4
    assert '"symbol":"triangle-up"' not in page  # three groups: circle, x, cross
    assert '"symbol":"cross"' in page and '"symbol":"x"' in page
    div = group_map_html_div(_groups(with_texts=True), title="t")
    assert "<div" in div and "plotly" in div and "<html" not in div
    assert "&lt;mix 0&gt;" in div  # hover texts escaped
    page = render_html({"checks": {}}, map_div=div)
    assert div in page


def test_rate_by_bin(tmp_path: Path) -> None:
    series = {
        "invmix": [
            {"lambda": [0.0, 0.1], "rows": 10, "issues": 1, "rate": 0.1},
            {"lambda": [0.1, 0.2], "rows": 0, "issues": 0, "rate": None},
            {"lambda": [0.4, 0.5], "rows": 5, "issues": 2, "rate": 0.4},
        ],
        "other": [],
    }
    path = rate_by_bin(
        series, tmp_path / "c" / "curve.png", title="t", xlabel="lambda", ylabel="rate"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
