"""``openai:`` throughput at ``--concurrency 8`` vs ``--concurrency 1``.

Target (issue #3): >= 6x, against a local OpenAI-compatible server with a fixed
per-request latency, measured in one run (the stub server from ``augtool.testing``).

    python benchmarks/llm_concurrency.py [--prompts 64] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import save_result

from augtool.core.generation import GenerationParams, load_llm
from augtool.testing.stub_openai import StubOpenAIServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    prompts = [f"prompt number {i}" for i in range(args.prompts)]
    params = GenerationParams(max_new_tokens=16)
    rates = {}
    with StubOpenAIServer(latency=args.latency) as server:
        for concurrency in (1, 8):
            llm = load_llm(
                "openai:stub",
                base_url=server.base_url,
                concurrency=concurrency,
                cache=False,
                cache_dir=tempfile.mkdtemp(),
            )
            start = time.perf_counter()
            replies = llm.generate(prompts, params, list(range(len(prompts))))
            seconds = time.perf_counter() - start
            assert all(isinstance(r, str) for r in replies)
            rates[concurrency] = len(prompts) / seconds
            print(
                f"--concurrency {concurrency}: {seconds:6.2f} s, "
                f"{rates[concurrency]:7.1f} requests/s"
            )
    print(f"{args.prompts} prompts, server latency {args.latency * 1000:.0f} ms per request")
    print(f"speed-up at concurrency 8: {rates[8] / rates[1]:.1f}x  (target >= 6x)")
    save_result(
        "llm_concurrency",
        {
            "seconds_concurrency_1": round(args.prompts / rates[1], 3),
            "seconds_concurrency_8": round(args.prompts / rates[8], 3),
            "speedup": round(rates[8] / rates[1], 2),
            "target_speedup": 6.0,
        },
        {"prompts": args.prompts, "latency_s": args.latency},
    )


if __name__ == "__main__":
    main()
