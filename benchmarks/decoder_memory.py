"""Peak memory of decoder and warm-LM training at 10,000 and 40,000 sentences (issue 16).

Runs the real commands, `augtool pinr train-decoder` and `augtool invmix warm-lm`, one
process each, on the first 10,000 and on 40,000 sentences of WikiText/WikiQA sentences
plus AG News train (40,186 rows, shuffled with a fixed seed; the small set is a prefix of
the large one), each for the same short time budget (``--max-minutes``, small batches).
Each process reports its own peak resident set (``ru_maxrss``), its CPU seconds and its
torch thread count when it ends.

Target: peak(40k) / peak(10k) <= 1.1 for both trainers ("flat"): they read their corpus
a batch at a time, and the decoder its embeddings from a file. The peer, measured in the
same run, is `pinr train-decoder` as of ``PEER_REV``, a commit from before streaming
whose trainer held every text and one tensor of every embedding in memory (extracted
with ``git archive`` into a temporary folder and run from there). The extra 30,000
embeddings alone are 30,000 x 384 x 4 bytes = 44 MiB.

The embedding cache starts empty and is filled by one unmeasured `train-decoder` run on
the large set, so that every measured run reads the same cached vectors (a cold run
would time the encoder, not the trainer's memory).

    python benchmarks/decoder_memory.py [--minutes 1] [--batch-size 8] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, dataset, offline, save_result, texts_of

#: A commit from before streaming: its `pinr train-decoder` held texts and vectors in memory.
PEER_REV = "1c892e1b00530f662789a50d7c5370ce946a0c82"
SIZES = (10_000, 40_000)
TARGET_RATIO = 1.1
DIMENSION = 384  # all-MiniLM-L6-v2, the default encoder

RUN = """
import json, resource, sys
import torch
from augtool.cli.app import main
sys.argv = ["augtool"] + sys.argv[1:]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"peak_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "threads": torch.get_num_threads()}))
"""


def sentences(seed: int = 0) -> list[str]:
    """The pooled sentences (40,186), shuffled: each prefix mixes both corpora alike."""
    pool = texts_of(dataset("unlabeled", "wiki_sentences.jsonl"))
    pool += texts_of(dataset("ag_news", "train.jsonl"))
    random.Random(seed).shuffle(pool)
    return pool


def write_jsonl(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index, text in enumerate(texts):
            handle.write(json.dumps({"id": f"s{index}", "text": text}) + "\n")
    return path


def run(args: list[object], env: dict[str, str], cwd: Path, log: Path) -> dict[str, Any]:
    """One augtool command in its own process: its peak RSS, CPU and wall seconds."""
    print("$ augtool " + " ".join(str(a) for a in args), flush=True)
    start = time.perf_counter()
    with log.open("w") as output:
        done = subprocess.run(
            [sys.executable, "-c", RUN, *[str(a) for a in args]],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=output,
            text=True,
        )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"augtool {args[:2]} failed:\n{log.read_text()[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report.update(wall_s=round(wall, 1), peak_mb=round(report.pop("peak_kib") / 1024, 1))
    report["cpu_per_wall"] = round(report["cpu_s"] / wall, 2)
    report["cpu_s"] = round(report["cpu_s"], 1)
    print(f"  peak {report['peak_mb']:.0f} MiB, {wall:.0f} s, {report['cpu_per_wall']} cores busy")
    return report


def steps(folder: Path) -> int:
    """Training steps the run took (its train log's last record)."""
    lines = (folder / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return json.loads(lines[-1])["step"] if lines else 0


def label(size: int) -> str:
    """``10k`` for 10,000 (figure names); other sizes as they are."""
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="--max-minutes of each run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--no-peer", action="store_true", help="skip the in-memory peer")
    parser.add_argument("--sizes", type=int, nargs=2, default=SIZES, help="small and large")
    parser.add_argument("--save", default="decoder_memory", help="artefact name")
    args = parser.parse_args()
    offline()
    pool = sentences()
    sizes = tuple(sorted(args.sizes))
    if len(pool) < sizes[-1]:
        raise SystemExit(f"only {len(pool)} sentences for {sizes[-1]}")
    common = ["--max-minutes", args.minutes, "--batch-size", args.batch_size]
    common += ["--max-length", args.max_length, "--device", "cpu"]
    decoder_args = ["--epochs", 1, "--correction-epochs", 1, "--save-every", 0, *common]
    results: dict[str, dict[str, dict[str, Any]]] = {"decoder": {}, "peer": {}, "warm_lm": {}}
    with tempfile.TemporaryDirectory(prefix="augtool-bench-decmem-") as scratch:
        tmp = Path(scratch)
        files = {size: write_jsonl(tmp / f"s{size}.jsonl", pool[:size]) for size in sizes}
        env = {**os.environ, "AUGTOOL_CACHE_DIR": str(tmp / "cache")}
        env.pop("OMP_NUM_THREADS", None)  # torch's default: every core
        print("filling the embedding cache (not measured)")
        fill = ["--epochs", 1, "--max-minutes", 0.01, "--batch-size", args.batch_size]
        command = ["pinr", "train-decoder", files[sizes[-1]], "-o", tmp / "fill", *fill]
        run([*command, "--device", "cpu"], env, ROOT, tmp / "fill.log")
        for size in sizes:
            out = tmp / f"decoder-{size}"
            command = ["pinr", "train-decoder", files[size], "-o", out, *decoder_args]
            results["decoder"][label(size)] = run(command, env, ROOT, tmp / f"{out.name}.log")
            results["decoder"][label(size)]["steps"] = steps(out)
        if not args.no_peer:
            peer = tmp / "peer"
            peer.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", PEER_REV, "augtool"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(peer)], input=archive, check=True)
            peer_env = {**env, "PYTHONPATH": str(peer)}
            for size in sizes:
                out = tmp / f"peer-{size}"
                command = ["pinr", "train-decoder", files[size], "-o", out, *decoder_args]
                results["peer"][label(size)] = run(command, peer_env, peer, tmp / f"{out.name}.log")
                results["peer"][label(size)]["steps"] = steps(out)
        for size in sizes:
            out = tmp / f"warm-lm-{size}"
            command = ["invmix", "warm-lm", files[size], "-o", out, *common]
            results["warm_lm"][label(size)] = run(command, env, ROOT, tmp / f"{out.name}.log")
            results["warm_lm"][label(size)]["steps"] = steps(out)

    small, large = label(sizes[0]), label(sizes[-1])
    figures: dict[str, Any] = {"sentences_small": sizes[0], "sentences_large": sizes[-1]}
    for name, prefix in (("decoder", ""), ("peer", "peer_"), ("warm_lm", "warm_lm_")):
        runs = results[name]
        if not runs:
            continue
        for size, report in runs.items():
            figures[f"{prefix}peak_rss_mb_{size}"] = report["peak_mb"]
            figures[f"{prefix}steps_{size}"] = report["steps"]
            figures[f"{prefix}cpu_per_wall_{size}"] = report["cpu_per_wall"]
            figures[f"{prefix}wall_s_{size}"] = report["wall_s"]
        figures[f"{prefix}ratio"] = round(runs[large]["peak_mb"] / runs[small]["peak_mb"], 3)
        figures[f"{prefix}growth_mb"] = round(runs[large]["peak_mb"] - runs[small]["peak_mb"], 1)
    figures["torch_threads"] = results["decoder"][small]["threads"]
    figures["vectors_mb_extra"] = round((sizes[-1] - sizes[0]) * DIMENSION * 4 / 2**20, 1)
    figures["target_ratio"] = TARGET_RATIO
    print(json.dumps(figures, indent=2))
    for name, prefix in (("train-decoder", ""), ("peer", "peer_"), ("warm-lm", "warm_lm_")):
        if f"{prefix}ratio" in figures:
            print(
                f"{name:14s} peak {figures[f'{prefix}peak_rss_mb_{small}']:.0f} -> "
                f"{figures[f'{prefix}peak_rss_mb_{large}']:.0f} MiB, ratio "
                f"{figures[f'{prefix}ratio']:.3f} (target <= {TARGET_RATIO})"
            )
    save_result(
        args.save,
        figures,
        {
            "datasets": ["unlabeled/wiki_sentences.jsonl", "ag_news/train.jsonl"],
            "sizes": list(sizes),
            "max_minutes": args.minutes,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "decoder": "default encoder, warm-started generator, 1 inversion + 1 correction "
            "epoch within the budget",
            "peer_rev": None if args.no_peer else PEER_REV,
            "embedding_cache": "filled before the measured runs",
        },
    )


if __name__ == "__main__":
    main()
