"""Generation at scale: several ``--base-url`` servers sharing one job (real HTTP stubs),
and ``lmmixup grpo --use-vllm`` (TRL's vLLM server mode) wiring and errors."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import read_jsonl, write_jsonl

from augtool.core.generation.servers import normalize_base_url, parse_base_urls, redact_url
from augtool.errors import OptionError
from augtool.testing.stub_openai import StubOpenAIServer

ROWS = [
    {"id": f"r{i}", "text": f"message number {i}", "label": "a" if i % 2 else "b"}
    for i in range(10)
]
# Few-shot prompts differ per row, so a reply landing on the wrong row would show.
GENERATE = ("--per-label", 12, "--prompt-style", "augtool", "--shots", 2, "--seed", 3)


def dead_url() -> str:
    """A local URL nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def request_of(received: dict) -> str:
    """What a server was asked (messages and seed), comparable across runs."""
    body = received["body"]
    return json.dumps([body["messages"], body["seed"]], sort_keys=True)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", ROWS)


def generate(data: Path, out: Path, base_url: str, *extra: object):
    return run_cli(
        "llm",
        "generate",
        data,
        "-o",
        out,
        "--llm",
        "openai:stub-model",
        "--base-url",
        base_url,
        *GENERATE,
        *extra,
    )


# --- --base-url values -----------------------------------------------------------------


def test_base_url_lists_are_parsed_and_checked() -> None:
    assert parse_base_urls(" http://a:8000/v1/ , https://b/v1") == [
        "http://a:8000/v1",
        "https://b/v1",
    ]
    assert parse_base_urls(["http://a/v1", "http://b/v1"]) == ["http://a/v1", "http://b/v1"]
    assert normalize_base_url("http://a/v1/,http://b/v1") == "http://a/v1,http://b/v1"
    assert normalize_base_url(None) is None and normalize_base_url("  ") is None
    for bad, why in [
        ("http://a/v1,,http://b/v1", "empty server URL"),
        ("http://a/v1,", "empty server URL"),
        ("localhost:8000/v1", "not an http(s) URL"),
        ("ftp://a/v1", "not an http(s) URL"),
        ("http://a:99999/v1", "invalid port"),
        ("http://a/v1,http://a/v1/", "twice"),
    ]:
        with pytest.raises(OptionError, match=f"^--base-url: .*{re.escape(why)}"):
            parse_base_urls(bad)
    with pytest.raises(OptionError, match="^--judge-base-url: "):
        parse_base_urls("nope", "judge_base_url")


def test_urls_in_messages_never_show_a_password() -> None:
    assert redact_url("http://user:s3cret@host:8000/v1") == "http://***@host:8000/v1"
    assert redact_url("http://host/v1") == "http://host/v1"
    with pytest.raises(OptionError) as caught:
        parse_base_urls("http://user:s3cret@host/v1,ftp://user:s3cret@host")
    assert "s3cret" not in str(caught.value)


def test_a_yaml_list_of_servers_is_one_comma_separated_option(tmp_path: Path) -> None:
    from augtool.core.config import build_config
    from augtool.methods.llm_baselines import GenerateConfig
    from augtool.methods.lmmixup.config import DistillConfig

    config_file = tmp_path / "c.yaml"
    config_file.write_text(
        "llm: openai:m\ntopic: news\nbase-url:\n  - http://a:8000/v1/\n  - http://b:8000/v1\n"
    )
    config = build_config(GenerateConfig, {}, config_file=config_file)
    assert config.base_url == "http://a:8000/v1,http://b:8000/v1"
    config_file.write_text("base_url: http://a/v1, http://b/v1\njudge_base_url: [http://j/v1]\n")
    distill = build_config(DistillConfig, {}, config_file=config_file)
    assert distill.base_url == "http://a/v1,http://b/v1" and distill.judge_base_url == "http://j/v1"
    config_file.write_text("llm: openai:m\ntopic: news\nbase_url: [http://a/v1, 'b:80']\n")
    with pytest.raises(OptionError, match="--base-url: 'b:80' is not an http"):
        build_config(GenerateConfig, {}, config_file=config_file)


