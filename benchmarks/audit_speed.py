"""Speed of ``augtool audit`` at issue 20's size: 5,000 augmented rows against 5,000
originals, offline judge, every check and the HTML report (target: under 2 minutes on 2
cores), with cleanlab's own Datalab on the same embeddings as the peer.

The originals are the first 5,000 rows of TREC's training set (shuffled, seed 0); the
augmented rows are ``augtool eda --n-aug 1`` of them (not timed). ``augtool audit`` runs
as a user runs it, a fresh process, default options (cleanlab judge, MAUVE over 3 seeds,
the map): its wall time includes start-up, loading the encoder and embedding 10,000 texts.
The peer, cleanlab's ``Datalab.find_issues`` (label issues, near duplicates, outliers,
non-IID) on the same embeddings and the same out-of-fold probabilities, is timed in
process from precomputed vectors, so it covers less work than the audit.

    python benchmarks/audit_speed.py
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dataset, offline, save_result

ROWS = 5000
TARGET_S = 120.0


def augtool(*args: str, cwd: Path) -> float:
    """Run ``augtool`` in a fresh process; its wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "augtool", *args], cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"augtool {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def peer_seconds(reference: list[dict], augmented: list[dict]) -> dict[str, float]:
    """cleanlab's Datalab on the audit's embeddings (cached by then) and OOF probabilities."""
    import numpy as np
    from cleanlab import Datalab

    from augtool.audit.fidelity import oof_probabilities
    from augtool.core.encoders import load_encoder

    rows = reference + augmented
    texts = [r["text"] for r in rows]
    features = np.asarray(load_encoder().encode(texts))
    classes = sorted({r["label"] for r in rows})
    targets = np.array([classes.index(r["label"]) for r in rows])
    started = time.perf_counter()
    probs = oof_probabilities(features, targets)
    lab = Datalab(data={"text": texts, "label": [r["label"] for r in rows]}, label_name="label")
    lab.find_issues(features=features, pred_probs=probs)
    return {"seconds": time.perf_counter() - started}


def main() -> None:
    offline()
    rows = [json.loads(line) for line in dataset("trec", "train.jsonl").open(encoding="utf-8")]
    random.Random(0).shuffle(rows)
    reference = rows[:ROWS]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ref = work / "ref.jsonl"
        ref.write_text("".join(json.dumps(r) + "\n" for r in reference), encoding="utf-8")
        augtool("eda", str(ref), "-o", "eda.jsonl", "--n-aug", "1", "--seed", "0", cwd=work)
        augmented = [json.loads(line) for line in (work / "eda.jsonl").open(encoding="utf-8")]
        audit_s = augtool("audit", "eda.jsonl", "--reference", "ref.jsonl", "-o", "audit", cwd=work)
        report = json.loads((work / "audit" / "report.json").read_text(encoding="utf-8"))
        html_bytes = (work / "audit" / "report.html").stat().st_size
        peer = peer_seconds(reference, augmented)
    checks = report["checks"]
    figures = {
        "audit_seconds": round(audit_s, 2),
        "target_seconds": TARGET_S,
        "met": audit_s < TARGET_S,
        "peer_datalab_seconds": round(peer["seconds"], 2),
        "ratio_audit_to_peer": round(audit_s / peer["seconds"], 2),
        "augmented_rows": len(augmented),
        "reference_rows": len(reference),
        "html_bytes": html_bytes,
        "report": {
            "label": checks["label"]["figures"]["eda"],
            "distribution": checks["distribution"]["figures"]["eda"],
            "diversity": {
                k: v for k, v in checks["diversity"]["figures"]["eda"].items() if k != "novelty"
            },
            "novelty": checks["diversity"]["figures"]["eda"]["novelty"],
            "duplicates": checks["duplicates"]["figures"]["eda"],
            "flagged": {name: len(c["flagged"]) for name, c in checks.items()},
        },
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "report"}, indent=2))
    save_result(
        "audit_speed",
        figures,
        {
            "data": "TREC train, shuffled (seed 0), first 5,000 rows",
            "augmenter": "augtool eda --n-aug 1 --seed 0",
            "command": "augtool audit eda.jsonl --reference ref.jsonl -o audit",
            "peer": "cleanlab Datalab.find_issues(features, pred_probs) on the same "
            "embeddings, out-of-fold probabilities included, in process",
        },
    )


if __name__ == "__main__":
    main()
