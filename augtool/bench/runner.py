"""Running a benchmark: prepare the run folder, then run cells (in-process, in parallel
processes, or by any job runner from the manifest).

A run folder holds::

    bench.json            the exact config, its settings key, input fingerprints, versions
    data/<dataset>/k<K>-s<seed>.jsonl   K-shot samples, shared by every method
    manifest.txt          one command line per cell (for Slurm arrays or any job runner)
    manifest.jsonl        the same as argument lists
    cells/<cell>.json     one result per finished (or failed) cell
    logs/<cell>.log       what the cell did, timings, and any traceback
    models/<cell>/        task models, while training (kept with keep_models: true)
    summary.json          wall time and harness overhead of the last `augtool bench` run

A cell is ``dataset x K x seed x method``. It augments the shared K-shot sample (cached
on disk by content, across run folders), trains the task model on sample + augmented
rows (continuing from a task model the method left, e.g. invmix's refined theta*, Eq. 12),
evaluates it and writes ``cells/<cell>.json``. Finished cells are never rerun;
failed cells are recorded with their error and retried by the next run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augtool.bench.config import BenchConfig, DatasetSpec
from augtool.core.progress import SILENT, Advance, Reporter
from augtool.data.provenance import environment, file_fingerprint, machine, run_key, utc_now
from augtool.data.writer import atomic_write_text, write_json
from augtool.errors import AugtoolError

BENCH_FILE = "bench.json"


@dataclass(frozen=True)
class Cell:
    dataset: str
    k: int | str
    seed: int
    method: str

    @property
    def id(self) -> str:
        return f"{self.dataset}__k{self.k}__s{self.seed}__{self.method}"

    @classmethod
    def parse(cls, cell_id: str) -> Cell:
        try:
            dataset, k, seed, method = cell_id.split("__")
            k_value: int | str = int(k[1:]) if k[1:].isdigit() else k[1:]
            return cls(dataset, k_value, int(seed[1:]), method)
        except ValueError as exc:
            raise AugtoolError(
                f"{cell_id!r} is not a cell id (<dataset>__k<K>__s<seed>__<method>)"
            ) from exc


def cells_of(config: BenchConfig) -> list[Cell]:
    """Every cell, grouped by dataset, K and seed (so samples are reused together)."""
    return [
        Cell(d.name, k, seed, method)
        for d in config.datasets
        for k in config.k
        for seed in config.seeds
        for method in config.methods
    ]


def settings_key(config: BenchConfig) -> str:
    """What must not change inside one run folder: the whole config and the data."""
    inputs = sorted({p for d in config.datasets for p in (d.train, d.test)})
    return run_key("bench", config.to_dict(), [file_fingerprint(p)["sha256"] for p in inputs])


def prepare(config: BenchConfig, run_dir: str | Path) -> list[Cell]:
    """Create or reopen the run folder; refuse one made with other settings."""
    run_dir = Path(run_dir)
    key = settings_key(config)
    bench_file = run_dir / BENCH_FILE
    if bench_file.exists():
        existing = json.loads(bench_file.read_text(encoding="utf-8"))
        if existing.get("settings_key") != key:
            raise AugtoolError(
                f"{run_dir}: this run folder was made with different settings (config or "
                "data); use another --output folder"
            )
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise AugtoolError(f"{run_dir}: exists and is not a bench run folder")
    for sub in ("cells", "logs", "data", "models"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    if not bench_file.exists():
        inputs = sorted({p for d in config.datasets for p in (d.train, d.test)})
        write_json(
            bench_file,
            {
                "settings_key": key,
                "config": config.to_dict(),
                "inputs": [file_fingerprint(p) for p in inputs],
                "environment": environment(),
            },
        )
    cells = cells_of(config)
    for dataset in config.datasets:
        for k in config.k:
            for seed in config.seeds:
                sample_file(run_dir, dataset, k, seed)
    write_manifest(run_dir, cells)
    return cells


def load_run(run_dir: str | Path) -> BenchConfig:
    """The config a run folder was made with."""
    bench_file = Path(run_dir) / BENCH_FILE
    if not bench_file.is_file():
        raise AugtoolError(f"{run_dir}: not a bench run folder (no {BENCH_FILE})")
    return BenchConfig.from_dict(json.loads(bench_file.read_text(encoding="utf-8"))["config"])


def cell_command(run_dir: Path, cell: Cell) -> list[str]:
    return ["augtool", "bench", "cell", str(run_dir), cell.id]


def write_manifest(run_dir: Path, cells: list[Cell]) -> None:
    commands = [cell_command(run_dir.resolve(), cell) for cell in cells]
    atomic_write_text(run_dir / "manifest.txt", "".join(shlex.join(c) + "\n" for c in commands))
    atomic_write_text(
        run_dir / "manifest.jsonl",
        "".join(
            json.dumps({"cell": cell.id, "argv": c}) + "\n"
            for cell, c in zip(cells, commands, strict=True)
        ),
    )


def sample_file(run_dir: Path, dataset: DatasetSpec, k: int | str, seed: int) -> Path:
    """The K-shot sample of one dataset, K and seed (made once, atomically)."""
    from augtool.data import FieldMap, RecordSpec, k_shot, read_records

    path = run_dir / "data" / dataset.name / f"k{k}-s{seed}.jsonl"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = FieldMap(text=dataset.text_field, label=dataset.label_field)
    records = read_records(dataset.train, RecordSpec(fields=fields, require_label=True))
    chosen = k_shot(records, None if k == "all" else int(k), seed)
    atomic_write_text(path, "".join(json.dumps(r.to_dict()) + "\n" for r in chosen))
    return path


def finished(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Results of the cells that finished successfully."""
    results = {}
    for path in (run_dir / "cells").glob("*.json"):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if result.get("status") == "ok":
            results[result["cell"]] = result
    return results


