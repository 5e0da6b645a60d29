"""The GPU suite runs end to end on a tiny shape on the CPU, and the memory estimate's
activation arithmetic agrees with what autograd really keeps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
STAGES = {
    "setup": "parameters",
    "train_adaptor": "sentences_per_s",
    "refine": "epoch_s",
    "mix_invert": "rows_per_s",
    "loglik": "rows_per_s",
    "generation": "tokens_per_s",
    "train_adaptor_checkpointed": "sentences_per_s",
}


@pytest.fixture
def estimate_module(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu_memory_estimate

    return gpu_memory_estimate


def test_tiny_suite_on_cpu_records_every_stage(tmp_path: Path) -> None:
    kept = BENCHMARKS / "results" / "gpu_suite.json"
    before = kept.read_bytes() if kept.exists() else None
    out = tmp_path / "suite.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "gpu_suite.py"),
            "--size",
            "tiny",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["benchmark"] == "gpu_suite" and record["settings"]["size"] == "tiny"
    assert record["settings"]["complete"] and record["machine"]["cpus"]
    for stage, throughput in STAGES.items():
        figures = record["figures"][stage]
        assert figures["status"] == "ok", (stage, figures)
        assert figures["seconds"] > 0 and figures[throughput] > 0, (stage, figures)
    assert record["figures"]["train_adaptor"]["epoch_complete"]
    assert record["figures"]["loglik"]["labels"] == 14
    assert record["figures"]["generation"]["batch"] == 64
    # A smoke run never touches the kept GPU figures.
    assert (kept.read_bytes() if kept.exists() else None) == before
    assert not any(tmp_path.glob("augtool-gpu-suite-*")), "the models are cleaned up"


def test_saved_activation_arithmetic_matches_autograd(estimate_module) -> None:
    """The estimate's per-token bytes equal the tensors autograd saves for a frozen
    Llama's loss with the gradient going to inputs_embeds only (as in adaptor training)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = {
        "vocab_size": 1000,
        "hidden_size": 64,
        "intermediate_size": 176,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "tie_word_embeddings": False,
    }
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**shape)).to(torch.bfloat16).eval()
    model.requires_grad_(False)
    weights = {id(p) for p in model.parameters()}
    saved: dict[int, torch.Tensor] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        base = tensor if tensor._base is None else tensor._base
        if id(base) not in weights and id(tensor) not in weights:
            saved[id(base)] = base
        return tensor

    batch, tokens = 2, 13
    inputs = torch.randn(batch, tokens, 64, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, 1000, (batch, tokens))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(
            inputs_embeds=inputs,
            attention_mask=torch.ones(batch, tokens, dtype=torch.long),
            labels=labels,
        ).loss
    counted = sum(t.numel() * t.element_size() for t in saved.values())
    estimated = estimate_module.saved_bytes(shape, batch, tokens)
    assert abs(counted - estimated) <= 0.02 * counted, (counted, estimated)
    loss.backward()
    assert inputs.grad is not None


def test_kept_estimate_matches_the_script(estimate_module) -> None:
    kept = json.loads(
        (BENCHMARKS / "results" / "gpu_memory_estimate.json").read_text(encoding="utf-8")
    )
    assert kept["figures"] == json.loads(json.dumps(estimate_module.estimate()))
    assert kept["figures"]["parameters"]["total"] == 8_030_261_248  # Llama-3-8B
    assert kept["settings"] == json.loads(json.dumps(estimate_module.settings()))


def test_memory_table_gains_a_measured_column_from_a_real_gpu_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a GPU run the table holds estimates only; an 8B CUDA run adds a measured
    column and its speed table; a tiny or CPU run is ignored."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_gpu", BENCHMARKS / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    results = tmp_path / "results"
    results.mkdir()
    estimate = BENCHMARKS / "results" / "gpu_memory_estimate.json"
    (results / estimate.name).write_bytes(estimate.read_bytes())
    monkeypatch.setattr(render, "RESULTS", results)
    alone = render.gpu_memory()
    assert "measured: peak" not in alone and "No GPU run is recorded yet" in alone

    record = json.loads(estimate.read_text(encoding="utf-8"))
    stage = {"status": "ok", "seconds": 1.0, "peak_gpu_gib": 20.5, "weights_gpu_gib": 14.97}
    record.update(
        benchmark="gpu_suite",
        settings={"size": "8b", "device": "cuda", "gpu": {"name": "NVIDIA H200", "cuda": "13.0"}},
        figures={
            "train_adaptor": {**stage, "sentences": 1000, "epoch_s": 9.0, "sentences_per_s": 111},
            "train_adaptor_checkpointed": {**stage, "status": "stopped at its time budget"},
            "refine": {**stage, "rows": 30, "epoch_s": 5.0, "speedup_vs_paper": 20.0},
            "mix_invert": {**stage, "rows": 30, "epoch_s": 2.0, "rows_per_s": 15.0},
            "loglik": {**stage, "labels": 14, "rows": 512, "scoring_s": 4.0, "rows_per_s": 128},
            "generation": {**stage, "batch": 64, "generation_s": 8.0, "tokens_per_s": 4096},
        },
    )
    (results / "gpu_suite.json").write_text(json.dumps(record), encoding="utf-8")
    table = render.gpu_memory()
    assert "measured: peak" in table and "NVIDIA H200" in table
    assert "| 14.97 GiB |" in table and "20.50 GiB (stopped at its time budget)" in table
    assert "4096 tokens/s" in table and "about 100 s (20.0× faster here)" in table

    record["settings"]["size"] = "tiny"
    (results / "gpu_suite.json").write_text(json.dumps(record), encoding="utf-8")
    assert render.gpu_memory() == alone
