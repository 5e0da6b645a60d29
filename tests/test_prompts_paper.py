"""The built-in prompts marked verbatim are the papers' printed text, word for word.

Each verbatim template is filled with the words the paper prints where augtool has a
placeholder (TopEx writes *label* and *issue*, its HANS example 'entailment' and
/delim/...), and must then occur in the paper's text (whitespace-insensitive; the
asterisks of the PDF's italics ignored). Skipped where ../shared/papers is absent.
"""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from augtool.core.generation import prompts
from augtool.core.generation.prompts import PROMPTS

PAPERS = ROOT.parent / "shared" / "papers"

#: template id -> (paper file, the paper's words for each placeholder)
PRINTED = {
    "invmix.a2.llm-rew": ("inversedmixup.txt", {}),
    "invmix.a2.llm-gen": ("inversedmixup.txt", {}),
    "invmix.a2.llm-mix": ("inversedmixup.txt", {}),
    "invmix.a3.label": ("inversedmixup.txt", {}),
    "invmix.a4.intrusion-match": ("inversedmixup.txt", {}),
    "invmix.a4.intrusion-label": ("inversedmixup.txt", {}),
    "topex.s2.4.task": (
        "topex.txt",
        {"label": "*label*", "domain": "movie review", "issue": "*issue*"},
    ),
    "topex.b.pair-task": (
        "topex.txt",
        {
            "issue": "Theplay-the-the",
            "label": "entailment",
            "delimiter": "/delim/",
            "label_choices": "'entailment' and 'non-entailment'",
        },
    ),
    "pinr.b1.refine-gsm8k": ("pinr-text-condensation.txt", {}),
    "pinr.b1.refine-quora": ("pinr-text-condensation.txt", {}),
    "pinr.b1.refine-ag_news": ("pinr-text-condensation.txt", {}),
    "pinr.b1.refine-sst2": ("pinr-text-condensation.txt", {}),
}


def _normal(text: str) -> str:
    return " ".join(text.replace("*", " ").split())


def _paper(name: str) -> str:
    path = PAPERS / name
    if not path.exists():
        pytest.skip(f"{path} not available (the papers sit beside the repository in CI)")
    return _normal(path.read_text(encoding="utf-8"))


def _filled(template: prompts.PromptTemplate, words: dict[str, str]) -> str:
    values = {name: words.get(name, "{" + name + "}") for name in template.placeholders}
    return template.user.format(**values)


@pytest.mark.parametrize("template_id", sorted(PRINTED))
def test_verbatim_prompt_occurs_in_its_paper(template_id: str) -> None:
    template = PROMPTS[template_id]
    paper_file, words = PRINTED[template_id]
    assert template.verbatim and template.system is None
    assert "verbatim" in template.source
    assert _normal(_filled(template, words)) in _paper(paper_file)


def test_every_verbatim_prompt_is_checked_and_none_is_left_unmarked() -> None:
    verbatim = {t.id for t in PROMPTS.values() if t.verbatim}
    assert verbatim == set(PRINTED)
    # augtool's own wordings say so, and name the style that selects them
    for template in PROMPTS.values():
        if not template.verbatim:
            assert "augtool" in template.source or "LM-mixup" in template.source


def test_pinr_prefixes_and_topex_fewshot_frame_are_printed() -> None:
    pinr = _paper("pinr-text-condensation.txt")
    for prefix in prompts.PINR_PREFIXES.values():
        assert _normal(prefix) in pinr
    topex = _paper("topex.txt")
    assert _normal(prompts.TOPEX_FEWSHOT_PREAMBLE + " Task:") in topex
    # App. B: the open task is "Task: <task> Your answer:"
    pair = _filled(prompts.TOPEX_PAIR_TASK, PRINTED["topex.b.pair-task"][1])
    shot = prompts.TOPEX_FEWSHOT_SHOT.format(task=pair, answer="The artists")
    assert _normal(shot) in topex
    hyphen_free = re.sub(r"(\w)- (\w)", r"\1\2", topex)  # "sen- tence" across a line break
    opened = prompts.TOPEX_FEWSHOT_OPEN.format(
        task=pair.replace("Theplay-the-the", "The-play-the-the")
    )
    assert _normal(opened).replace("non-entailment", "nonentailment") in hyphen_free


def test_inversedmixup_label_descriptions_ship_verbatim() -> None:
    import json

    paper = _paper("inversedmixup.txt")
    shipped = {}
    for name in ("trec", "ag_news", "yahoo"):
        data = json.loads((ROOT / "examples" / "labels" / f"{name}.json").read_text())
        for key, value in data.items():
            text = value.get("text", key) if isinstance(value, dict) else key
            description = value["description"] if isinstance(value, dict) else value
            shipped[text] = description
    assert len(shipped) == 19  # A.3 lists 19 labels ("Sports" once)
    for text, description in shipped.items():
        assert f'"{text}": "{description}"' in paper


def test_builtin_prompts_render_with_every_placeholder() -> None:
    for template in PROMPTS.values():
        values = {name: f"<{name}>" for name in template.placeholders}
        messages = template.render(**values)
        assert messages[-1]["role"] == "user"
        assert all(f"<{name}>" in "".join(m["content"] for m in messages) for name in values)
        assert template.required <= template.placeholders
