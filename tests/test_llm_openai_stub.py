"""The openai: backend through the CLI against a scripted OpenAI-compatible server:
retries, Retry-After, timeouts, failures, API keys, resume, budgets, cache, dry runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import read_jsonl, write_jsonl

from augtool.testing.stub_openai import Reply, Stall, Status, StubOpenAIServer

ROWS = [
    {"id": f"r{i}", "text": f"message number {i}", "label": "a" if i % 2 else "b"} for i in range(6)
]


@pytest.fixture
def stub():
    with StubOpenAIServer() as server:
        yield server


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", ROWS)


def llm_args(stub: StubOpenAIServer, *extra: object) -> list[object]:
    return ["--llm", "openai:stub-model", "--base-url", stub.base_url, *extra]


def chat_requests(stub: StubOpenAIServer) -> int:
    return len(stub.requests)


def test_rewrite_writes_rows_with_provenance(stub, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "rew.jsonl"
    result = run_cli("llm", "rewrite", data, "-o", out, *llm_args(stub, "--n", 2, "--seed", 5))
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows][:2] == ["r0-rew0", "r0-rew1"]
    assert len(rows) == 12 and {r["label"] for r in rows} == {"a", "b"}
    # the paper's LLM-Rew prompt (inversedMixup A.2), filled with the row's label and text
    assert rows[0]["text"] == (
        'reply: Please provide a clear and concise rewrite of this b sentence: "message number 0"'
    )
    sent = [r["body"]["messages"] for r in stub.requests]
    assert all(len(messages) == 1 for messages in sent)  # the paper's prompt has no system
    assert [
        {
            "role": "user",
            "content": 'Please provide a clear and concise rewrite of this b sentence: "message '
            'number 0"\nRewritten version:',
        }
    ] in sent
    aug = rows[0]["aug"]
    assert aug["method"] == "llm-rew" and aug["parents"] == ["r0"]
    assert aug["prompt_id"] == "invmix.a2.llm-rew" and aug["llm"] == "openai:stub-model"
    assert aug["params"]["temperature"] == 0.7 and isinstance(aug["seed"], int)
    seeds = {request["body"]["seed"] for request in stub.requests}
    assert len(seeds) == 12  # every request has its own seed
    meta = json.loads((tmp_path / "rew.jsonl.meta.json").read_text())
    assert meta["counts"]["requests"] == 12 and meta["prompt"]["id"] == "invmix.a2.llm-rew"
    assert meta["prompt"]["verbatim"] is True and "A.2" in meta["prompt"]["source"]


def test_429_with_retry_after_and_500_are_retried(stub, data: Path, tmp_path: Path) -> None:
    stub.script(Status(429, {"Retry-After": "1"}), Status(503), when="message number 0")
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    result = run_cli("llm", "rewrite", data, "-o", out, *llm_args(stub, "--concurrency", 1))
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    assert len(read_jsonl(out)) == 6
    assert chat_requests(stub) == 8  # two failed attempts, then every row once
    assert elapsed >= 1.0  # Retry-After was honoured
    assert not (tmp_path / "out.jsonl.failed.jsonl").exists()


def test_requests_that_keep_failing_go_to_failed_jsonl(stub, data: Path, tmp_path: Path) -> None:
    stub.script(Stall(3), Stall(3), when="message number 0")
    stub.script(Status(400), when="message number 1")
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "llm",
        "rewrite",
        data,
        "-o",
        out,
        *llm_args(stub, "--concurrency", 1, "--timeout", 0.5, "--max-retries", 1),
    )
    assert result.exit_code == 0, result.stderr
    assert "2 requests failed after retries" in result.stderr
    failed = read_jsonl(tmp_path / "out.jsonl.failed.jsonl")
    assert [f["id"] for f in failed] == ["r0-rew0", "r1-rew0"]
    assert (
        "APITimeoutError" in failed[0]["error"] and "gave up after 2 attempts" in failed[0]["error"]
    )
    assert failed[1]["error"].startswith("HTTP 400")  # not retried
    assert [r["id"] for r in read_jsonl(out)] == [f"r{i}-rew0" for i in range(2, 6)]

    # A rerun retries only the failed rows; the others come from the cache.
    before = chat_requests(stub)
    result = run_cli(
        "llm",
        "rewrite",
        data,
        "-o",
        out,
        "--overwrite",
        *llm_args(stub, "--concurrency", 1, "--timeout", 0.5),
    )
    assert result.exit_code == 0, result.stderr
    assert chat_requests(stub) - before == 2
    assert len(read_jsonl(out)) == 6 and not (tmp_path / "out.jsonl.failed.jsonl").exists()


def test_cached_rerun_makes_no_calls_and_no_cache_does(stub, data: Path, tmp_path: Path) -> None:
    assert (
        run_cli("llm", "rewrite", data, "-o", tmp_path / "a.jsonl", *llm_args(stub)).exit_code == 0
    )
    calls = chat_requests(stub)
    result = run_cli("llm", "rewrite", data, "-o", tmp_path / "b.jsonl", *llm_args(stub))
    assert result.exit_code == 0 and chat_requests(stub) == calls
    assert "0 requests, 6 from cache" in result.stdout
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    run_cli("llm", "rewrite", data, "-o", tmp_path / "c.jsonl", *llm_args(stub, "--no-cache"))
    assert chat_requests(stub) == calls + 6


def test_dry_run_makes_no_call_and_writes_nothing(stub, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = run_cli("llm", "rewrite", data, "-o", out, "--dry-run", *llm_args(stub, "--n", 3))
    assert result.exit_code == 0, result.stderr
    assert "requests to send" in result.stdout and "18" in result.stdout
    assert (
        "prompt tokens" in result.stdout and "Please provide a clear and concise" in result.stdout
    )
    assert chat_requests(stub) == 0 and not out.exists()


def test_max_requests_stops_and_a_rerun_continues(stub, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "llm", "rewrite", data, "-o", out, *llm_args(stub, "--concurrency", 1, "--max-requests", 4)
    )
    assert result.exit_code == 3
    assert_one_line_error(result, "--max-requests 4 reached")
    assert chat_requests(stub) == 4 and not out.exists()
    assert len((tmp_path / "out.jsonl.partial").read_text().splitlines()) == 4
    result = run_cli("llm", "rewrite", data, "-o", out, *llm_args(stub, "--concurrency", 1))
    assert result.exit_code == 0, result.stderr
    assert "resuming: 4 rows already written" in result.stderr
    assert chat_requests(stub) == 6
    assert [r["id"] for r in read_jsonl(out)] == [f"r{i}-rew0" for i in range(6)]


def test_interrupted_run_resumes_with_exactly_the_missing_rows(
    stub, data: Path, tmp_path: Path, monkeypatch
) -> None:
    import asyncio

    from augtool.core.generation.openai_backend import OpenAIBackend

    original = OpenAIBackend._one
    calls = {"n": 0}

    async def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:  # Ctrl-C while the ninth request is out
            await asyncio.sleep(0.5)  # the eighth reply is in and written by then
            raise KeyboardInterrupt
        return await original(self, *args, **kwargs)

    out = tmp_path / "out.jsonl"
    args = llm_args(stub, "--concurrency", 1, "--n", 2)
    with monkeypatch.context() as patch:
        patch.setattr(OpenAIBackend, "_one", interrupted)
        result = run_cli("llm", "rewrite", data, "-o", out, *args)
    assert result.exit_code == 130
    assert_one_line_error(result, "interrupted: 8 requests, 0 from cache", "rerun")
    result = run_cli("llm", "rewrite", data, "-o", out, *args)
    assert result.exit_code == 0, result.stderr
    ids = [r["id"] for r in read_jsonl(out)]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert chat_requests(stub) == 12


def test_rpm_cap_spaces_requests(stub, data: Path, tmp_path: Path) -> None:
    result = run_cli(
        "llm",
        "rewrite",
        data,
        "-o",
        tmp_path / "o.jsonl",
        *llm_args(stub, "--rpm", 600, "--concurrency", 4),
    )
    assert result.exit_code == 0, result.stderr
    starts = sorted(request["time"] for request in stub.requests)
    assert all(b - a >= 0.05 for a, b in zip(starts, starts[1:], strict=False))  # 0.1 s apart


def test_api_keys_come_from_the_environment_and_never_leak(
    data: Path, tmp_path: Path, monkeypatch
) -> None:
    secret = "sk-test-DO-NOT-LEAK-1234"
    with StubOpenAIServer(api_key=secret) as locked:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        result = run_cli("llm", "rewrite", data, "-o", tmp_path / "x.jsonl", *llm_args(locked))
        assert_one_line_error(result, "requires an API key: set OPENAI_API_KEY")
        monkeypatch.setenv("OPENAI_API_KEY", "wrong")
        result = run_cli("llm", "rewrite", data, "-o", tmp_path / "x.jsonl", *llm_args(locked))
        assert_one_line_error(result, "rejected the API key in OPENAI_API_KEY")
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        out = tmp_path / "ok.jsonl"
        result = run_cli("llm", "rewrite", data, "-o", out, *llm_args(locked))
        assert result.exit_code == 0, result.stderr
    written = "".join(p.read_text() for p in tmp_path.glob("ok.jsonl*"))
    assert secret not in written + result.stdout + result.stderr


def test_default_openai_url_without_a_key_fails_before_any_call(
    data: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = run_cli("llm", "rewrite", data, "-o", tmp_path / "x.jsonl", "--llm", "openai:gpt-4o")
    assert_one_line_error(result, "OPENAI_API_KEY is not set")


def test_unreachable_server_is_one_error_before_the_run(data: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_cli(
        "llm",
        "rewrite",
        data,
        "-o",
        tmp_path / "x.jsonl",
        "--llm",
        "openai:m",
        "--base-url",
        "http://127.0.0.1:9/v1",
    )
    assert_one_line_error(result, "--base-url http://127.0.0.1:9/v1: cannot reach the server")
    assert time.monotonic() - started < 15
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.jsonl.partial").exists()


def test_label_parses_replies_and_records_unparsable_ones(stub, tmp_path: Path) -> None:
    rows = write_jsonl(
        tmp_path / "u.jsonl",
        [
            {"id": "u1", "text": "parcel late"},
            {"id": "u2", "text": "card charged"},
            {"id": "u3", "text": "???"},
        ],
    )
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            {"billing": "payments", "shipping": {"text": "Shipping", "aliases": ["delivery"]}}
        )
    )
    stub.script(Reply("Delivery."), when="parcel late")
    stub.script(Reply("  BILLING "), when="card charged")
    stub.script(Reply("no idea, maybe weather"), when="???")
    out = tmp_path / "l.jsonl"
    result = run_cli(
        "llm", "label", rows, "-o", out, "--labels", labels, *llm_args(stub, "--concurrency", 1)
    )
    assert result.exit_code == 0, result.stderr
    first, second, third = read_jsonl(out)
    assert first["label"] == "shipping" and first["llm_label"]["status"] == "parsed"
    assert second["label"] == "billing"
    assert "label" not in third and third["llm_label"]["status"] == "unparsed"
    assert third["llm_label"]["reply"] == "no idea, maybe weather"
    prompt = stub.requests[0]["body"]["messages"][-1]["content"]
    # inversedMixup A.3, with each label's description as the appendix lists them
    assert prompt == (
        "Classify the following sentence into one of the labels below.\n\n"
        'Sentence: "parcel late"\n\n'
        'Labels: "billing": "payments",\n"Shipping"\n\n'
        "Respond with only the label name exactly as given above.\n\nAnswer:"
    )


def test_mix_and_generate_rows(stub, data: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mix.jsonl"
    result = run_cli(
        "llm", "mix", data, "-o", mixed, *llm_args(stub, "--pairs", 5, "--pair-mode", "inter-class")
    )
    assert result.exit_code == 0, result.stderr
    for row in read_jsonl(mixed):
        # the paper's prompt names no ratio: each parent's label gets half
        assert row["label_dist"] == {"a": 0.5, "b": 0.5} and row["aug"]["lambda"] == 0.5
        assert len(row["aug"]["parents"]) == 2
        first, second = (next(r for r in ROWS if r["id"] == p) for p in row["aug"]["parents"])
        sent = [r["body"]["messages"][-1]["content"] for r in stub.requests]
        assert (
            "Mix the two sentences into one sentence:\n\n"
            f"sentence1: {first['text']}\n\nsentence2: {second['text']}\n\n"
            "The mixed sentence is:"
        ) in sent
    styled = tmp_path / "mix-augtool.jsonl"
    result = run_cli(
        "llm",
        "mix",
        data,
        "-o",
        styled,
        *llm_args(stub, "--pairs", 5, "--pair-mode", "inter-class", "--prompt-style", "augtool"),
    )
    assert result.exit_code == 0, result.stderr
    lambdas = set()
    for row in read_jsonl(styled):
        assert set(row["label_dist"]) == {"a", "b"}
        assert abs(sum(row["label_dist"].values()) - 1) < 1e-5
        assert row["label"] == max(row["label_dist"], key=row["label_dist"].get)
        lam = row["aug"]["lambda"]
        lambdas.add(lam)
        assert 0 <= lam <= 1 and row["aug"]["prompt_id"] == "augtool.llm-mix"
        first_parent = next(r for r in ROWS if r["id"] == row["aug"]["parents"][0])
        assert abs(row["label_dist"][first_parent["label"]] - lam) < 1e-5
        assert row["text"].startswith("reply: Write one new text that blends")
    assert len(lambdas) == 5  # drawn from Beta(alpha, alpha) per row

    generated = tmp_path / "gen.jsonl"
    result = run_cli(
        "llm",
        "generate",
        data,
        "-o",
        generated,
        *llm_args(stub, "--per-label", 3, "--topic", "chat,email", "--seed", 2),
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(generated)
    assert [r["id"] for r in rows][:3] == ["llm-gen-a-0", "llm-gen-a-1", "llm-gen-a-2"]
    assert {r["label"] for r in rows} == {"a", "b"} and len(rows) == 6
    # the paper's zero-shot LLM-Gen prompt: no examples shown, so no parents
    for row in rows:
        assert row["aug"]["parents"] == [] and row["aug"]["topic"] in {"chat", "email"}
        assert row["text"] == (
            f"reply: Write a {row['label']} {row['aug']['topic']} sentence. Output only the "
            "sentence, nothing else."
        )
    assert {r["aug"]["topic"] for r in rows} == {"chat", "email"}

    few_shot = tmp_path / "gen-augtool.jsonl"
    result = run_cli(
        "llm",
        "generate",
        data,
        "-o",
        few_shot,
        *llm_args(stub, "--per-label", 3, "--shots", 2, "--prompt-style", "augtool"),
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(few_shot)
    assert len(rows) == 6 and all(len(r["aug"]["parents"]) == 2 for r in rows)


def test_generate_needs_a_topic_for_the_papers_prompt(stub, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen.jsonl"
    result = run_cli("llm", "generate", data, "-o", out, *llm_args(stub))
    assert_one_line_error(result, "--topic: is needed by the paper's LLM-Gen prompt")
    assert chat_requests(stub) == 0 and not out.exists()


def test_prompt_file_placeholders_and_label_files_are_checked_first(
    stub, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    no_texts = tmp_path / "mix.txt"
    no_texts.write_text("Blend {text1} with something.")
    result = run_cli("llm", "mix", data, "-o", out, *llm_args(stub, "--prompt-file", no_texts))
    assert_one_line_error(result, "must use {text1} and {text2} or {text_a} and {text_b}")
    unknown = tmp_path / "label.txt"
    unknown.write_text("Label {text} as one of {labels}")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(["a", "b"]))
    result = run_cli(
        "llm",
        "label",
        data,
        "-o",
        out,
        "--labels",
        labels,
        *llm_args(stub, "--prompt-file", unknown),
    )
    assert_one_line_error(result, "unknown placeholder(s) {labels}")
    # a labels file that does not name the data's labels
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"a": "first"}))
    result = run_cli("llm", "label", data, "-o", out, "--labels", wrong, *llm_args(stub))
    assert_one_line_error(result, "the data has label(s) b that the labels file does not name")
    result = run_cli(
        "llm", "generate", data, "-o", out, "--labels", wrong, *llm_args(stub, "--topic", "x")
    )
    assert_one_line_error(result, "the data has label(s) b that the labels file does not name")
    bad_style = run_cli("llm", "rewrite", data, "-o", out, *llm_args(stub, "--prompt-style", "x"))
    assert_one_line_error(bad_style, "--prompt-style: must be one of paper, augtool")
    assert chat_requests(stub) == 0 and not out.exists()


def test_retry_after_ms_is_honoured(stub, data: Path, tmp_path: Path) -> None:
    from augtool.core.generation.retry import retry_after_header

    assert retry_after_header({"retry-after-ms": "250", "retry-after": "9"}) == "0.25"
    assert retry_after_header({"retry-after": "3"}) == "3"
    stub.script(Status(429, {"retry-after-ms": "2500"}), when="message number 0")
    started = time.monotonic()
    result = run_cli("llm", "rewrite", data, "-o", tmp_path / "o.jsonl", *llm_args(stub))
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    assert chat_requests(stub) == 7
    assert 2.5 <= elapsed < 8  # the hint (the default first backoff is at most 1.5 s)


def test_a_server_that_wants_max_completion_tokens_gets_it(data: Path, tmp_path: Path) -> None:
    with StubOpenAIServer(completion_tokens_only=True) as server:
        out = tmp_path / "o.jsonl"
        args = llm_args(server, "--concurrency", 1, "--max-new-tokens", 32)
        result = run_cli("llm", "rewrite", data, "-o", out, *args)
        assert result.exit_code == 0, result.stderr
        assert len(read_jsonl(out)) == 6
        bodies = [r["body"] for r in server.requests]
        assert "max_tokens" in bodies[0]  # refused once, with OpenAI's own message
        assert all(b.get("max_completion_tokens") == 32 for b in bodies[1:])
        assert all("max_tokens" not in b for b in bodies[1:]) and len(bodies) == 7


def test_a_slow_request_does_not_hold_back_the_others(data: Path, tmp_path: Path) -> None:
    """A bounded window, not batches drained one by one: while one request stalls, the
    other slots keep going; rows are still written in input order."""
    with StubOpenAIServer(latency=0.01) as server:
        server.script(Stall(1.5), when="message number 0")
        out = tmp_path / "o.jsonl"
        args = llm_args(server, "--concurrency", 4, "--n", 7, "--no-cache")  # 42 requests
        result = run_cli("llm", "rewrite", data, "-o", out, *args)
        assert result.exit_code == 0, result.stderr
        sent = sorted(r["time"] for r in server.requests if "messages" in r["body"])
        assert len(sent) == 42
        # Every request went out while the stalled one was still pending (a batch of 32
        # drained before the next would have held the last 10 back by 1.5 s).
        assert sent[-1] - sent[0] < 1.2
        rows = read_jsonl(out)
        expected = [f"{row['id']}-rew{v}" for row in ROWS for v in range(7)]
        assert [r["id"] for r in rows] == expected
