"""``augtool embed`` overhead and cache speed-up on the 5,452 TREC training questions.

Targets (issue #2): throughput >= 0.9x a bare ``SentenceTransformer.encode`` over the same
texts, measured side by side in this run; a second run served from the cache >= 20x
faster than the first.

    python benchmarks/embed_throughput.py [--repeats 3] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dataset, offline, save_result, texts_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    offline()
    cache = tempfile.mkdtemp(prefix="augtool-bench-cache-")
    os.environ["AUGTOOL_CACHE_DIR"] = cache

    from sentence_transformers import SentenceTransformer

    from augtool.core.encoders import load_encoder
    from augtool.core.hub import DEFAULT_ENCODER, quiet_transformers, resolve_model_source

    quiet_transformers()
    path = dataset("trec", "train.jsonl")
    texts = texts_of(path)
    source = resolve_model_source(DEFAULT_ENCODER)
    bare = SentenceTransformer(source, device="cpu")
    ours = load_encoder(DEFAULT_ENCODER, device="cpu", cache=False, batch_size=args.batch_size)
    bare.encode(texts[:64], batch_size=args.batch_size)
    ours.encode(texts[:64])

    bare_times, our_times = [], []
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        start = time.perf_counter()
        bare.encode(texts, batch_size=args.batch_size)
        bare_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours.encode(texts)
        our_times.append(time.perf_counter() - start)
    bare_rate = len(texts) / statistics.median(bare_times)
    our_rate = len(texts) / statistics.median(our_times)
    print(
        f"texts: {len(texts)} (TREC train), batch size {args.batch_size}, "
        f"median of {args.repeats} runs, torch threads {__import__('torch').get_num_threads()}"
    )
    print(f"bare SentenceTransformer.encode : {bare_rate:8.1f} texts/s")
    print(f"augtool Encoder.encode          : {our_rate:8.1f} texts/s")
    print(f"throughput ratio augtool / bare : {our_rate / bare_rate:.3f}  (target >= 0.9)")

    # Cache: the whole `augtool embed` command, cold then warm, in fresh processes.
    with tempfile.TemporaryDirectory() as out_dir:
        env = {**os.environ, "AUGTOOL_CACHE_DIR": tempfile.mkdtemp(prefix="augtool-bench-")}
        timings = []
        for name in ("cold.npy", "warm.npy"):
            command = [
                sys.executable,
                "-m",
                "augtool",
                "embed",
                str(path),
                "-o",
                str(Path(out_dir) / name),
                "--batch-size",
                str(args.batch_size),
            ]
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            timings.append(time.perf_counter() - start)
        cold, warm = timings
    print(f"`augtool embed` first run (cold cache) : {cold:7.2f} s")
    print(f"`augtool embed` second run (cached)    : {warm:7.2f} s")
    print(f"cache speed-up                          : {cold / warm:7.1f}x  (target >= 20x)")

    # The same in-process, without interpreter start-up and imports.
    cached = load_encoder(DEFAULT_ENCODER, device="cpu", cache=True, batch_size=args.batch_size)
    start = time.perf_counter()
    cached.encode(texts)
    first = time.perf_counter() - start
    again = load_encoder(DEFAULT_ENCODER, device="cpu", cache=True)
    start = time.perf_counter()
    again.encode(texts)
    second = time.perf_counter() - start
    print(f"in-process: first {first:.2f} s, cached {second:.3f} s, speed-up {first / second:.0f}x")
    save_result(
        "embed_throughput",
        {
            "texts": len(texts),
            "bare_per_second": round(bare_rate, 1),
            "augtool_per_second": round(our_rate, 1),
            "ratio": round(our_rate / bare_rate, 3),
            "target_ratio": 0.9,
            "command_cold_s": round(cold, 2),
            "command_cached_s": round(warm, 2),
            "command_speedup": round(cold / warm, 1),
            "target_command_speedup": 20.0,
            "in_process_cold_s": round(first, 2),
            "in_process_cached_s": round(second, 3),
            "in_process_speedup": round(first / second),
        },
        {"batch_size": args.batch_size, "repeats": args.repeats, "dataset": "trec/train.jsonl"},
    )


if __name__ == "__main__":
    main()
