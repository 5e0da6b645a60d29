"""A cached rerun of a 1,000-prompt ``llm rewrite`` job vs its first run.

Target (issue #3): the rerun finishes in under 2% of the first run's time. Runs the job
(tasks, writer, provenance-free) in-process against the local stub server with a fixed
latency, first with an empty response cache, then again with the same cache.

    python benchmarks/llm_cache.py [--rows 1000] [--latency 0.1] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import save_result

from augtool.core.generation import load_llm
from augtool.core.generation.jobs import run_tasks
from augtool.data import JsonlWriter, Record
from augtool.methods.llm_baselines import RewriteConfig, rewrite_tasks
from augtool.testing.stub_openai import StubOpenAIServer


def run_job(records, server, cache_dir: str, out: Path, concurrency: int) -> tuple[float, dict]:
    start = time.perf_counter()
    config = RewriteConfig(llm="openai:stub", base_url=server.base_url, concurrency=concurrency)
    llm = load_llm(config.llm, **config.backend_options(), cache_dir=cache_dir)
    llm.check()
    writer = JsonlWriter(out, run_key="bench")
    with writer:
        summary = run_tasks(rewrite_tasks(records, config), llm, config.params(), writer)
        writer.commit()
    llm.close()
    return time.perf_counter() - start, summary.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    records = [
        Record(id=f"r{i}", text=f"customer message number {i}", label="a") for i in range(args.rows)
    ]
    cache_dir = tempfile.mkdtemp(prefix="augtool-llm-cache-")
    folder = Path(tempfile.mkdtemp())
    with StubOpenAIServer(latency=args.latency) as server:
        first, counts_first = run_job(
            records, server, cache_dir, folder / "a.jsonl", args.concurrency
        )
        second, counts_second = run_job(
            records, server, cache_dir, folder / "b.jsonl", args.concurrency
        )
    assert (folder / "a.jsonl").read_text() == (folder / "b.jsonl").read_text()
    print(
        f"{args.rows} prompts, latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}"
    )
    print(f"first run : {first:7.2f} s  ({counts_first['requests']} requests)")
    print(
        f"cached run: {second:7.3f} s  ({counts_second['requests']} requests, "
        f"{counts_second['from_cache']} from cache)"
    )
    print(f"cached / first: {100 * second / first:.2f}%  (target < 2%)")
    save_result(
        "llm_cache",
        {
            "seconds_first": round(first, 3),
            "seconds_cached": round(second, 4),
            "cached_percent": round(100 * second / first, 2),
            "requests_cached_run": counts_second["requests"],
            "target_percent": 2.0,
        },
        {"rows": args.rows, "latency_s": args.latency, "concurrency": args.concurrency},
    )


if __name__ == "__main__":
    main()
