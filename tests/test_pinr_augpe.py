"""The Aug-PE baseline (``pinr condense --method aug-pe``): nearest-neighbour voting and
selection on hand-made vectors, one evolution with a scripted LLM and encoder, and the
command end to end against the stub OpenAI server and a tiny local LLM."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl

from augtool.core.generation.base import LLM
from augtool.core.generation.params import GenerationParams
from augtool.methods.pinr.augpe import (
    PESettings,
    evolve,
    mask_words,
    nearest_votes,
    privatize,
    select_by_votes,
)
from augtool.testing.stub_openai import Reply, StubOpenAIServer


class FunctionStub(StubOpenAIServer):
    """The stub OpenAI server, answering each chat request with ``answer(message, n)``,
    where ``n`` counts the earlier requests with the same message."""

    def __init__(self, answer: Callable[[str, int], str]) -> None:
        super().__init__()
        self.answer = answer
        self.seen: Counter[str] = Counter()

    def _next_action(self, message: str) -> Reply:
        with self._lock:
            n = self.seen[message]
            self.seen[message] += 1
        return Reply(self.answer(message, n))


def test_every_real_row_votes_for_its_nearest_sample_and_the_most_voted_are_kept() -> None:
    synthetic = np.array([[1.0, 0], [0, 1], [-1, 0], [0.7, 0.7]])
    real = np.array(
        [
            [0.9, 0.1],  # nearest (cosine) sample 0
            [0.6, 0.8],  # sample 3: cos .99 against sample 1's .8
            [0.1, 0.9],  # sample 1
            [-0.8, 0.1],  # sample 2
            [0.95, -0.05],  # sample 0
        ]
    )
    counts = nearest_votes(real, synthetic)
    assert counts.tolist() == [2, 1, 1, 1]
    assert nearest_votes(real * 10, synthetic).tolist() == [2, 1, 1, 1]  # cosine, not L2
    rng = np.random.default_rng(0)
    assert privatize(counts, 0.0, 0.0, rng).tolist() == [2, 1, 1, 1]  # no noise by default
    assert select_by_votes(counts, 2) == [0, 1]  # ties go to the earlier sample
    assert select_by_votes(np.array([0, 3, 1, 3]), 3) == [1, 3, 2]
    # a threshold zeroes small counts and shifts the rest down
    assert privatize(counts, 0.0, 1.0, rng).tolist() == [1, 0, 0, 0]
    # Gaussian noise of scale sigma, from the given generator
    noisy = privatize(counts, 2.0, 0.0, np.random.default_rng(7))
    expected = np.clip(counts + np.random.default_rng(7).normal(size=4) * 2.0, 0, None)
    assert noisy == pytest.approx(expected)


def test_mask_words_is_seeded() -> None:
    text = "one two three four five six seven eight"
    a = mask_words(text, 0.5, np.random.default_rng(3))
    assert a == mask_words(text, 0.5, np.random.default_rng(3))
    words = a.split()
    assert len(words) == 8 and 0 < words.count("_") < 8
    assert all(w == "_" or w == o for w, o in zip(words, text.split(), strict=True))


class TableLLM(LLM):
    """Replies by table, keyed on the last line of the prompt."""

    scheme = "table"

    def __init__(self, table: dict[str, str]) -> None:
        super().__init__("table", cache=False)
        self.table = table
        self.asked: list[str] = []

    def generate_batch(self, prompts, params, seeds):  # noqa: ANN001, ANN201
        keys = [p[-1]["content"].splitlines()[-1] for p in prompts]
        self.asked.extend(keys)
        return [self.table.get(k, self.table["*"]) for k in keys]


class TableEncoder:
    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def encode(self, texts):  # noqa: ANN001, ANN201
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_one_evolution_worked_by_hand() -> None:
    """M = 1, k = 1, T = 2. RANDOM_API writes A; its variation B joins it. t=1: the real
    row is nearer B, so B is kept and varied into C. t=2: C is nearer still: the output
    is C (a variation born at t=1), after 1 + T*M*k = 3 requests."""
    llm = TableLLM({"*": "A", "A": "B", "B": "C", "C": "D"})
    encoder = TableEncoder({"A": [1, 0], "B": [0.6, 0.8], "C": [0.1, 1], "D": [-1, 0]})
    settings = PESettings(iterations=2, variations=1, variation="rephrase", topic="note")
    result = evolve(
        "x",
        np.array([[0.0, 1.0]]),
        1,
        label_text="spam",
        description="junk mail",
        llm=llm,
        encoder=encoder,
        params=GenerationParams(),
        settings=settings,
    )
    (chosen,) = result.selected
    assert chosen.sample.text == "C" and chosen.sample.origin == "variation"
    assert chosen.sample.born == 1 and chosen.votes == 1
    assert result.requests == 3 and llm.asked == [
        'Write one new note whose label is "spam" (junk mail). Reply with the note only.',
        "A",
        "B",
    ]
    assert [h["population"] for h in result.history] == [2, 2]


@pytest.fixture(scope="module")
def intents(tmp_path_factory) -> Path:
    """16 rows, 4 per label."""
    rows = read_jsonl(EXAMPLES / "intents-train.jsonl")
    picked = [
        r
        for label in ("billing", "shipping", "account", "technical")
        for r in [x for x in rows if x["label"] == label][:4]
    ]
    return write_jsonl(tmp_path_factory.mktemp("augpe") / "intents.jsonl", picked)


def fill_blanks(message: str, n: int) -> str:
    """Random samples by label; blank-fill variations fill each _ with a word."""
    found = re.search(r'whose label is "(\w+)"', message)
    label = found[1] if found else "none"
    if message.startswith("Write one new"):
        return f"a {label} request number {n} about my order"
    masked = message.rsplit("\n\n", 1)[1]
    return masked.replace("_", f"w{n}")


def test_aug_pe_through_the_cli_resumes_with_the_missing_requests_only(
    intents: Path, tiny_model_store, tmp_path: Path
) -> None:
    out = tmp_path / "augpe.jsonl"
    args = (
        "pinr",
        "condense",
        intents,
        "--m",
        8,
        "--method",
        "aug-pe",
        "--encoder",
        tiny_model_store["st"],
        "--pe-iterations",
        2,
        "--pe-variations",
        2,
        "--concurrency",
        1,
        "-o",
        out,
    )
    with FunctionStub(fill_blanks) as stub:
        llm = ("--refine-llm", "openai:stub", "--base-url", stub.base_url)
        first = run_cli(*args, *llm, "--max-requests", 15)
        assert first.exit_code == 3, first.stderr
        assert "rerun the same command" in first.stderr
        partial = read_jsonl(out.with_name("augpe.jsonl.partial"))
        assert [r["label"] for r in partial] == ["billing", "billing"]  # a label at a time
        assert len(stub.requests) == 15
        second = run_cli(*args, *llm)
        assert second.exit_code == 0, second.stderr
    # per label M_c + T * M_c * k = 2 + 2 * 2 * 2 = 10 requests, 40 in all: the rerun
    # replayed the cached ones and asked only for the rest
    assert len(stub.requests) == 40
    rows = read_jsonl(out)
    assert len(rows) == 8 and len({r["id"] for r in rows}) == 8
    assert Counter(r["label"] for r in rows) == {
        "billing": 2,
        "shipping": 2,
        "account": 2,
        "technical": 2,
    }
    for label in ("billing", "shipping", "account", "technical"):
        mine = [r for r in rows if r["label"] == label]
        votes = [r["aug"]["votes"] for r in mine]
        assert votes == sorted(votes, reverse=True) and sum(votes) <= 4  # rank selection
        for row in mine:  # a random sample as written, or a blank-filled copy of one
            if row["aug"]["origin"] == "random":
                assert re.fullmatch(rf"a {label} request number \d+ about my order", row["text"])
            assert len(row["text"].split()) == 8
    aug = rows[0]["aug"]
    assert aug["method"] == "aug-pe" and aug["voters"] == 4 and aug["parents"] == []
    assert aug["noise_multiplier"] == 0.0 and aug["iterations"] == 2
    assert aug["variation"] == "blank-fill" and aug["origin"] in ("random", "variation")
    meta = json.loads(out.with_name("augpe.jsonl.meta.json").read_text())
    assert meta["aug_pe"]["technical"]["requests"] == 10
    assert [p["id"] for p in meta["prompts"]] == [
        "augtool.aug-pe.random",
        "augtool.aug-pe.blank-fill",
    ]
    sent = [r["body"]["messages"][-1]["content"] for r in stub.requests]
    assert sum(s.startswith("Write one new text whose label is") for s in sent) == 8
    # no real row is ever shown to the LLM
    real = [r["text"] for r in read_jsonl(intents)]
    assert not any(text in s for text in real for s in sent)


def test_aug_pe_with_a_local_llm_and_qa_rows(
    intents: Path, tiny_model_store, tiny_llama: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pe-hf.jsonl"
    encoder = ("--encoder", tiny_model_store["st"])
    result = run_cli(
        "pinr",
        "condense",
        intents,
        "--m",
        4,
        "--method",
        "aug-pe",
        *encoder,
        "--pe-iterations",
        1,
        "--pe-variations",
        1,
        "--pe-variation",
        "rephrase",
        "--refine-llm",
        f"hf:{tiny_llama}",
        "--max-new-tokens",
        8,
        "-o",
        out,
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert sorted(r["label"] for r in rows) == ["account", "billing", "shipping", "technical"]
    assert all(r["text"].strip() and r["aug"]["variation"] == "rephrase" for r in rows)

    data = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": f"{i}+{i}={2 * i}"}
            for i in range(6)
        ],
    )
    common = (*encoder, "--no-class-wise", "--pe-iterations", 1)
    qa = ("--question-field", "question", "--answer-field", "answer")

    def qa_reply(message: str, n: int) -> str:
        if message.startswith("Write one new"):
            return f"Q: *What is {n} times two?* A: *{2 * n}*"
        question, answer = re.search(r"Q: (.*) A: (.*)$", message).groups()
        return f"Q: {question} Really? A: {answer.replace('_', 'x')}"

    out = tmp_path / "pe-qa.jsonl"
    with FunctionStub(qa_reply) as stub:
        result = run_cli(
            "pinr",
            "condense",
            data,
            "--m",
            2,
            "--method",
            "aug-pe",
            *common,
            *qa,
            "--refine-llm",
            "openai:stub",
            "--base-url",
            stub.base_url,
            "-o",
            out,
        )
        assert result.exit_code == 0, result.stderr
        first = stub.requests[0]["body"]["messages"][-1]["content"]
    assert first.startswith("Write one new text as a question and its answer.")
    rows = read_jsonl(out)
    assert len(rows) == 2
    for row in rows:
        assert set(row) == {"id", "question", "answer", "aug"}
        assert "[SEP]" not in row["question"] + row["answer"]
        assert row["question"].strip() and row["answer"].strip() and row["aug"]["sep_found"]


def test_aug_pe_errors(intents: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    result = run_cli("pinr", "condense", intents, "--m", 4, "--method", "aug-pe", "-o", out)
    assert_one_line_error(result, "--refine-llm", "aug-pe")
    result = run_cli(
        "pinr",
        "condense",
        intents,
        "--m",
        4,
        "--method",
        "aug-pe",
        "--refine-llm",
        "openai:m",
        "--pe-variation",
        "swap",
        "-o",
        out,
    )
    assert_one_line_error(result, "--pe-variation", "blank-fill, rephrase")
    assert not out.exists()
