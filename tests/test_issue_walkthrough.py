"""The foundation walkthrough on real data and the real default encoder (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from conftest import needs_shared_data, read_jsonl

pytestmark = pytest.mark.slow


def test_trec_walkthrough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = needs_shared_data("trec", "train.jsonl")
    test = needs_shared_data("trec", "test.jsonl")
    monkeypatch.chdir(tmp_path)

    def ok(*args: object) -> str:
        result = run_cli(*args)
        assert result.exit_code == 0, f"{args}: {result.stderr}"
        return result.stdout

    ok("data", "validate", train)
    assert "ABBR" in ok("data", "stats", train)
    ok("data", "sample", train, "--k", 10, "--seed", 3, "-o", "trec-k10-s3.jsonl")
    ok("embed", train, "-o", "trec.emb.npy")
    assert np.load("trec.emb.npy").shape == (5452, 384)
    ok("train", "trec-k10-s3.jsonl", "-o", "runs/base", "--epochs", 20, "--seed", 3)
    ok("train", "trec-k10-s3.jsonl", "-o", "runs/mixup", "--mixup", "--alpha", 0.4, "--seed", 3)
    assert "macro-F1" in ok("eval", "runs/base", test)
    metrics = json.loads(ok("eval", "runs/base", test, "--json"))
    assert set(metrics) >= {"accuracy", "macro_f1", "per_class"}
    assert metrics["accuracy"] > 0.4  # 10 questions per class; chance is about 0.17
    mixed = json.loads(ok("eval", "runs/mixup", test, "--json"))
    assert mixed["accuracy"] > 0.3
    ok("predict", "runs/base", test, "-o", "preds.jsonl")
    assert len(read_jsonl(Path("preds.jsonl"))) == 500
