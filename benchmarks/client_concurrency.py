"""``openai:`` client efficiency against a server with long-tailed latency.

Target (issue 18): at ``--concurrency 64``, throughput within 90% of the ideal
``concurrency / mean latency``. The peer, measured in the same run, is the previous
client: batches of ``concurrency x 8`` requests, each drained before the next starts, so
one slow reply idles every other slot. The server is the stub from ``augtool.testing``:
every request takes ``--latency`` seconds, except one in ``--tail-every``, which takes
``--tail`` seconds.

    python benchmarks/client_concurrency.py [--prompts 8192] [--concurrency 64]
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
    parser.add_argument("--prompts", type=int, default=8192)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--tail", type=float, default=2.5)
    parser.add_argument("--tail-every", type=int, default=25)
    args = parser.parse_args()
    prompts = [f"prompt number {i}" for i in range(args.prompts)]

    def latency_of(message: str) -> float:
        number = int(message.rsplit(" ", 1)[-1]) if message[-1:].isdigit() else 1
        return args.tail if number % args.tail_every == 0 else args.latency

    latencies = [latency_of(p) for p in prompts]
    mean_latency = sum(latencies) / len(latencies)
    ideal = args.concurrency / mean_latency
    params = GenerationParams(max_new_tokens=16)
    figures: dict[str, object] = {"ideal_per_second": round(ideal, 1)}
    with StubOpenAIServer(latency_of=latency_of) as server:
        for name, streaming in (("window", True), ("batch_drain", False)):
            llm = load_llm(
                "openai:stub",
                base_url=server.base_url,
                concurrency=args.concurrency,
                cache=False,
                cache_dir=tempfile.mkdtemp(),
            )
            llm.streaming = streaming
            start = time.perf_counter()
            replies = llm.generate(prompts, params, list(range(len(prompts))))
            seconds = time.perf_counter() - start
            assert all(isinstance(r, str) for r in replies)
            rate = len(prompts) / seconds
            figures[name] = {
                "seconds": round(seconds, 2),
                "per_second": round(rate, 1),
                "efficiency": round(rate / ideal, 3),
            }
            print(f"{name:12s}: {seconds:6.2f} s, {rate:6.1f} requests/s, "
                  f"efficiency {rate / ideal:.2f} of {ideal:.1f}/s")  # fmt: skip
    figures["efficiency"] = figures["window"]["efficiency"]  # type: ignore[index]
    figures["target_efficiency"] = 0.9
    figures["speedup_vs_peer"] = round(
        figures["window"]["per_second"] / figures["batch_drain"]["per_second"],
        2,  # type: ignore[index]
    )
    settings = {
        "prompts": args.prompts,
        "concurrency": args.concurrency,
        "latency": args.latency,
        "tail": args.tail,
        "tail_every": args.tail_every,
        "mean_latency": round(mean_latency, 4),
    }
    save_result("client_concurrency", figures, settings)


if __name__ == "__main__":
    main()
