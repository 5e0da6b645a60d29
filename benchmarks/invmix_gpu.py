"""invmix on a GPU with an 8B-sized LM: a 5-shot TREC refinement epoch and a Mixup +
inversion epoch, with peak GPU memory.

Target (issue #6): at least 2x faster than the paper's A100 figures (about 100 s per
refinement epoch and 40 s per Mixup + inversion epoch). The LM is built from the
Llama-3-8B configuration with random weights: throughput does not depend on the weights,
and nothing has to be downloaded. ``--size tiny`` runs the same code on a small model
(a CPU smoke test).

    python benchmarks/invmix_gpu.py [--size 8b] [--device cuda] [--k 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _common import dataset, texts_of

SIZES = {
    # Llama-3-8B's shape (vocabulary of the tokenizer built here, not 128k).
    "8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
    },
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
}


def build_model(folder: Path, size: str, texts: list[str], dtype: str, device: str) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from augtool.testing.tiny_llama import build_tiny_llama

    build_tiny_llama(folder, texts, train_steps=0, vocab_size=4000)  # the tokenizer
    config = LlamaConfig.from_pretrained(folder)
    config.update({**SIZES[size], "max_position_embeddings": 8192})
    torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch_dtype)
    model.save_pretrained(folder, safe_serialization=True)
    del model
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="8b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("AUGTOOL_CACHE_DIR", tempfile.mkdtemp(prefix="augtool-gpu-"))
    import torch

    from augtool.core.inversion.model import InversionModel
    from augtool.data import RecordSpec, k_shot, read_records
    from augtool.data.writer import JsonlWriter
    from augtool.methods.invmix.config import AdaptorConfig, InvmixGenerateConfig, RefineConfig
    from augtool.methods.invmix.generate import run_generate
    from augtool.methods.invmix.stages import run_refine, run_train_adaptor

    train = read_records(dataset("trec", "train.jsonl"), RecordSpec(require_label=True))
    sample = k_shot(train, args.k, seed=1)
    work = Path(tempfile.mkdtemp(prefix="augtool-invmix-gpu-"))
    llm = build_model(
        work / "llm", args.size, texts_of(dataset("trec", "train.jsonl")), args.dtype, args.device
    )
    common = {"device": args.device, "dtype": args.dtype}
    run_train_adaptor(sample, AdaptorConfig(llm=f"hf:{llm}", epochs=1, **common), work / "adaptor")
    figures = {}
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run_refine(
        sample,
        RefineConfig(rounds=1, task_epochs=1, adaptor_epochs=1, **common),
        work / "adaptor",
        work / "refined",
    )
    figures["refinement_epoch_s"] = round(time.perf_counter() - start, 1)
    model = InversionModel.load(work / "refined", **common)
    start = time.perf_counter()
    writer = JsonlWriter(work / "mixed.jsonl", run_key="gpu")
    with writer:
        run_generate(
            sample,
            model,
            InvmixGenerateConfig(n=len(sample), keep_duplicates=True, **common),
            writer,
        )
        writer.commit()
    figures["mixup_inversion_epoch_s"] = round(time.perf_counter() - start, 1)
    if args.device.startswith("cuda"):
        figures["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    paper = {"refinement_epoch_s": 100.0, "mixup_inversion_epoch_s": 40.0}
    for name, seconds in figures.items():
        comparable = name in paper and args.size == "8b"
        ratio = f"  ({paper[name] / seconds:.1f}x the paper's A100)" if comparable else ""
        print(f"{name}: {seconds}{ratio}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
