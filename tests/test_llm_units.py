"""LLM layer units: specs, retry timing, rate limits, prompts, label sets, replies."""

from __future__ import annotations

import time
from email.utils import formatdate
from pathlib import Path

import pytest

from augtool.core.generation import parse_llm_spec
from augtool.core.generation.jobs import ReplyRejected, clean_reply, derive_seed
from augtool.core.generation.labels import LabelSet, label_set_from, load_label_set, normalize
from augtool.core.generation.prompts import load_prompt_file, placeholders_of
from augtool.core.generation.retry import RateLimiter, RetryPolicy, parse_retry_after
from augtool.errors import AugtoolError, OptionError


def test_llm_specs() -> None:
    assert parse_llm_spec("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert parse_llm_spec("hf:./models/tiny") == ("hf", "./models/tiny")
    assert parse_llm_spec("transformers:x") == ("hf", "x")
    unknown = r"--llm: vllm:model: unknown LLM backend 'vllm' \(known: hf, openai\)"
    with pytest.raises(OptionError, match=unknown):
        parse_llm_spec("vllm:model")
    with pytest.raises(OptionError, match="--llm: 'gpt-4o' needs a backend prefix"):
        parse_llm_spec("gpt-4o")


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    import random

    policy = RetryPolicy(base_delay=1.0, max_delay=10.0, jitter=0.5)
    rng = random.Random(0)
    for attempt, base in enumerate([1, 2, 4, 8, 10, 10]):
        delay = policy.delay(attempt, rng=rng)
        assert 0.5 * base <= delay <= 1.5 * base
    assert policy.delay(0, retry_after="3") == 3.0
    assert policy.delay(0, retry_after="600") == 10.0  # capped


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    in_two_seconds = formatdate(time.time() + 2, usegmt=True)
    assert 0.5 < parse_retry_after(in_two_seconds) <= 2.5


def test_rate_limiter_spaces_request_starts() -> None:
    limiter = RateLimiter(per_minute=600)  # one every 0.1 s
    waits = [limiter.reserve() for _ in range(4)]
    assert waits[0] == 0.0
    assert [round(w, 1) for w in waits[1:]] == [0.1, 0.2, 0.3]
    assert RateLimiter(0).reserve() == 0.0


def test_prompt_files_are_checked_before_use(tmp_path: Path) -> None:
    text = tmp_path / "p.txt"
    text.write_text("Paraphrase {text} (label {label}). Keep {{braces}}.")
    template = load_prompt_file(text, template_id="x", available={"text", "label"})
    assert (
        template.render(text="T", label="L")[0]["content"]
        == "Paraphrase T (label L). Keep {braces}."
    )

    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("system: Be brief.\nuser: 'Rewrite: {text}'\n")
    template = load_prompt_file(yaml_file, template_id="x", available={"text", "label"})
    assert [m["role"] for m in template.render(text="T")] == ["system", "user"]

    unknown = tmp_path / "u.txt"
    unknown.write_text("Rewrite {sentence} as {style}")
    with pytest.raises(OptionError, match=r"unknown placeholder\(s\) \{sentence\}, \{style\}"):
        load_prompt_file(unknown, template_id="x", available={"text", "label"})
    no_text = tmp_path / "no-text.txt"
    no_text.write_text("Write something labelled {label}")
    with pytest.raises(OptionError, match=r"must use the placeholder\(s\) \{text\}"):
        load_prompt_file(no_text, template_id="x", available={"text", "label"}, required={"text"})
    positional = tmp_path / "pos.txt"
    positional.write_text("Rewrite {}")
    with pytest.raises(AugtoolError, match="must be a name"):
        load_prompt_file(positional, template_id="x", available={"text"})
    with pytest.raises(AugtoolError, match="malformed prompt template"):
        placeholders_of("Rewrite {text")


def test_label_sets_load_lists_and_mappings(tmp_path: Path) -> None:
    as_list = label_set_from(["billing", "shipping"], "x")
    assert as_list.names == ["billing", "shipping"]
    mapping = tmp_path / "labels.yaml"
    mapping.write_text(
        "billing: payments and refunds\nshipping:\n  description: parcels\n  aliases: [delivery]\n"
    )
    labels = load_label_set(mapping)
    assert labels.describe() == "- billing: payments and refunds\n- shipping: parcels"
    assert labels.parse("Delivery.") == "shipping"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "label set is empty"),
        ({}, "label set is empty"),
        ("billing", "expected a list of labels or a mapping"),
        (42, "expected a list of labels or a mapping"),
        ([["a"]], "labels must be strings"),
        ({"a": {"aliases": ["b"]}, "b": ""}, "'b' names both"),
        ({"a": {"colour": "red"}}, "unknown key"),
    ],
)
def test_bad_label_sets(data: object, message: str) -> None:
    with pytest.raises(AugtoolError, match=message):
        label_set_from(data, "labels.json")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("billing", "billing"),
        ("  BILLING.\n", "billing"),
        ('"Shipping"', "shipping"),
        ("Label: shipping", "shipping"),
        ("The answer is billing", "billing"),
        ("I think this is about delivery", "shipping"),
        ("billing or shipping", None),
        ("weather", None),
        ("billings", None),
        ("", None),
    ],
)
def test_reply_parsing_is_tolerant_but_never_guesses(reply: str, expected: str | None) -> None:
    labels = LabelSet(
        tuple(label_set_from({"billing": "", "shipping": {"aliases": ["delivery"]}}, "x").labels)
    )
    assert labels.parse(reply) == expected


def test_normalize_and_replies() -> None:
    assert normalize("  Café  AU_lait! ") == "cafe au lait"
    assert (
        clean_reply('Here is the rewritten text:\n"Where is my parcel?"') == "Where is my parcel?"
    )
    assert clean_reply("Text: hello there\nsecond line") == "hello there"
    with pytest.raises(ReplyRejected):
        clean_reply("  \n ")
    assert derive_seed(1, "rew", "a", 0) == derive_seed(1, "rew", "a", 0)
    assert derive_seed(1, "rew", "a", 0) != derive_seed(1, "rew", "a", 1)