def test_a_bad_url_on_the_command_line_is_one_line(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = generate(data, out, "http://127.0.0.1:8000/v1,127.0.0.1:8001/v1")
    assert_one_line_error(result, "--base-url: '127.0.0.1:8001/v1' is not an http(s) URL")
    assert not out.exists()


# --- the pool ----------------------------------------------------------------------------


def test_the_pool_picks_the_least_busy_server_ties_in_turn() -> None:
    from augtool.core.generation.openai_backend import _Pool

    pool = _Pool(["http://a", "http://b", "http://c"], lambda url: url)
    a, b, c = pool.servers
    assert [pool.pick().url for _ in range(4)] == ["http://a", "http://b", "http://c", "http://a"]
    a.in_flight, b.in_flight, c.in_flight = 2, 1, 2
    assert pool.pick() is b
    b.in_flight = 2
    assert pool.pick(avoid=b) in (a, c)  # a retry moves away from where it failed
    pool.bench(a)
    pool.bench(c)
    assert pool.pick() is b and pool.pick(avoid=b) is b  # nothing else is up
    for server in pool.servers:
        pool.bench(server)
    assert pool.pick() in pool.servers  # all down: keep trying rather than stop


def test_identity_names_the_set_of_servers_not_the_one_that_answered() -> None:
    from augtool.core.generation import load_llm

    one = load_llm("openai:m", base_url="http://a/v1")
    ab = load_llm("openai:m", base_url="http://a/v1,http://b/v1")
    ba = load_llm("openai:m", base_url="http://b/v1/, http://a/v1")
    assert one.identity() == {"backend": "openai", "model": "m", "base_url": "http://a/v1"}
    assert ab.identity() == ba.identity()
    assert ab.identity()["base_url"] == "http://a/v1,http://b/v1"
    with pytest.raises(OptionError, match="--base-url"):
        load_llm("openai:m", base_url="http://a/v1,")


# --- two real servers --------------------------------------------------------------------


def test_two_servers_share_a_job_evenly_with_the_same_output(data: Path, tmp_path: Path) -> None:
    with (
        StubOpenAIServer(latency=0.02) as first,
        StubOpenAIServer(latency=0.02) as second,
    ):
        single = tmp_path / "single.jsonl"
        result = generate(data, single, first.base_url, "--concurrency", 4)
        assert result.exit_code == 0, result.stderr
        assert len(first.requests) == 24
        sent_alone = sorted(map(request_of, first.requests))
        first.requests.clear()

        pooled = tmp_path / "pooled.jsonl"
        both = f"{first.base_url},{second.base_url}"
        result = generate(data, pooled, both, "--concurrency", 4)
        assert result.exit_code == 0, result.stderr
        assert "24 requests, 0 from cache" in result.stdout
        split = (len(first.requests), len(second.requests))
        assert sum(split) == 24 and min(split) >= 8, split  # roughly even, both used
        assert single.read_text() == pooled.read_text()  # same rows, same order
        # the very same requests (prompt and seed), only spread over two servers
        assert sorted(map(request_of, first.requests + second.requests)) == sent_alone
        assert len(read_jsonl(pooled)) == 24

        # The cache does not care which server answered, nor the order of the list.
        again = tmp_path / "again.jsonl"
        swapped = f"{second.base_url},{first.base_url}"
        result = generate(data, again, swapped, "--concurrency", 4)
        assert result.exit_code == 0, result.stderr
        assert "0 requests, 24 from cache" in result.stdout
        assert again.read_text() == pooled.read_text()
        assert sum(map(len, (first.requests, second.requests))) == 24


def test_one_request_in_flight_alternates_between_servers(data: Path, tmp_path: Path) -> None:
    with StubOpenAIServer() as first, StubOpenAIServer() as second:
        out = tmp_path / "out.jsonl"
        both = f"{first.base_url},{second.base_url}"
        result = generate(data, out, both, "--concurrency", 1, "--no-cache")
        assert result.exit_code == 0, result.stderr
        assert (len(first.requests), len(second.requests)) == (12, 12)  # ties in turn


def test_a_dead_server_in_the_list_is_named_before_the_run(data: Path, tmp_path: Path) -> None:
    dead = dead_url()
    with StubOpenAIServer() as live:
        out = tmp_path / "out.jsonl"
        result = generate(data, out, f"{live.base_url},{dead}")
        assert_one_line_error(result, f"--base-url {dead}: cannot reach the server")
        assert live.base_url not in result.stderr
        assert not live.requests and not out.exists()


def test_a_server_that_dies_during_a_run_is_retried_on_the_live_one() -> None:
    """check() is what refuses a dead server up front; once running, a refused connection
    moves the request to another server and leaves the dead one out for a while."""
    from augtool.core.generation import GenerationParams, load_llm
    from augtool.core.generation.retry import RetryPolicy

    with StubOpenAIServer() as live:
        llm = load_llm(
            "openai:m", base_url=f"{dead_url()},{live.base_url}", concurrency=4, cache=False
        )
        llm.retry = RetryPolicy(max_retries=2, base_delay=0.01)
        prompts = [f"prompt {i}" for i in range(20)]
        replies = llm.generate(prompts, GenerationParams(16, 0.0, 1.0), list(range(20)))
        assert replies == [f"reply: {p}" for p in prompts]
        assert len(live.requests) == 20

    # With every server down, a request fails naming the server it last tried.
    llm = load_llm("openai:m", base_url=f"{dead_url()},{dead_url()}", cache=False)
    llm.retry = RetryPolicy(max_retries=1, base_delay=0.01)
    (failure,) = llm.generate(["x"], GenerationParams(16, 0.0, 1.0), [0])
    assert not isinstance(failure, str)
    assert "http://127.0.0.1:" in str(failure) and "gave up after 2 attempts" in str(failure)


# --- lmmixup grpo --use-vllm ---------------------------------------------------------------


def test_grpo_arguments_carry_the_vllm_server_settings(tmp_path: Path, monkeypatch) -> None:
    from augtool.methods.lmmixup import config as lmm_config
    from augtool.methods.lmmixup.config import GRPOTrainConfig
    from augtool.methods.lmmixup.training import grpo_arguments

    plain = grpo_arguments(GRPOTrainConfig(device="cpu"), tmp_path, [1.0, 0.5])
    assert plain.use_vllm is False and plain.num_generations == 4  # the public config's n

    monkeypatch.setattr(lmm_config, "vllm_installed", lambda: True)
    config = GRPOTrainConfig(
        device="cpu",
        use_vllm=True,
        vllm_server_url="http://10.0.0.5:8001/",
        vllm_server_timeout=30,
    )
    args = grpo_arguments(config, tmp_path, [1.0, 0.5])
    assert args.use_vllm is True and args.vllm_mode == "server"
    assert args.vllm_server_base_url == "http://10.0.0.5:8001"
    assert args.vllm_server_timeout == 30
    assert args.reward_weights == [1.0, 0.5] and args.temperature == 1.0

    default = grpo_arguments(GRPOTrainConfig(device="cpu", use_vllm=True), tmp_path, [1.0])
    assert default.vllm_server_base_url == "http://localhost:8000"


def test_vllm_options_are_checked(monkeypatch) -> None:
    from augtool.methods.lmmixup import config as lmm_config
    from augtool.methods.lmmixup.config import GRPOTrainConfig

    monkeypatch.setattr(lmm_config, "vllm_installed", lambda: True)
    with pytest.raises(OptionError, match="--vllm-server-url: needs --use-vllm"):
        GRPOTrainConfig(vllm_server_url="http://localhost:8000")
    with pytest.raises(OptionError, match="without a path"):
        GRPOTrainConfig(use_vllm=True, vllm_server_url="http://localhost:8000/v1")
    with pytest.raises(OptionError, match="not an http"):
        GRPOTrainConfig(use_vllm=True, vllm_server_url="localhost:8000")
    with pytest.raises(OptionError, match="--vllm-server-timeout"):
        GRPOTrainConfig(use_vllm=True, vllm_server_timeout=0)


def test_use_vllm_without_vllm_fails_first_with_what_to_do(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    mixture = write_jsonl(tmp_path / "mix.jsonl", [{"inputs": ["a", "b"], "target": "ab"}])
    out = tmp_path / "grpo"
    grpo = ("lmmixup", "grpo", mixture, "--model", "hf:no-such-model", "-o", out)
    result = run_cli(*grpo, "--use-vllm")
    assert_one_line_error(result, "--use-vllm", "pip install vllm", "trl vllm-serve --model")
    assert not out.exists()
    result = run_cli(*grpo, "--use-vllm", "--vllm-server-timeout", -1)
    assert_one_line_error(result, "--vllm-server-timeout")
