"""The figures of docs/coannotation.md: its worked offline example, and aggregation on
simulated annotators of known accuracy.

1. The example: the commands of the doc's ``bash`` blocks (a toy chat Llama, a frozen
   task model on the example data, a person's field), run in a fresh folder; the meta
   file's per-annotator figures, the review set's size, and what ``merge`` and ``report``
   make of the reviewer's decisions.
2. Simulation (the quality test of issue 19): five annotators, each wrong on exactly a
   fixed share of 600 rows; majority vote, weighted vote and Dawid-Skene against the
   truth, and Dawid-Skene's estimate of each annotator's accuracy.

    python benchmarks/coannotation_example.py
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, offline, save_result

ACCURACIES = {"a1": 0.95, "a2": 0.8, "a3": 0.65, "a4": 0.55, "a5": 0.45}
LABELS = ["billing", "shipping", "account", "technical"]
POOL = ROOT / "examples" / "data" / "intents-pool.jsonl"


def augtool(*args: str, cwd: Path) -> str:
    """Run ``augtool`` as the doc does; its combined output."""
    command = [sys.executable, "-m", "augtool", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def example(work: Path) -> dict[str, object]:
    """The doc's worked example, step by step, in ``work`` (a copy of the repo's data)."""
    subprocess.run(
        [sys.executable, "-m", "augtool.testing.tiny_llama", "runs/tiny-llama",
         "--texts", str(ROOT / "examples/data/intents-train.jsonl")],
        cwd=work, check=True, capture_output=True,
    )  # fmt: skip
    augtool("train", str(ROOT / "examples/data/intents-train.jsonl"), "-o", "runs/intents-clf",
            "--freeze-encoder", "--epochs", "30", "--seed", "1", cwd=work)  # fmt: skip
    augtool(
        "coannotate", str(POOL), "-o", "runs/pool-labelled.jsonl",
        "--labels", str(ROOT / "examples/labels.json"),
        "--annotator", "clf=model:runs/intents-clf",
        "--annotator", "toy=hf:runs/tiny-llama",
        "--annotator", "toy-augtool=hf:runs/tiny-llama,style=augtool",
        "--annotator", "person=field:human",
        "--aggregate", "dawid-skene", "--review", "runs/pool-review.jsonl",
        "--min-agreement", "0.67", "--export", "label-studio", cwd=work,
    )  # fmt: skip
    meta = json.loads((work / "runs/pool-labelled.jsonl.meta.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (work / "runs/pool-labelled.jsonl").open()]
    review = [line for line in (work / "runs/pool-review.jsonl").open() if line.strip()]
    merged = augtool(
        "coannotate", "merge", "runs/pool-labelled.jsonl",
        str(ROOT / "examples/data/intents-pool-decisions.jsonl"), "-o", "runs/pool-final.jsonl",
        cwd=work,
    )  # fmt: skip
    augtool("coannotate", "report", "runs/pool-final.jsonl", "--plot", "runs/pool-confusion.png",
            "-o", "runs/pool-report.json", cwd=work)  # fmt: skip
    report = json.loads((work / "runs/pool-report.json").read_text(encoding="utf-8"))
    confident = [row for row in rows if row["confidence"] >= 0.8]
    return {
        "rows": len(rows),
        "annotators": [
            {
                "name": entry["name"],
                "kind": entry["kind"],
                "answered": entry["answers"].get("answered", 0),
                "unparsed": entry["answers"].get("unparsed", 0),
                "agreement_with_aggregate": entry.get("agreement_with_aggregate"),
                "estimated_accuracy": entry.get("estimated_accuracy"),
            }
            for entry in meta["annotators"]
        ],
        "review_rows": len(review),
        "rows_confidence_below_0.8": len(rows) - len(confident),
        "merge_summary": next(
            (line.strip() for line in merged.splitlines() if "decided by people" in line), ""
        ),
        "report": report,
    }


def simulate(count: int, seed: int = 0) -> tuple[list[str], dict[str, list[str]]]:
    """True labels and answers wrong on exactly ``(1 - accuracy) * count`` rows each."""
    rng = random.Random(seed)
    truth = [rng.choice(LABELS) for _ in range(count)]
    answers = {}
    for name, accuracy in ACCURACIES.items():
        wrong = set(rng.sample(range(count), round((1 - accuracy) * count)))
        answers[name] = [
            rng.choice([x for x in LABELS if x != y]) if i in wrong else y
            for i, y in enumerate(truth)
        ]
    return truth, answers


def simulation(count: int = 600) -> dict[str, object]:
    """Each aggregation's accuracy against the truth; Dawid-Skene's estimates."""
    from augtool.data.records import Record
    from augtool.methods.coannotate import coannotate

    truth, answers = simulate(count)
    records = [Record(id=f"r{i}", text=f"row {i}") for i in range(count)]
    figures: dict[str, object] = {"rows": count, "simulated_accuracy": ACCURACIES}
    for method in ("majority", "weighted", "dawid-skene"):
        result = coannotate(records, answers, method=method)
        got = [row["label"] for row in result.rows]
        figures[method] = round(sum(g == t for g, t in zip(got, truth, strict=True)) / count, 4)
        if method == "dawid-skene":
            estimated = result.aggregation.estimated_accuracy
            figures["dawid_skene_estimates"] = {k: round(v, 4) for k, v in estimated.items()}
    return figures


def main() -> None:
    offline()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coannotation-") as folder:
        figures = {"example": example(Path(folder)), "simulation": simulation()}
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures, indent=2)[:3000])
    save_result("coannotation_example", figures, {"pool": str(POOL.relative_to(ROOT))})


if __name__ == "__main__":
    main()
