"""augtool bench: a tiny end-to-end benchmark, resume, statistics, failures, bad configs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_helpers import assert_one_line_error, run_cli
from conftest import keyword_rows, read_jsonl, write_jsonl

from augtool.bench.methods import BENCH_METHODS, BenchMethod
from augtool.core.metrics import mean_std, paired_wilcoxon


@pytest.fixture
def bench_config(tiny_st: Path, tmp_path: Path):
    """Write a tiny bench config (tiny random encoder, 2 methods, K = 2, 2 seeds)."""
    write_jsonl(tmp_path / "train.jsonl", keyword_rows(6, seed=1, prefix="tr"))
    write_jsonl(tmp_path / "test.jsonl", keyword_rows(4, seed=2, prefix="te"))

    def make(name: str = "bench.yaml", **overrides) -> Path:
        config = {
            "datasets": {"kw": {"train": "train.jsonl", "test": "test.jsonl"}},
            "k": [2],
            "seeds": [1, 2],
            "task_model": {
                "encoder": str(tiny_st),
                "epochs": 3,
                "lr": 1e-3,
                "head_lr": 1e-2,
                "batch_size": 4,
            },
            "methods": {"base": {}, "eda": {"ops": "rs,rd"}},
            "per_original": 2,
        }
        config.update(overrides)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return make


def test_tiny_bench_end_to_end(bench_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("bench", bench_config(), "-o", run)
    assert result.exit_code == 0, result.stderr
    assert "| base |" in result.stdout and "| eda |" in result.stdout
    assert "4 cells run, 0 already done" in result.stdout
    cells = {p.stem: json.loads(p.read_text()) for p in (run / "cells").glob("*.json")}
    assert set(cells) == {
        "kw__k2__s1__base",
        "kw__k2__s2__base",
        "kw__k2__s1__eda",
        "kw__k2__s2__eda",
    }
    eda = cells["kw__k2__s1__eda"]
    assert eda["status"] == "ok" and eda["n_sample"] == 6 and eda["n_augmented"] == 12
    assert cells["kw__k2__s1__base"]["n_augmented"] == 0
    assert set(eda["seconds"]) >= {"augment", "train", "eval", "total"}
    # The K-shot sample is shared by every method of a seed.
    assert len(read_jsonl(run / "data" / "kw" / "k2-s1.jsonl")) == 6
    lines = (run / "manifest.txt").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("augtool bench cell ")
    assert "epoch 3/3" in (run / "logs" / "kw__k2__s1__eda.log").read_text()
    bench = json.loads((run / "bench.json").read_text())
    assert bench["config"]["k"] == [2] and bench["environment"]["augtool"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ran"] == 4 and 0 <= summary["harness_overhead"] < 1
    assert not list((run / "models").iterdir())  # models removed after evaluation

    for fmt, marker in (
        ("markdown", "Wilcoxon"),
        ("csv", "accuracy_mean"),
        ("latex", r"\toprule"),
        ("json", '"wilcoxon"'),
    ):
        out = run_cli("bench", "report", run, "--format", fmt)
        assert out.exit_code == 0 and marker in out.stdout, (fmt, out.stdout)
    report = json.loads(run_cli("bench", "report", run, "--format", "json").stdout)
    base = next(r for r in report["rows"] if r["method"] == "base")
    expected = [cells[f"kw__k2__s{s}__base"]["accuracy"] for s in (1, 2)]
    assert base["mean"] == pytest.approx(np.mean(expected))
    assert base["std"] == pytest.approx(np.std(expected, ddof=1))
    assert report["wilcoxon"][0]["pair"] == ["eda", "base"]
    plotted = run_cli("bench", "report", run, "--plot")
    assert plotted.exit_code == 0 and (run / "plots" / "kw.png").stat().st_size > 1000


def test_rerun_resumes_only_unfinished_cells(bench_config, tmp_path: Path, monkeypatch) -> None:
    from augtool.bench import runner

    original = runner.run_cell
    ran: list[str] = []

    def killed_on_third(run_dir, cell_id, reporter=None):
        if len(ran) == 2:
            raise KeyboardInterrupt
        ran.append(cell_id)
        return original(run_dir, cell_id)

    run = tmp_path / "run"
    config = bench_config()
    with monkeypatch.context() as patch:
        patch.setattr(runner, "run_cell", killed_on_third)
        assert run_cli("bench", config, "-o", run).exit_code == 130
    assert len(list((run / "cells").glob("*.json"))) == 2

    calls: list[str] = []

    def counting(run_dir, cell_id, reporter=None):
        calls.append(cell_id)
        return original(run_dir, cell_id)

    with monkeypatch.context() as patch:
        patch.setattr(runner, "run_cell", counting)
        result = run_cli("bench", config, "-o", run)
    assert result.exit_code == 0, result.stderr
    assert "2 cells run, 2 already done" in result.stdout
    all_ids = [cell.id for cell in runner.cells_of(runner.load_run(run))]
    assert sorted(calls) == sorted(set(all_ids) - set(ran))


class Broken(BenchMethod):
    name = "broken"
    adds_rows = True

    def augment(self, sample, options, context):
        raise RuntimeError("this method is broken on purpose")


def test_a_broken_method_fails_its_cells_only(bench_config, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(BENCH_METHODS._entries, "broken", Broken)
    run = tmp_path / "run"
    result = run_cli("bench", bench_config(methods={"base": {}, "broken": {}}), "-o", run)
    assert result.exit_code == 1
    assert "2 cells failed" in result.stderr
    cells = {p.stem: json.loads(p.read_text()) for p in (run / "cells").glob("*.json")}
    assert cells["kw__k2__s1__base"]["status"] == "ok"
    failed = cells["kw__k2__s1__broken"]
    assert failed["status"] == "failed"
    assert failed["error"] == "RuntimeError: this method is broken on purpose"
    assert "Traceback" in (run / "logs" / "kw__k2__s1__broken.log").read_text()
    report = run_cli("bench", "report", run)
    assert "failed: kw__k2__s1__broken" in report.stdout


class WarmStart(BenchMethod):
    """Trains a task model during augmentation and has the cell continue from it."""

    name = "warm"
    adds_rows = True

    def check(self, options, bench) -> None:
        pass

    def augment(self, sample, options, context):
        from augtool.core.taskmodel.config import TrainConfig
        from augtool.core.taskmodel.train import train_task_model

        folder = context.artifacts / "theta"
        config = TrainConfig(encoder=options["encoder"], epochs=2, lr=1e-3, seed=context.seed)
        train_task_model(sample, config, folder)
        context.init_from = folder
        return []

    def train_overrides(self, options):
        return {"epochs": 1, "lr": 1e-12, "head_lr": 1e-12}  # the weights barely move

    def continues_training(self, options) -> bool:
        return True


def test_a_method_can_have_the_cell_continue_from_its_task_model(
    bench_config, tiny_st: Path, tmp_path: Path, monkeypatch
) -> None:
    import torch
    from safetensors.torch import load_file

    from augtool.core.taskmodel.model import resolve_init_model

    monkeypatch.setitem(BENCH_METHODS._entries, "warm", WarmStart)
    config = bench_config(methods={"warm": {"encoder": str(tiny_st)}}, seeds=[1], keep_models=True)
    run = tmp_path / "run"
    result = run_cli("bench", config, "-o", run)
    assert result.exit_code == 0, result.stderr
    cell = json.loads((run / "cells" / "kw__k2__s1__warm.json").read_text())
    init = Path(cell["init_from"]["path"])
    assert init.name == "theta" and init.parent.name.endswith(".artifacts")
    assert cell["init_from"]["sha256"] == resolve_init_model(init).fingerprint
    log = (run / "logs" / "kw__k2__s1__warm.log").read_text()
    assert f"training continues from {init}" in log
    # The cell's model is the method's model, trained on (at ~0 learning rate).
    ours = load_file(run / "models" / "kw__k2__s1__warm" / "head.safetensors")
    theirs = load_file(init / "head.safetensors")
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in theirs)

    # Another run folder: the augmentation and its task model come from the cache.
    again = tmp_path / "again"
    assert run_cli("bench", config, "-o", again).exit_code == 0
    cached = json.loads((again / "cells" / "kw__k2__s1__warm.json").read_text())
    assert cached["init_from"] == cell["init_from"]
    assert "served from cache" in (again / "logs" / "kw__k2__s1__warm.log").read_text()

    # A cache whose task model went missing is redone, not trained from scratch.
    import shutil

    shutil.rmtree(init)
    third = tmp_path / "third"
    assert run_cli("bench", config, "-o", third).exit_code == 0
    assert (
        "lacks its task model; augmenting again"
        in (third / "logs" / "kw__k2__s1__warm.log").read_text()
    )
    assert init.is_dir()


def test_task_model_init_from_is_checked_before_running(bench_config, tmp_path: Path) -> None:
    config = bench_config(task_model={"encoder": "x", "init_from": str(tmp_path / "missing")})
    assert_one_line_error(
        run_cli("bench", config, "-o", tmp_path / "run"),
        "task_model: --init-from",
        "no such model folder",
    )


def test_parallel_jobs_and_manifest_cells(bench_config, tmp_path: Path) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert run_cli("bench", bench_config(), "-o", serial).exit_code == 0
    result = run_cli("bench", bench_config(), "-o", parallel, "--jobs", 2)
    assert result.exit_code == 0, result.stderr

    def scores(run: Path) -> dict:
        return {p.stem: json.loads(p.read_text())["accuracy"] for p in (run / "cells").glob("*")}

    assert scores(serial) == scores(parallel)

    prepared = tmp_path / "prepared"
    result = run_cli("bench", bench_config(), "-o", prepared, "--prepare-only")
    assert result.exit_code == 0 and "prepared 4 cells" in result.stdout
    first = (prepared / "manifest.txt").read_text().splitlines()[0].split()
    assert first[:3] == ["augtool", "bench", "cell"]
    assert run_cli(*first[1:]).exit_code == 0
    partial = run_cli("bench", "report", prepared)
    assert "Incomplete: 3 of 4 cells have no result" in partial.stdout


def test_augmentations_are_reused_across_run_folders(bench_config, tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert run_cli("bench", bench_config(), "-o", first).exit_code == 0
    other = bench_config(
        "other.yaml",
        task_model={**yaml.safe_load(bench_config().read_text())["task_model"], "epochs": 2},
    )
    second = tmp_path / "second"
    assert run_cli("bench", other, "-o", second).exit_code == 0
    assert "augmentation served from cache" in (second / "logs" / "kw__k2__s1__eda.log").read_text()


def test_statistics_match_scipy() -> None:
    from scipy.stats import wilcoxon

    a = {1: 0.61, 2: 0.58, 3: 0.70, 4: 0.66, 5: 0.52, 6: 0.63}
    b = {1: 0.55, 2: 0.57, 3: 0.64, 4: 0.67, 5: 0.49, 6: 0.60, 7: 0.99}  # seed 7 unpaired
    test = paired_wilcoxon(a, b)
    reference = wilcoxon([a[s] for s in range(1, 7)], [b[s] for s in range(1, 7)])
    assert test.n == 6
    assert test.p_value == pytest.approx(reference.pvalue)
    assert test.statistic == pytest.approx(reference.statistic)
    assert test.mean_difference == pytest.approx(np.mean([a[s] - b[s] for s in range(1, 7)]))
    same = paired_wilcoxon({1: 0.5, 2: 0.6}, {1: 0.5, 2: 0.6})
    assert same.p_value is None and same.note == "all differences are zero"
    assert paired_wilcoxon({1: 0.5}, {2: 0.5}).n == 0
    mean, std = mean_std([0.59, 0.72, 0.66])
    assert mean == pytest.approx(np.mean([0.59, 0.72, 0.66]))
    assert std == pytest.approx(np.std([0.59, 0.72, 0.66], ddof=1))
    assert mean_std([0.5]) == (0.5, 0.0) and math.isnan(mean_std([])[0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"methods": {"base": {}, "magic": {}}}, "unknown method 'magic' (known: base, bt, eda,"),
        (
            {"datasets": {"kw": {"train": "nope.jsonl", "test": "test.jsonl"}}},
            "datasets.kw.train: file not found: nope.jsonl",
        ),
        ({"k": [7]}, "k: 7 is larger than the smallest class of kw"),
        ({"seeds": []}, "seeds: give at least one seed"),
        ({"epochs": 3}, "unknown key(s) epochs"),
        ({"methods": {"eda": {"n_agu": 3}}}, "methods.eda: --n-agu: unknown option for eda"),
        ({"task_model": {"epoch": 3}}, "task_model: unknown key(s) epoch"),
        ({"k": [0]}, "k: 0 is not a positive integer or all"),
        ({"compare": [["eda", "bt"]]}, "compare: ['eda', 'bt'] must name two"),
    ],
)
def test_bad_configs_are_rejected_before_running(
    bench_config, tmp_path: Path, overrides, message
) -> None:
    result = run_cli("bench", bench_config(**overrides), "-o", tmp_path / "run")
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()


def test_a_run_folder_keeps_its_settings(bench_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_cli("bench", bench_config(), "-o", run).exit_code == 0
    other = bench_config("other.yaml", seeds=[1, 2, 3])
    assert_one_line_error(run_cli("bench", other, "-o", run), "different settings")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.txt").write_text("mine")
    assert_one_line_error(
        run_cli("bench", bench_config(), "-o", tmp_path / "notes"), "not a bench run folder"
    )


def test_an_llm_method_that_lost_rows_fails_its_cell_until_a_rerun_gets_them(
    bench_config, tmp_path: Path
) -> None:
    """LLM-Rew with a request that fails after retries: the cell is failed (not ok with
    fewer rows), nothing is cached, and the next run asks again and succeeds."""
    from augtool.testing.stub_openai import Status, StubOpenAIServer

    with StubOpenAIServer() as stub:
        options = {
            "llm": "openai:stub",
            "base_url": stub.base_url,
            "max_retries": 0,
            "concurrency": 1,
        }
        config = bench_config(methods={"llm-rew": options}, seeds=[1])
        stub.script(Status(500))  # the first request of the cell fails, no retry
        run = tmp_path / "run"
        result = run_cli("bench", config, "-o", run)
        assert result.exit_code == 1
        cell = json.loads((run / "cells" / "kw__k2__s1__llm-rew.json").read_text())
        assert cell["status"] == "failed"
        assert "1 of 12 requests gave no row" in cell["error"]
        assert "retried on the next run" in cell["error"]
        asked = len(stub.requests)
        result = run_cli("bench", config, "-o", run)
        assert result.exit_code == 0, result.stderr
        cell = json.loads((run / "cells" / "kw__k2__s1__llm-rew.json").read_text())
        assert cell["status"] == "ok"
        assert len(stub.requests) == asked + 1  # only the lost request was asked again


def test_the_augmentation_cache_key_follows_local_model_content(tmp_path: Path) -> None:
    """A model retrained at the same path gets another augmentation cache key."""
    from augtool.bench.runner import content_identity

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights v1")
    options = {"llm": f"hf:{model}", "alpha": 0.4, "other": "not-a-path"}
    first = content_identity(options)
    assert set(first) == {"llm"}
    (model / "model.safetensors").write_bytes(b"weights v2, retrained")
    assert content_identity(options) != first
    assert content_identity({"adaptor": str(model)}) == {
        "adaptor": content_identity(options)["llm"]
    }


def test_the_config_module_never_imports_the_method_registry(bench_config) -> None:
    """bench.config reads settings; the registry (which imports every method) is only
    consulted by check_methods, so the two modules import in one direction only."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from augtool.bench.config import load_bench_config\n"
        f"load_bench_config({str(bench_config())!r})\n"
        "assert 'augtool.bench.methods' not in sys.modules, 'config imported the registry'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_report_joins_runs_of_the_same_grid(bench_config, tmp_path: Path) -> None:
    """A method run later in its own folder joins the finished grid's table; a folder of
    another grid (other seeds) is refused in one line."""
    first, later, other = tmp_path / "first", tmp_path / "later", tmp_path / "other"
    assert run_cli("bench", bench_config(), "-o", first).exit_code == 0
    mixup = bench_config("mixup.yaml", methods={"mixup": {"alpha": 0.4}})
    assert run_cli("bench", mixup, "-o", later).exit_code == 0
    result = run_cli("bench", "report", first, later, "--format", "json")
    assert result.exit_code == 0, result.stderr
    joined = json.loads(result.stdout)
    assert [r["method"] for r in joined["rows"]] == ["base", "eda", "mixup"]
    alone = json.loads(run_cli("bench", "report", later, "--format", "json").stdout)
    assert joined["rows"][2] == alone["rows"][0]  # the later run's cells, unchanged
    assert ["mixup", "base"] in [t["pair"] for t in joined["wilcoxon"]]

    assert run_cli("bench", bench_config("o.yaml", seeds=[3, 4]), "-o", other).exit_code == 0
    assert_one_line_error(run_cli("bench", "report", first, other), "not the same grid")
    assert_one_line_error(run_cli("bench", "report", first, first), "also in an earlier run")
