"""Tables of figures in docs/ equal what their committed artefacts render to
(``benchmarks/render.py``), and every artefact says where and when it was measured."""

from __future__ import annotations

import importlib.util
import json

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
