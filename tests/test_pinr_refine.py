"""PInR's Algorithm 1 (appendix A.2) driven by a scripted LLM and a scripted encoder, the
refinement prompts and prefixes of appendix B.1, and Q&A rows ([SEP], appendix A.1)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from augtool.core.generation.base import LLM
from augtool.core.generation.jobs import ReplyRejected
from augtool.core.generation.params import Failure, GenerationParams
from augtool.core.generation.prompts import (
    PINR_PREFIX_SOURCE,
    PINR_PREFIXES,
    PINR_REFINE,
    PromptTemplate,
)
from augtool.errors import OptionError
from augtool.methods.pinr.prompting import (
    prefix_named,
    read_reply,
    refine_template,
    refine_values,
    resolve_prefix,
)
from augtool.methods.pinr.qa import join_qa, parse_qa_reply, split_qa
from augtool.methods.pinr.refine import refine, top_k

PARAMS = GenerationParams(max_new_tokens=8, temperature=0.0)
# The candidate text sits between the markers, so the scripted LLM can find it.
TEMPLATE = PromptTemplate(id="test", user="[{category}] <<{text}>>")


def unit(cosine: float) -> np.ndarray:
    """A 2-d unit vector whose cosine to (1, 0) is ``cosine``."""
    return np.array([cosine, math.sqrt(max(0.0, 1 - cosine**2))], dtype=np.float32)


class ScriptedEncoder:
    """ψ by table: each text has a hand-made vector."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def encode(self, texts):  # noqa: ANN001, ANN201
        self.calls.append(list(texts))
        return np.stack([self.vectors[t] for t in texts])


class ScriptedLLM(LLM):
    """Answers the i-th request about a text with the i-th scripted variant of that text
    (variants are asked v = 0..L-1 in order); a ``None`` variant is a failed request."""

    scheme = "scripted"

    def __init__(self, script: dict[str, list[str | None]]) -> None:
        super().__init__("scripted", cache=False)
        self.script = script
        self.asked: list[str] = []  # the seed text of every request, in order
        self.prompts: list[str] = []
        self.seeds: list[int] = []
        self._count: dict[str, int] = {}

    def generate_batch(self, prompts, params, seeds):  # noqa: ANN001, ANN201
        out = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            content = prompt[-1]["content"]
            text = content.split("<<", 1)[1].rsplit(">>", 1)[0]
            self.asked.append(text)
            self.prompts.append(content)
            self.seeds.append(seed)
            i = self._count.get(text, 0)
            self._count[text] = i + 1
            reply = self.script[text][i % len(self.script[text])]
            out.append(Failure("scripted failure") if reply is None else reply)
        return out


# One particle e = (1, 0); the cosine of each text to it, worked out by hand below.
COSINES = {
    "decoded": 1.0,  # the decoded text is the closest of all, yet never the output
    "a": 0.9, "b": 0.5, "c": 0.7,  # round t=0: variants of the decoded text
    "a1": 0.6, "a2": 0.95, "a3": 0.1,  # round t=1: variants of a
    "c1": 0.8, "c2": 0.3, "c3": 0.99,  # ... and of c
    "x1": 0.2, "x2": 0.85, "x3": 0.4,  # round t=2: variants of c3
    "y1": 0.5, "y2": 0.7, "y3": 0.1,  # ... and of a2
    "lost": 0.1, "m": 0.9, "n": 0.2, "o": 0.3,  # a second particle's texts
}  # fmt: skip
SCRIPT: dict[str, list[str | None]] = {
    "decoded": ["a", "b", "c"],
    "a": ["a1", "a2", "a3"],
    "c": ["c1", "c2", "c3"],
    "c3": ["x1", "x2", "x3"],
    "a2": ["y1", "y2", "y3"],
    "b": ["unused"],
}


