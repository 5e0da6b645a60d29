"""The openai: backend end to end against a real `transformers serve` on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl


def test_all_llm_commands_against_transformers_serve(
    transformers_server: dict, tmp_path: Path
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", read_jsonl(EXAMPLES / "intents-train.jsonl")[:6])
    llm = [
        "--llm",
        f"openai:{transformers_server['model']}",
        "--base-url",
        transformers_server["base_url"],
        "--max-new-tokens",
        16,
        "--concurrency",
        2,
    ]

    rew = tmp_path / "rew.jsonl"
    result = run_cli("llm", "rewrite", train, "-o", rew, *llm, "--n", 2)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(rew)
    assert len(rows) == 12 and all(r["text"].strip() for r in rows)
    assert rows[0]["aug"]["llm"].startswith("openai:")

    result = run_cli(
        "llm",
        "generate",
        train,
        "-o",
        tmp_path / "gen.jsonl",
        *llm,
        "--per-label",
        1,
        "--topic",
        "support",
    )
    assert result.exit_code == 0, result.stderr
    assert len(read_jsonl(tmp_path / "gen.jsonl")) == 4

    result = run_cli("llm", "mix", train, "-o", tmp_path / "mix.jsonl", *llm, "--pairs", 3)
    assert result.exit_code == 0, result.stderr
    assert len(read_jsonl(tmp_path / "mix.jsonl")) == 3

    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(["billing", "shipping", "account", "technical"]))
    result = run_cli("llm", "label", train, "-o", tmp_path / "lab.jsonl", *llm, "--labels", labels)
    assert result.exit_code == 0, result.stderr
    for row in read_jsonl(tmp_path / "lab.jsonl"):
        evidence = row["llm_label"]
        assert evidence["method"] == "parse" and evidence["status"] in ("parsed", "unparsed")
        assert (row.get("label") is None) == (evidence["status"] == "unparsed")
        assert evidence["original_label"] in {"billing", "shipping", "account", "technical"}

    # A rerun of the same job is served from the response cache: no request reaches the server.
    again = run_cli("llm", "rewrite", train, "-o", tmp_path / "again.jsonl", *llm, "--n", 2)
    assert "0 requests, 12 from cache" in again.stdout
