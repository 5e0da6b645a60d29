"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def dataset(*parts: str) -> Path:
    """A file under ../shared/data, or exit with a clear message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        raise SystemExit(f"benchmark data {path} not found (it lives beside the repository)")
    return path


def texts_of(path: Path, field: str = "text") -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)[field] for line in handle if line.strip()]


def offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


RESULTS = ROOT / "benchmarks" / "results"


def save_result(name: str, figures: dict[str, object], settings: dict[str, object]) -> Path:
    """Write a run's figures as ``benchmarks/results/<name>.json`` with the machine, the
    versions and the date, so docs tables can be rendered from it (benchmarks/render.py)."""
    from augtool.data.provenance import environment, machine, utc_now

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {
        "benchmark": name,
        "date": utc_now(),
        "machine": machine(),
        "environment": environment(),
        "settings": settings,
        "figures": figures,
    }
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")
    return path