def run(script, *, variants=3, keep=2, rounds=2, decoded=("decoded",), llm=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
    encoder = ScriptedEncoder({t: unit(c) for t, c in COSINES.items()})
    llm = llm or ScriptedLLM(script)
    results = refine(
        [f"p{i}" for i in range(len(decoded))],
        [np.array([1.0, 0.0])] * len(decoded),
        list(decoded),
        ["Sports"] * len(decoded),
        llm=llm,
        encoder=encoder,
        template=TEMPLATE,
        params=PARAMS,
        variants=variants,
        keep=keep,
        rounds=rounds,
        **kwargs,
    )
    return results, llm


def test_algorithm_1_as_printed_worked_by_hand() -> None:
    """L = 3, K = 2, T = 2. t=0: the decoded text gives a .9, b .5, c .7 -> S_1 = {a, c}.
    t=1: a gives a1 .6, a2 .95, a3 .1; c gives c1 .8, c2 .3, c3 .99 -> S_2 = {c3, a2}.
    t=2 (= T): c3 gives x1 .2, x2 .85, x3 .4; a2 gives y1 .5, y2 .7, y3 .1 -> x2.
    The output is x2 (.85), although a2 (.95), c3 (.99) and the decoded text (1.0) were
    closer: Algorithm 1 keeps only variants, and the last round picks the output."""
    (result,), llm = run(SCRIPT)
    assert result.text == "x2" and result.cosine == pytest.approx(0.85, abs=1e-6)
    assert result.decoded == "decoded" and result.decoded_cosine == pytest.approx(1.0)
    # which texts seeded each round, in order, each asked L = 3 times
    assert llm.asked == ["decoded"] * 3 + ["a"] * 3 + ["c"] * 3 + ["c3"] * 3 + ["a2"] * 3
    # L + T*K*L = 3 + 2*2*3 = 15 requests
    assert result.requests == len(llm.asked) == 3 + 2 * 2 * 3
    assert [r["seeds"] for r in result.rounds] == [1, 2, 2]
    assert [r["requests"] for r in result.rounds] == [3, 6, 6]
    assert result.rounds[0]["cosines"] == pytest.approx([0.9, 0.5, 0.7], abs=1e-6)
    assert result.rounds[0]["kept"] == pytest.approx([0.9, 0.7], abs=1e-6)
    assert result.rounds[1]["kept"] == pytest.approx([0.99, 0.95], abs=1e-6)
    assert "kept" not in result.rounds[2]
    assert result.failures == 0 and not result.failed
    # every request has its own seed; the prompt shows the label text as {category}
    assert len(set(llm.seeds)) == 15
    assert llm.prompts[0] == "[Sports] <<decoded>>"


def test_t_zero_is_one_round_and_k_one_keeps_the_best() -> None:
    (single,), llm = run(SCRIPT, rounds=0)
    assert single.text == "a" and single.requests == 3 and llm.asked == ["decoded"] * 3
    (paper,), llm = run(SCRIPT, keep=1, rounds=1)  # the paper's L = 3, K = 1, T = 1
    assert llm.asked == ["decoded"] * 3 + ["a"] * 3
    assert paper.text == "a2" and paper.requests == 3 + 1 * 1 * 3


def test_several_particles_go_out_together_and_failures_are_kept_apart() -> None:
    script = dict(SCRIPT)
    script["lost"] = ["m", "n", "o"]
    script["m"] = [None]  # every variant of the kept seed fails
    script["n"] = ["unused"]
    results, llm = run(script, keep=1, rounds=1, decoded=("decoded", "lost"))
    ok, lost = results
    assert ok.text == "a2" and not ok.failed
    assert lost.failed and lost.text is None and lost.cosine is None
    assert lost.error.startswith("round t=1: all 3 variants failed (scripted failure)")
    assert lost.failures == 3 and lost.requests == 6
    # round t=0 of both particles went out before round t=1 of either
    assert llm.asked[:6] == ["decoded"] * 3 + ["lost"] * 3
    # a later attempt asks again with other seeds
    _, again = run(script, keep=1, rounds=1, decoded=("decoded", "lost"), attempts={"p1": 1})
    assert again.seeds[:3] == llm.seeds[:3] and again.seeds[3:6] != llm.seeds[3:6]


def test_partly_failed_rounds_continue_with_what_came_back() -> None:
    script = dict(SCRIPT)
    script["decoded"] = [None, "b", "c"]
    (result,), llm = run(script, keep=1, rounds=1)
    assert result.rounds[0]["failed"] == 1 and result.rounds[0]["variants"] == 2
    assert llm.asked[3:] == ["c"] * 3 and result.text == "c3"


def test_without_an_llm_the_decoded_text_is_scored() -> None:
    encoder = ScriptedEncoder({"decoded": unit(0.4)})
    (result,) = refine(
        ["p"],
        [np.array([1.0, 0.0])],
        ["decoded"],
        [None],
        llm=None,
        encoder=encoder,
        template=TEMPLATE,
        params=PARAMS,
    )
    assert result.text == "decoded" and result.cosine == pytest.approx(0.4, abs=1e-6)


def test_top_k_prefers_distinct_texts() -> None:
    assert top_k(["a", "a", "b"], [0.9, 0.9, 0.1], 2) == [0, 2]
    assert top_k(["a", "b"], [0.5, 0.5], 1) == [0]


def test_refinement_prompts_are_the_papers_with_every_placeholder_filled() -> None:
    values = refine_values("the stocks fell", "Business", qa=False)
    ag = PINR_REFINE["ag_news"].render(**values)[-1]["content"]
    assert "reads like a professional Business news report" in ag
    assert ag.endswith("Input Text: the stocks fell")
    sst = PINR_REFINE["sst2"].render(**refine_values("a fine film", "positive", qa=False))
    assert "convey a positive sentiment" in sst[-1]["content"]
    assert sst[-1]["content"].endswith("Input Sentence: a fine film")
    qa = refine_values(join_qa("What is 2+2?", "4"), None, qa=True)
    gsm = PINR_REFINE["gsm8k"].render(**qa)[-1]["content"]
    assert gsm.endswith("Input Q: What is 2+2? Input A: 4")
    generic = PINR_REFINE["generic"].render(**values)[-1]["content"]
    assert "minimal changes (label: Business)." in generic
    assert refine_template("ag_news") is PINR_REFINE["ag_news"]


def test_prompt_files_are_checked_against_the_slot_they_replace(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("Fix this {category} Q&A. Q: {question} A: {answer}")
    assert refine_template("gsm8k", good, qa=True).placeholders == {
        "category",
        "question",
        "answer",
    }
    missing = tmp_path / "missing.txt"
    missing.write_text("Fix this: {question}")
    with pytest.raises(
        OptionError, match=r"--prompt-file: .*must use the placeholder\(s\) \{answer\}"
    ):
        refine_template("gsm8k", missing, qa=True)
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("Polish {text} for {audience}")
    with pytest.raises(OptionError, match=r"unknown placeholder\(s\) \{audience\}"):
        refine_template("ag_news", unknown)
    with pytest.raises(OptionError, match="--dataset-prompt: gsm8k refines Q&A pairs"):
        refine_template("gsm8k")


def test_prefixes_by_name_or_literal() -> None:
    named = resolve_prefix("ag_news")
    assert named.text == PINR_PREFIXES["ag_news"] + " " and named.name == "ag_news"
    assert named.describe()["source"] == PINR_PREFIX_SOURCE
    literal = resolve_prefix("Classify: ")
    assert literal.text == "Classify: " and literal.name is None
    assert resolve_prefix(None) is None
    assert prefix_named(PINR_PREFIXES["sst2"] + " ").name == "sst2"


def test_sep_join_split_and_reply_parsing() -> None:
    text = join_qa("How many? ", " 5 apples\n#### 5")
    assert text == "How many? [SEP] 5 apples\n#### 5"
    assert split_qa(text) == ("How many?", "5 apples\n#### 5", True)
    assert split_qa("no separator here") == ("no separator here", "", False)
    assert split_qa("q [sep] a")[2]  # tolerant of case and spacing
    assert parse_qa_reply("Q: *How many?* A: *5 apples*") == ("How many?", "5 apples")
    assert parse_qa_reply("**Q:** How many?\n**A:** 2 + 3 = 5\n#### 5") == (
        "How many?",
        "2 + 3 = 5\n#### 5",
    )
    assert parse_qa_reply("How many? [SEP] 5") == ("How many?", "5")
    for bad in ("just some text", "Q: only a question A: "):
        with pytest.raises(ReplyRejected):
            parse_qa_reply(bad)
    assert read_reply("Q: a? A: b", qa=True) == "a? [SEP] b"
    assert read_reply('Rewritten text: "fine"', qa=False) == "fine"