class _LogReporter(Reporter):
    """Writes a cell's progress messages to its log file."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def task(self, description: str, total: int | None, completed: int = 0) -> Advance:
        self.log(f"{description}: {total} steps")
        return lambda _: None

    def log(self, message: str) -> None:
        self.handle.write(f"{time.strftime('%H:%M:%S')} {message}\n")
        self.handle.flush()


@contextmanager
def _timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def _augmented(
    cell: Cell,
    config: BenchConfig,
    sample: list[Any],
    seconds: dict[str, float],
    reporter: Reporter,
) -> tuple[list[Any], Path | None]:
    """The method's rows for this sample, from the content-keyed cache or freshly made,
    and the task model the cell's training continues from, if the method left one.

    A method may leave files for training in ``context.artifacts`` (a folder kept next to
    the cached rows) and name a task-model folder there as ``context.init_from``; the
    cache records it (``<rows>.init``) so a cache hit gives the same starting point.
    """
    from augtool.bench.methods import BENCH_METHODS, AugmentContext, method_kind
    from augtool.core.hub import cache_root
    from augtool.data import RecordSpec, read_records

    method = BENCH_METHODS.get(method_kind(cell.method))()
    options = config.methods[cell.method]
    if not method.adds_rows:
        return [], None
    key = run_key(
        "bench-augment",
        cell.method,
        options,
        config.per_original,
        cell.seed,
        [r.to_dict() for r in sample],
        content_identity(options),
    )
    cache = cache_root() / "bench-augment" / f"{cell.method}-{key}.jsonl"
    artifacts = cache.with_suffix(".artifacts")
    init_note = cache.with_suffix(".init")
    with _timed(seconds, "augment"):
        if cache.is_file():
            init = _cached_init(init_note, artifacts)
            if init is not None or not method.continues_training(options):
                reporter.log(f"augmentation served from cache {cache}")
                rows = read_records(cache, RecordSpec()) if cache.stat().st_size else []
                return rows, init
            reporter.log("cached augmentation lacks its task model; augmenting again")
        shutil.rmtree(artifacts, ignore_errors=True)
        init_note.unlink(missing_ok=True)
        artifacts.mkdir(parents=True, exist_ok=True)
        context = AugmentContext(
            seed=cell.seed,
            k=cell.k,
            per_original=config.per_original,
            reporter=reporter,
            artifacts=artifacts,
        )
        rows = method.augment(sample, options, context)
        init = None
        if context.init_from is not None:
            init = Path(context.init_from)
            if not init.resolve().is_relative_to(artifacts.resolve()):
                raise AugtoolError(
                    f"{cell.method}: init_from must lie inside the augmentation's artifacts "
                    f"folder {artifacts} (it is {init})"
                )
            atomic_write_text(init_note, str(init.resolve().relative_to(artifacts.resolve())))
        atomic_write_text(cache, "".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    return rows, init


def content_identity(options: dict[str, Any]) -> dict[str, str]:
    """Content fingerprints of the local models and files a method's options name
    (``hf:<folder>``, a folder or a file): a model retrained at the same path gives the
    augmentation cache another key, so stale rows are never served."""
    from augtool.core.hub import folder_fingerprint

    found: dict[str, str] = {}

    def visit(name: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{name}.{key}", item)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(f"{name}[{index}]", item)
        elif isinstance(value, str) and value.strip():
            path = Path(value.split(":", 1)[1] if value.startswith("hf:") else value)
            try:
                if path.is_dir():
                    found[name] = folder_fingerprint(path)
                elif path.is_file():
                    found[name] = file_fingerprint(path)["sha256"]
            except OSError:
                pass

    for option, value in sorted(options.items()):
        visit(option, value)
    return found


def _cached_init(note: Path, artifacts: Path) -> Path | None:
    """The task model a cached augmentation left, if its note and folder are intact."""
    if not note.is_file():
        return None
    folder = artifacts / note.read_text(encoding="utf-8").strip()
    return folder if folder.is_dir() else None


def run_cell(run_dir: str | Path, cell_id: str, reporter: Reporter = SILENT) -> dict[str, Any]:
    """Run one cell and write ``cells/<cell>.json``; errors are recorded, not raised."""
    run_dir = Path(run_dir)
    config = load_run(run_dir)
    cell = Cell.parse(cell_id)
    if cell not in cells_of(config):
        raise AugtoolError(f"{cell_id}: no such cell in {run_dir}")
    result_path = run_dir / "cells" / f"{cell.id}.json"
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with (run_dir / "logs" / f"{cell.id}.log").open("a", encoding="utf-8") as handle:
        log = _LogReporter(handle)
        log.log(f"cell {cell.id} started")
        try:
            result = _run_cell(run_dir, config, cell, log, seconds)
        except KeyboardInterrupt:
            log.log("interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - a broken cell must not stop the bench
            handle.write(traceback.format_exc())
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            result = {"status": "failed", "error": f"{type(exc).__name__}: {reason}"}
            log.log(f"failed: {result['error']}")
        seconds["total"] = round(time.perf_counter() - started, 3)
        result = {
            "cell": cell.id,
            "dataset": cell.dataset,
            "k": cell.k,
            "seed": cell.seed,
            "method": cell.method,
            **result,
            "seconds": seconds,
        }
        write_json(result_path, result)
        log.log(f"cell {cell.id} {result['status']} in {seconds['total']:.1f} s")
    return result


def _run_cell(
    run_dir: Path, config: BenchConfig, cell: Cell, log: Reporter, seconds: dict[str, float]
) -> dict[str, Any]:
    from augtool.bench.methods import BENCH_METHODS, method_kind
    from augtool.core.taskmodel.evaluate import evaluate_model
    from augtool.core.taskmodel.model import MODEL_FILE, TaskModel
    from augtool.core.taskmodel.train import train_task_model
    from augtool.data import FieldMap, RecordSpec, read_records

    dataset = next(d for d in config.datasets if d.name == cell.dataset)
    fields = FieldMap(text=dataset.text_field, label=dataset.label_field)
    with _timed(seconds, "sample"):
        sample = read_records(
            sample_file(run_dir, dataset, cell.k, cell.seed), RecordSpec(require_label=True)
        )
    augmented, init_from = _augmented(cell, config, sample, seconds, log)
    if config.augmented_labels == "hard":
        for row in augmented:
            if row.label_dist:
                row.label = max(row.label_dist.items(), key=lambda item: item[1])[0]
                row.label_dist = None
    known = {r.label for r in sample}
    augmented = [
        r for r in augmented if (r.label in known) or (r.label_dist and set(r.label_dist) <= known)
    ]
    method = BENCH_METHODS.get(method_kind(cell.method))()
    overrides = method.train_overrides(config.methods[cell.method])
    if init_from is not None:
        overrides["init_from"] = str(init_from)
        log.log(f"training continues from {init_from}")
    train_config = config.train_config(cell.seed, **overrides)
    model_dir = run_dir / "models" / cell.id
    init_info: dict[str, Any] | None = None
    with _timed(seconds, "train"):
        if (model_dir / MODEL_FILE).is_file():
            log.log("reusing the trained model of an earlier, interrupted attempt")
            model = TaskModel.load(model_dir, device=train_config.device)
            if init_from is not None:
                from augtool.core.taskmodel.model import resolve_init_model

                init_info = resolve_init_model(init_from).describe()
        else:
            trained = train_task_model(
                sample + augmented, train_config, model_dir, overwrite=True, reporter=log
            )
            model, init_info = trained.model, trained.init_from
    with _timed(seconds, "eval"):
        test = read_records(
            dataset.test,
            RecordSpec(fields=fields, require_label=True, known_labels=frozenset(model.labels)),
        )
        metrics = evaluate_model(model, test)
    if not config.keep_models:
        shutil.rmtree(model_dir, ignore_errors=True)
    return {
        "status": "ok",
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "n_sample": len(sample),
        "n_augmented": len(augmented),
        "n_test": metrics["n"],
        **({"init_from": init_info} if init_info else {}),
    }


def run_bench(
    run_dir: str | Path, cells: list[Cell], *, jobs: int = 1, reporter: Reporter = SILENT
) -> dict[str, Any]:
    """Run the cells that have no successful result yet; returns a timing summary."""
    run_dir = Path(run_dir)
    done = finished(run_dir)
    pending = [cell for cell in cells if cell.id not in done]
    advance = reporter.task("cells", len(cells), completed=len(cells) - len(pending))
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    if jobs <= 1:
        for cell in pending:
            result = run_cell(run_dir, cell.id, reporter)
            results.append(result)
            _report_cell(reporter, result)
            advance(1)
    else:
        results = _run_parallel(run_dir, pending, jobs, reporter, advance)
    wall = time.perf_counter() - started
    inside = sum(
        r["seconds"].get(part, 0.0) for r in results for part in ("augment", "train", "eval")
    )
    cell_total = sum(r["seconds"].get("total", 0.0) for r in results)
    summary = {
        "cells": len(cells),
        "ran": len(pending),
        "already_done": len(cells) - len(pending),
        "failed": [r["cell"] for r in results if r["status"] != "ok"],
        "jobs": jobs,
        "wall_seconds": round(wall, 2),
        "augment_train_eval_seconds": round(inside, 2),
        "cell_seconds": round(cell_total, 2),
    }
    if jobs <= 1 and wall > 0:
        summary["harness_overhead"] = round(max(0.0, wall - inside) / wall, 4)
    # where and with what the figures were measured, so a report can say so
    summary.update(date=utc_now(), machine=machine(), environment=environment())
    write_json(run_dir / "summary.json", summary)
    return summary


def _report_cell(reporter: Reporter, result: dict[str, Any]) -> None:
    if result["status"] == "ok":
        reporter.log(
            f"{result['cell']}: accuracy {result['accuracy']:.4f} "
            f"({result['seconds']['total']:.0f} s)"
        )
    else:
        reporter.log(f"{result['cell']}: FAILED ({result['error']})")


def _run_parallel(
    run_dir: Path, pending: list[Cell], jobs: int, reporter: Reporter, advance: Advance
) -> list[dict[str, Any]]:
    """Each cell in its own ``augtool bench cell`` process, ``jobs`` at a time."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    queue = list(pending)
    running: dict[str, subprocess.Popen[bytes]] = {}
    results = []
    try:
        while queue or running:
            while queue and len(running) < jobs:
                cell = queue.pop(0)
                argv = [sys.executable, "-m", *cell_command(run_dir, cell)]
                running[cell.id] = subprocess.Popen(
                    argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            time.sleep(0.2)
            for cell_id, process in list(running.items()):
                if process.poll() is None:
                    continue
                del running[cell_id]
                path = run_dir / "cells" / f"{cell_id}.json"
                if path.is_file():
                    result = json.loads(path.read_text(encoding="utf-8"))
                else:
                    result = {
                        "cell": cell_id,
                        "status": "failed",
                        "seconds": {},
                        "error": f"process exited with {process.returncode}",
                    }
                results.append(result)
                _report_cell(reporter, result)
                advance(1)
    except KeyboardInterrupt:
        for process in running.values():
            process.terminate()
        raise
    return results
