"""Keep an `augtool bench` run as a committed artefact, so docs tables render from it.

Copies what `augtool bench report` and `benchmarks/render.py` read (``bench.json``,
``summary.json`` with the machine, versions and date, ``report.md`` and every
``cells/*.json``) into ``benchmarks/results/<NAME>/``. Samples, logs and models stay
behind. Dataset paths under the repository or under ``../shared`` beside it are written
relative to the repository root, so the artefact names no one's home folder.

    python benchmarks/keep_run.py runs/trec-bench trec-bench [--partial]

``--partial`` keeps a run that was stopped before its last cell: its ``summary.json`` is
written here from the finished cells (machine, versions, date, and the cells still
missing, under ``missing``), so the tables render what was measured and say what was not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from _common import RESULTS, ROOT

KEPT_FILES = ("bench.json", "summary.json", "report.md")


def portable(path: str) -> str:
    """A dataset path relative to the repository root where it lies under its parent."""
    resolved = Path(path).resolve()
    for base, prefix in ((ROOT, ""), (ROOT.parent, "../")):
        try:
            return prefix + resolved.relative_to(base).as_posix()
        except ValueError:
            continue
    return path


def partial_summary(run_dir: Path) -> dict:
    """A summary of a stopped run, from its finished cells (what `augtool bench` writes at
    the end, less the wall time it never reached)."""
    from augtool.bench.runner import cells_of, load_run
    from augtool.data.provenance import environment, machine, utc_now

    results = [json.loads(p.read_text()) for p in sorted((run_dir / "cells").glob("*.json"))]
    done = {r["cell"] for r in results if r.get("status") == "ok"}
    cells = cells_of(load_run(run_dir))
    return {
        "cells": len(cells),
        "ran": len(done),
        "failed": [r["cell"] for r in results if r.get("status") != "ok"],
        "partial": True,
        "missing": [c.id for c in cells if c.id not in done],
        "cell_seconds": round(sum(r["seconds"].get("total", 0.0) for r in results), 2),
        "date": utc_now(),
        "machine": machine(),
        "environment": environment(),
    }


def keep(run_dir: Path, name: str, partial: bool = False) -> Path:
    """Copy a finished run's results into ``benchmarks/results/<name>/``; returns it."""
    summary_file = run_dir / "summary.json"
    if partial and (run_dir / "bench.json").is_file():
        summary_file.write_text(json.dumps(partial_summary(run_dir), indent=2) + "\n")
    if not (run_dir / "bench.json").is_file() or not summary_file.is_file():
        raise SystemExit(f"{run_dir}: not a finished bench run (bench.json, summary.json)")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    if summary.get("failed") or "machine" not in summary:
        raise SystemExit(
            f"{run_dir}: the last run had failed cells or no machine record; rerun it first"
        )
    target = RESULTS / name
    if target.exists():
        shutil.rmtree(target)
    (target / "cells").mkdir(parents=True)
    for file in KEPT_FILES:
        if (run_dir / file).is_file():
            shutil.copy2(run_dir / file, target / file)
    bench = json.loads((target / "bench.json").read_text(encoding="utf-8"))
    for spec in bench["config"]["datasets"]:
        spec["train"], spec["test"] = portable(spec["train"]), portable(spec["test"])
    for item in bench.get("inputs", []):
        item["path"] = portable(item["path"])
    (target / "bench.json").write_text(json.dumps(bench, indent=2) + "\n", encoding="utf-8")
    for cell in sorted((run_dir / "cells").glob("*.json")):
        shutil.copy2(cell, target / "cells" / cell.name)
    print(f"kept {run_dir} as {target.relative_to(ROOT)}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished `augtool bench` run folder")
    parser.add_argument("name", help="the artefact's name under benchmarks/results/")
    parser.add_argument(
        "--partial", action="store_true", help="keep a stopped run (its missing cells listed)"
    )
    args = parser.parse_args()
    keep(args.run_dir, args.name, args.partial)
    return 0


if __name__ == "__main__":
    sys.exit(main())
