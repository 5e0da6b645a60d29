"""invmix: batched inversion (batch 32) vs one embedding at a time, same model, same run.

Target (issue #6): >= 5x on the CPU. The LM is a random Llama (real LlamaConfig, 4 layers,
256 dims) built here; both runs decode greedily, so they produce identical texts.

    python benchmarks/invmix_inversion.py [--rows 64] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import ROOT, texts_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("AUGTOOL_CACHE_DIR", tempfile.mkdtemp(prefix="augtool-bench-"))
    from augtool.core.inversion.model import InversionModel
    from augtool.testing.tiny_llama import build_tiny_llama

    texts = texts_of(ROOT / "examples" / "data" / "intents-train.jsonl")
    folder = build_tiny_llama(
        Path(tempfile.mkdtemp()) / "llama",
        texts,
        hidden_size=256,
        layers=4,
        vocab_size=2000,
        train_steps=0,
    )
    model = InversionModel.create(
        "sentence-transformers/all-MiniLM-L6-v2", f"hf:{folder}", device="cpu"
    )
    embeddings = model.embed((texts * 3)[: args.rows])
    timings, outputs = {}, {}
    for batch_size in (1, 32):
        model.invert(embeddings[:2], batch_size=batch_size, max_new_tokens=4)  # warm up
        start = time.perf_counter()
        outputs[batch_size] = model.invert(
            embeddings, batch_size=batch_size, max_new_tokens=args.new_tokens
        )
        timings[batch_size] = time.perf_counter() - start
        print(
            f"batch {batch_size:2d}: {args.rows / timings[batch_size]:7.1f} inversions/s "
            f"({timings[batch_size]:.2f} s for {args.rows}, up to {args.new_tokens} tokens)"
        )
    same = outputs[1] == outputs[32]
    print(
        f"speed-up of batching: {timings[1] / timings[32]:.1f}x  (target >= 5x); "
        f"outputs {'identical' if same else 'DIFFER'}"
    )


if __name__ == "__main__":
    main()
