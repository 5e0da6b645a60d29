"""SIGKILL trials: kill each long command at random moments, rerun it, and check that the
finished output equals an uninterrupted run's (issue 17: 0 rows lost or duplicated).

For every command: one uninterrupted reference run; then ``--trials`` trials, each killing
the command with SIGKILL after a random delay (seeded, spread over the reference's
duration) one to three times in a row, then running it to the end; trials until
``--trials`` of them had at least one kill land. A trial passes when
the final output holds exactly the reference's rows (no id lost, none duplicated) and is
byte-identical to it (for ``train``: the same predictions on the test rows).

    python benchmarks/kill_trials.py [--trials 20] [--commands eda predict embed bt train]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dataset, offline, save_result


def augtool(args: list[str], *, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "augtool", *args], capture_output=True, text=True, timeout=timeout
    )


def killed_after(args: list[str], delay: float) -> bool:
    """Start the command, SIGKILL it after ``delay`` s; False if it finished first."""
    process = subprocess.Popen(
        [sys.executable, "-m", "augtool", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return True


def rows_of(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def digest(path: Path) -> str:
    if path.is_dir():
        blob = hashlib.sha256()
        for item in sorted(path.rglob("*")):
            if item.is_file() and item.name != "meta.json" and not item.name.endswith(".log"):
                blob.update(item.relative_to(path).as_posix().encode())
                blob.update(item.read_bytes())
        return blob.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_commands(work: Path, rows: int) -> dict[str, dict]:
    """The long commands, on ``rows`` TREC questions each."""
    source = dataset("trec", "train.jsonl")
    lines = source.read_text(encoding="utf-8").splitlines()[:rows]
    data = work / "data.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    small = work / "small.jsonl"
    small.write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    model = work / "task-model"
    if not model.exists():  # predict needs a model: a frozen-encoder head, seconds to train
        done = augtool(["train", str(small), "-o", str(model), "--freeze-encoder",
                        "--epochs", "2"])  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"training the predict model failed: {done.stderr[-500:]}")
    commands = {
        "eda": {"args": ["eda", str(data), "--n-aug", "16", "--seed", "3"], "suffix": ".jsonl"},
        "predict": {"args": ["predict", str(model), str(data), "--batch-size", "32"],
                    "suffix": ".jsonl"},
        "embed": {"args": ["embed", str(data), "--batch-size", "32", "--no-cache"],
                  "suffix": ".npy"},
        "bt": {"args": ["bt", str(data), "--engine", "apertium", "--batch-size", "64"],
               "suffix": ".jsonl"},
        "train": {"args": ["train", str(small), "--epochs", "2", "--batch-size", "16",
                           "--checkpoint-every", "1", "--seed", "4"], "suffix": ""},
    }  # fmt: skip
    return commands


def run_trials(name: str, spec: dict, work: Path, trials: int, rng: random.Random) -> dict:
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    reference = folder / f"reference{spec['suffix']}"
    warm = folder / f"warm-up{spec['suffix']}"  # fills caches (WordNet lookups, ...)
    done = augtool([*spec["args"], "-o", str(warm)])
    if done.returncode != 0:
        raise SystemExit(f"{name}: the warm-up run failed: {done.stderr[-800:]}")
    started = time.perf_counter()
    done = augtool([*spec["args"], "-o", str(reference)])
    seconds = time.perf_counter() - started  # the window kills are drawn from
    if done.returncode != 0:
        raise SystemExit(f"{name}: the reference run failed: {done.stderr[-800:]}")
    expected = digest(reference)
    expected_ids = rows_of(reference) if spec["suffix"] == ".jsonl" else None
    results: list[dict] = []
    trial = -1
    # Trials whose kills all came too late (the run had finished) do not count.
    while sum(r["kills"] > 0 for r in results) < trials and len(results) < 3 * trials:
        trial += 1
        out = folder / f"trial-{trial}{spec['suffix']}"
        args = [*spec["args"], "-o", str(out)]
        kills, finished = 0, False
        for _ in range(rng.randint(1, 3)):
            # Anywhere in the run, start-up (imports, model loading) included.
            if not killed_after(args, rng.uniform(0.5, max(1.0, seconds * 0.9))):
                finished = True  # the (resumed) run completed before its kill
                break
            kills += 1
        final = augtool(args) if not finished else None
        ok = out.exists() and (final is None or final.returncode == 0)
        lost = duplicated = None
        if ok and expected_ids is not None:
            ids = rows_of(out)
            lost = len(set(expected_ids) - set(ids))
            duplicated = len(ids) - len(set(ids))
        identical = ok and digest(out) == expected
        results.append(
            {
                "trial": trial,
                "kills": kills,
                "exit": final.returncode if final is not None else 0,
                "lost": lost,
                "duplicated": duplicated,
                "identical": identical,
                "resumed": final is not None and "resum" in final.stderr,
            }
        )
        print(f"{name} trial {trial}: {kills} kill(s), identical={identical}", flush=True)
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink(missing_ok=True)
    return {
        "reference_seconds": round(seconds, 2),
        "trials": len(results),
        "trials_with_a_kill": sum(r["kills"] > 0 for r in results),
        "kills": sum(r["kills"] for r in results),
        "identical": sum(r["identical"] for r in results),
        "rows_lost": sum(r["lost"] or 0 for r in results),
        "rows_duplicated": sum(r["duplicated"] or 0 for r in results),
        "resumed_runs": sum(r["resumed"] for r in results),
        "per_trial": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1500, help="TREC rows per command.")
    parser.add_argument("--commands", nargs="+", default=["eda", "predict", "embed", "bt", "train"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default="kill_trials", help="'' to only print.")
    args = parser.parse_args()
    offline()
    work = Path(tempfile.mkdtemp(prefix="augtool-kill-trials-"))
    os.environ["AUGTOOL_CACHE_DIR"] = str(work / "cache")
    commands = build_commands(work, args.rows)
    rng = random.Random(args.seed)
    figures = {}
    for name in args.commands:
        figures[name] = run_trials(name, commands[name], work, args.trials, rng)
        summary = {k: v for k, v in figures[name].items() if k != "per_trial"}
        print(f"{name}: {summary}", flush=True)
    if args.save:
        settings = {"trials": args.trials, "rows": args.rows, "seed": args.seed,
                    "commands": {n: commands[n]["args"][0:1] + commands[n]["args"][2:]
                                 for n in args.commands}}  # fmt: skip
        save_result(args.save, figures, settings)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
