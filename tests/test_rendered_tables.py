"""Tables of figures in docs/ equal what their committed artefacts render to
(``benchmarks/render.py``), and every artefact says where and when it was measured."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from conftest import ROOT

SPEC = importlib.util.spec_from_file_location("render", ROOT / "benchmarks" / "render.py")
render = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(render)
DOCS = sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_rendered_tables_match_their_artefacts(doc) -> None:
    text = doc.read_text(encoding="utf-8")
    for name, body in render.blocks(text):
        assert name in render.RENDERERS, f"{doc.name}: unknown renderer {name!r}"
        assert body == render.RENDERERS[name](), (
            f"{doc.name}: the {name!r} table differs from its artefacts; "
            "run python benchmarks/render.py"
        )


def test_a_drifted_table_is_caught() -> None:
    text = (ROOT / "docs" / "llm.md").read_text(encoding="utf-8")
    assert render.blocks(text), "docs/llm.md has its performance table rendered"
    _, body = render.blocks(text)[0]
    drifted = text.replace(body, body.replace("**", "**1", 1))  # one figure edited by hand
    assert drifted != text and render.rendered(drifted) == text


def test_artefacts_name_machine_versions_and_date() -> None:
    files = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    assert files
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["benchmark"] == path.stem
        assert data["machine"]["cpus"] and data["machine"]["platform"]
        assert data["environment"]["augtool"] and data["environment"]["python"]
        assert len(data["date"]) == 20 and data["figures"]


# A measured figure: mean ± std, a time or a size with its unit, a ratio, a decimal percent.
MEASURED = re.compile(
    r"\d\s*±\s*\d|\d(?:\.\d+)?\s?(?:s|ms|min|GB|GiB|MB|MiB)\b|\d(?:\.\d+)?\s?×|\d\.\d+\s?%"
)


def hand_typed_figures(text: str) -> list[str]:
    """Table rows outside rendered blocks that hold a measured figure."""
    found, inside = [], False
    for line in text.splitlines():
        if line.startswith("<!-- rendered by"):
            inside = True
        elif line.startswith("<!-- end rendered"):
            inside = False
        elif not inside and line.lstrip().startswith("|") and MEASURED.search(line):
            found.append(line)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_no_table_of_figures_is_typed_by_hand(doc) -> None:
    rows = hand_typed_figures(doc.read_text(encoding="utf-8"))
    assert not rows, f"{doc.name}: table rows with figures not rendered from an artefact: {rows}"


def test_the_figure_check_catches_a_typed_table() -> None:
    typed = "| model | time |\n|---|---|\n| tiny | 0.101 s |\n| ratio | 4.3× |\n"
    assert len(hand_typed_figures(typed)) == 2
    settings = "| option | default |\n|---|---|\n| `--warmup` | 6% warm-up, lr 5e-5 |\n"
    assert hand_typed_figures(settings) == []
    rendered = "<!-- rendered by benchmarks/render.py: x -->\n" + typed + "<!-- end rendered -->\n"
    assert hand_typed_figures(rendered) == []


def test_paper_reference_figures_match_the_paper() -> None:
    reference = json.loads(
        (ROOT / "benchmarks/results/papers/inversedmixup-table1-trec.json").read_text("utf-8")
    )
    paper = ROOT.parent / reference["paper_file"]
    if not paper.is_file():
        pytest.skip(f"{paper} not found (the papers live beside the repository)")
    text = paper.read_text(encoding="utf-8")
    for method, columns in reference["accuracy"].items():
        row = next(line for line in text.splitlines() if line.startswith(method + "\t"))
        pairs = re.findall(r"([\d.]+)\s*\\pm\s*([\d.]+)", row)
        trec = pairs[4:8]  # Yahoo, TREC, AG News; K = 1, 5, 10, All each
        for (mean, std), key in zip(trec, ("1", "5", "10", "all"), strict=True):
            assert columns[key] == {"mean": float(mean), "std": float(std)}, (method, key)


def test_kept_bench_runs_name_machine_versions_and_date() -> None:
    runs = [p.parent for p in (ROOT / "benchmarks" / "results").glob("*/summary.json")]
    assert runs
    for run in runs:
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        assert summary["machine"]["cpus"] and summary["environment"]["augtool"]
        assert len(summary["date"]) == 20 and not summary["failed"]
        kept = {c.stem for c in (run / "cells").glob("*.json")}
        if summary.get("partial"):  # a stopped run: its missing cells are listed
            assert len(kept) == summary["ran"] and not kept & set(summary["missing"])
            assert len(kept) + len(summary["missing"]) == summary["cells"]
        else:
            assert len(kept) == summary["cells"]
        bench = (run / "bench.json").read_text(encoding="utf-8")
        assert str(ROOT) not in bench and "/tmp/" not in bench
