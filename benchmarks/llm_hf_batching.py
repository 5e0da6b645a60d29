"""``hf:`` batched generation of 64 prompts vs one prompt at a time, same model, same run.

Target (issue #3): >= 4x faster. The model is a small random Llama (real LlamaConfig,
4 layers, 256 dims) built here; both runs produce the same texts because sampling is
seeded per request.

    python benchmarks/llm_hf_batching.py [--prompts 64] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import ROOT, save_result

from augtool.core.generation import GenerationParams, load_llm
from augtool.testing.tiny_llama import build_tiny_llama


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    import json

    texts = [
        json.loads(line)["text"]
        for line in (ROOT / "examples" / "data" / "intents-train.jsonl").read_text().splitlines()
    ]
    folder = Path(tempfile.mkdtemp()) / "llama"
    build_tiny_llama(folder, texts, hidden_size=256, layers=4, vocab_size=2000, train_steps=0)
    prompts = [f"Rewrite this message: {texts[i % len(texts)]}" for i in range(args.prompts)]
    params = GenerationParams(max_new_tokens=args.new_tokens, temperature=0.8)
    seeds = list(range(len(prompts)))
    results = {}
    for batch_size in (1, 64):
        llm = load_llm(f"hf:{folder}", cache=False, batch_size=batch_size, device="cpu")
        llm.generate(prompts[:2], params, seeds[:2])  # load and warm up
        start = time.perf_counter()
        results[batch_size] = (llm.generate(prompts, params, seeds), time.perf_counter() - start)
        print(
            f"batch size {batch_size:2d}: {results[batch_size][1]:6.2f} s for "
            f"{len(prompts)} prompts"
        )
    assert results[1][0] == results[64][0], "outputs differ between batch sizes"
    print(
        f"speed-up of batched generation: {results[1][1] / results[64][1]:.1f}x  "
        "(target >= 4x); outputs identical"
    )
    save_result(
        "llm_hf_batching",
        {
            "seconds_batch_1": round(results[1][1], 3),
            "seconds_batch_64": round(results[64][1], 3),
            "speedup": round(results[1][1] / results[64][1], 2),
            "identical_outputs": results[1][0] == results[64][0],
            "target_speedup": 4.0,
        },
        {"prompts": args.prompts, "new_tokens": args.new_tokens, "llama": "4 layers, 256 dim"},
    )


if __name__ == "__main__":
    main()
