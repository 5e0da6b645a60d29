"""lmmixup rate (the public code's rubric, ratings compressed to 0-5, unreadable replies
counted and never guessed), the rated bank that --quality knn requires, and the bad input
around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import read_jsonl, write_jsonl

from augtool.methods.lmmixup.rating import parse_rating, rate_prompt
from augtool.methods.lmmixup.schema import Sample
from augtool.testing.stub_openai import Reply, StubOpenAIServer

pytestmark = pytest.mark.usefixtures("one_thread")

CLEAN = [
    {"id": f"c{i}", "question": q, "answer": a}
    for i, (q, a) in enumerate(
        [
            ("How many legs do three spiders have?", "Each has 8, so 3 * 8 = 24."),
            ("What is 15% of 80?", "0.15 * 80 = 12."),
            ("A train covers 120 km in 2 hours. Speed?", "120 / 2 = 60 km/h."),
            ("Name the capital of Peru.", "Lima."),
        ]
    )
]


def test_the_rubric_is_the_public_codes_word_for_word() -> None:
    sample = Sample("x", "qa", {"question": "2+2?", "answer": "4"})
    # data_process/gpt_rating.py: f"{build_rubric('qa')}\n\n### Output:\n{text}\n\n### Rating:"
    rubric = (
        "You are a data-quality estimator. Rate this **single** QA pair on "
        "Rarity, Complexity, Informativeness, and Overall (1-10 integers).\n"
        "Return ONLY a JSON object like:\n"
        '{ "Rarity": <int>, "Complexity": <int>, "Informativeness": <int>, '
        '"Overall rating": <int> }\n\n'
        "### QA Pair:\n"
    )
    expected = f"{rubric}\n\n### Output:\nQ: 2+2?\nA: 4\n\n### Rating:"
    assert rate_prompt(sample) == [{"role": "user", "content": expected}]


def test_parse_rating_compresses_like_the_public_code_and_never_guesses() -> None:
    reply = 'Sure: {"Rarity": 6, "Complexity": 5, "Informativeness": 7, "Overall rating": 8}'
    assert parse_rating(reply) == {
        "Rarity": 6, "Complexity": 5, "Informativeness": 7, "Overall": 8, "Overall_compressed": 4,
    }  # fmt: skip
    compressed = {
        o: parse_rating(f'{{"Overall": {o}}}')["Overall_compressed"] for o in range(1, 11)
    }
    assert compressed == {1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 2, 7: 3, 8: 4, 9: 5, 10: 5}
    for bad in ("no rating here", '{"Rarity": 5}', '{"Overall rating": 11}', '{"Overall": "high"}'):
        assert parse_rating(bad) is None, bad


def test_rate_writes_a_bank_that_knn_reads_and_cosine_is_asked_by_name(
    tmp_path: Path, tiny_model_store, tiny_llama: Path
) -> None:
    clean = write_jsonl(tmp_path / "clean.jsonl", CLEAN)
    bank = tmp_path / "bank.jsonl"
    replies = ['{"Overall rating": 9}', "I cannot rate this.", '{"Overall rating": 7}',
               '{"Rarity": 2, "Overall": 3}']  # fmt: skip
    args = ("lmmixup", "rate", clean, "-o", bank, "--judge", "openai:stub", "--concurrency", 1)
    with StubOpenAIServer() as server:
        server.script(*[Reply(r) for r in replies])
        result = run_cli(*args, "--base-url", server.base_url)
        assert result.exit_code == 0, result.stderr
        assert "1 samples got no readable rating" in result.stderr
        assert len(server.requests) == 4
        first = server.requests[0]["body"]["messages"]
        assert first[0]["content"].startswith("You are a data-quality estimator.")
        # A rerun asks nothing already answered (the cache) and writes the same bank.
        again = run_cli(*args, "--base-url", server.base_url, "--overwrite")
        assert again.exit_code == 0, again.stderr
        assert len(server.requests) == 4
    rows = read_jsonl(bank)
    assert [(r["id"], r["rating"]) for r in rows] == [("c0", 5), ("c2", 3), ("c3", 0)]
    assert rows[0]["rating_detail"]["Overall"] == 9 and rows[0]["rated_by"] == "openai:stub"
    failed = read_jsonl(tmp_path / "bank.jsonl.failed.jsonl")
    assert [f["id"] for f in failed] == ["c1"] and "not guessed" in failed[0]["error"]
    meta = json.loads((tmp_path / "bank.jsonl.meta.json").read_text())
    assert meta["counts"]["rated"] == 3 and meta["counts"]["no_rating"] == 1

    # distill reads the rated bank with the Bayesian k-NN (the default quality scorer)
    out = tmp_path / "d.jsonl"
    common = ("lmmixup", "distill", clean, "--model", tiny_llama, "--device", "cpu",
              "--max-new-tokens", 8, "--encoder", tiny_model_store["st"])  # fmt: skip
    result = run_cli(*common, "-o", out, "--quality-bank", bank)
    assert result.exit_code == 0, result.stderr
    quality = json.loads((tmp_path / "d.jsonl.meta.json").read_text())["models"]["quality"]
    assert quality["scorer"] == "knn" and quality["rated"] and quality["bank_size"] == 3
    # an unrated bank is refused for knn, and accepted when cosine is asked for by name
    assert_one_line_error(
        run_cli(*common, "-o", out, "--overwrite", "--quality-bank", clean),
        "clean.jsonl",
        "has no ratings",
        "--quality cosine",
    )
    result = run_cli(
        *common, "-o", out, "--overwrite", "--quality-bank", clean, "--quality", "cosine"
    )
    assert result.exit_code == 0, result.stderr


def test_bad_ratings_and_judges_are_one_line(tmp_path: Path, tiny_llama: Path) -> None:
    clean = write_jsonl(tmp_path / "clean.jsonl", CLEAN)
    out = tmp_path / "d.jsonl"
    base = ("lmmixup", "distill", clean, "--model", tiny_llama, "--device", "cpu", "-o", out)
    high = write_jsonl(
        tmp_path / "high.jsonl", [{**CLEAN[0], "rating": 4}, {**CLEAN[1], "rating": 7}]
    )
    assert_one_line_error(run_cli(*base, "--quality-bank", high), "high.jsonl:2", "0-5")
    some = write_jsonl(tmp_path / "some.jsonl", [{**CLEAN[0], "rating": 4}, CLEAN[1]])
    assert_one_line_error(run_cli(*base, "--quality-bank", some), "some.jsonl:2", "rating")
    assert_one_line_error(run_cli(*base), "--quality-bank", "lmmixup rate")
    rate = ("lmmixup", "rate", clean, "-o", tmp_path / "bank.jsonl")
    assert_one_line_error(run_cli(*rate), "--judge", "required")
    assert_one_line_error(
        run_cli(*rate, "--judge", "openai:m", "--base-url", "http://127.0.0.1:9/v1",
                "--max-retries", 0),
        "127.0.0.1:9",
    )  # fmt: skip
    assert not (tmp_path / "bank.jsonl").exists() and not out.exists()
