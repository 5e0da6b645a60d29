"""Back-translation throughput, side by side in one run.

Targets (issue #4):
- Apertium on the 5,452 TREC questions: >= 20x the throughput of one ``apertium``
  subprocess per sentence (the usual wrapper), and >= 300 sentences/s round trip;
- Marian batched (batch 32) >= 4x one sentence at a time on the same model (a random
  MarianMT built here from a real MarianConfig: the speed of real weights of that shape).

    python benchmarks/bt_speed.py [--peer-sample 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import ROOT, dataset, save_result, texts_of


def apertium(texts: list[str], peer_sample: int) -> dict[str, float]:
    from augtool.core.translation.apertium import (
        ApertiumBackTranslator,
        translate_one_process_per_sentence,
    )

    engine = ApertiumBackTranslator("eng-spa", "spa-eng")
    start = time.perf_counter()
    out = engine.round_trip(texts, [0] * len(texts))
    ours = len(texts) / (time.perf_counter() - start)
    engine.close()
    sample = texts[:peer_sample]
    start = time.perf_counter()
    for text in sample:
        translate_one_process_per_sentence(
            translate_one_process_per_sentence(text, "eng-spa"), "spa-eng"
        )
    peer = len(sample) / (time.perf_counter() - start)
    print(
        f"apertium round trip, {len(out)} TREC questions: {ours:8.1f} sentences/s (target >= 300)"
    )
    print(f"one subprocess per sentence ({len(sample)} of them): {peer:8.1f} sentences/s")
    print(f"speed-up of the long-lived pipelines: {ours / peer:.0f}x  (target >= 20x)")
    return {
        "sentences": len(out),
        "per_second": round(ours, 1),
        "peer_sample": len(sample),
        "peer_per_second": round(peer, 2),
        "speedup": round(ours / peer, 1),
        "target_per_second": 300.0,
        "target_speedup": 20.0,
    }


def marian(texts: list[str]) -> dict[str, object]:
    from augtool.core.translation.marian import MarianBackTranslator
    from augtool.testing.tiny_marian import build_tiny_marian

    corpus = [
        line
        for line in (ROOT / "examples" / "data" / "intents-train.jsonl").read_text().splitlines()
    ]
    folder = build_tiny_marian(
        Path(tempfile.mkdtemp()) / "marian",
        corpus + texts[:2000],
        d_model=256,
        layers=3,
        vocab_size=2000,
    )
    sample = texts[:256]
    timings = {}
    outputs = {}
    for batch_size in (1, 32):
        engine = MarianBackTranslator(
            str(folder), str(folder), batch_size=batch_size, max_length=32, device="cpu"
        )
        engine.load()
        engine.round_trip(sample[:2], [0, 0])  # warm up
        start = time.perf_counter()
        outputs[batch_size] = engine.round_trip(sample, [0] * len(sample))
        timings[batch_size] = time.perf_counter() - start
        print(
            f"marian batch {batch_size:2d}: {len(sample) / timings[batch_size]:7.1f} "
            f"sentences/s ({len(sample)} round trips, 32 tokens max)"
        )
    same = outputs[1] == outputs[32]
    print(
        f"speed-up of batching: {timings[1] / timings[32]:.1f}x  (target >= 4x); "
        f"outputs {'identical' if same else 'DIFFER'}"
    )
    return {
        "round_trips": len(sample),
        "model": "3+3 layers, d=256",
        "per_second_batch_1": round(len(sample) / timings[1], 2),
        "per_second_batch_32": round(len(sample) / timings[32], 2),
        "speedup": round(timings[1] / timings[32], 2),
        "identical_outputs": same,
        "target_speedup": 4.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-sample", type=int, default=100)
    args = parser.parse_args()
    texts = texts_of(dataset("trec", "train.jsonl"))
    figures = {"apertium": apertium(texts, args.peer_sample), "marian": marian(texts)}
    save_result("bt_speed", figures, {"dataset": "trec/train.jsonl", "texts": len(texts)})


if __name__ == "__main__":
    main()
