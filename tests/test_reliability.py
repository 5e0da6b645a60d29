"""Reliability of outputs (issue 17): one writer per output, no reuse of stale work, no
silent discards, no invalid JSON written, unique ids, finished work recognised."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl

from augtool.data import writer as writer_module
from augtool.data.lock import OutputLock, lock_path_for
from augtool.errors import AugtoolError

SOURCE = EXAMPLES / "intents-train.jsonl"
EDA_ARGS = ("--n-aug", 2, "--seed", 7)


def _hold_lock(output: Path) -> subprocess.Popen:
    """Another process holding ``output``'s write lock until killed."""
    code = (
        "import sys, time\n"
        "from augtool.data.lock import lock_output\n"
        "lock = lock_output(sys.argv[1])\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(output)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_is_refused_and_a_crashed_holder_does_not_block(tmp_path: Path) -> None:
    out = tmp_path / "cc.jsonl"
    holder = _hold_lock(out)
    try:
        result = run_cli("eda", SOURCE, "-o", out, *EDA_ARGS)
        assert_one_line_error(result, "--output", f"process {holder.pid}", "already writing")
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the lock file stays behind
        holder.wait()
    assert lock_path_for(out).exists()
    result = run_cli("eda", SOURCE, "-o", out, *EDA_ARGS)
    assert result.exit_code == 0, result.stderr
    assert not lock_path_for(out).exists()  # released (and removed) at the end
    assert len(read_jsonl(out)) == 96 * 2


def test_two_identical_runs_started_together_leave_one_valid_output(tmp_path: Path) -> None:
    rows = read_jsonl(SOURCE) * 1
    rows = [{**row, "id": f"{row['id']}-{copy}"} for copy in range(20) for row in rows]
    source = write_jsonl(tmp_path / "big.jsonl", rows)
    out = tmp_path / "cc.jsonl"
    command = [sys.executable, "-m", "augtool", "eda", str(source), "-o", str(out), "--n-aug", "4"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    first_out, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err
    if second.returncode != 0:  # refused while the first one ran (or found its output)
        last = second.stderr.strip().splitlines()[-1]
        assert "already writing" in last or "already exists" in last, second.stderr
    written = read_jsonl(out)
    ids = [row["id"] for row in written]
    assert len(ids) == len(set(ids)) == len(rows) * 4


def test_predict_never_resumes_with_rows_of_a_retrained_model(
    tiny_st: Path, keyword_data: dict, tmp_path: Path, monkeypatch
) -> None:
    from augtool.core.taskmodel.model import TaskModel

    model = tmp_path / "model"
    train = ("train", keyword_data["train"], "-o", model, "--encoder", tiny_st, "--epochs", 1)
    assert run_cli(*train).exit_code == 0
    out = tmp_path / "preds.jsonl"
    original = TaskModel.logits
    calls = {"n": 0}

    def interrupted(self, texts, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, texts, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(TaskModel, "logits", interrupted)
        result = run_cli("predict", model, keyword_data["test"], "-o", out, "--batch-size", 4)
    assert result.exit_code == 130
    assert len((tmp_path / "preds.jsonl.partial").read_text().splitlines()) == 4

    # Retrained in place (other seed, other weights) at the same path.
    assert run_cli(*train, "--seed", 5, "--lr", 1e-3, "--overwrite").exit_code == 0
    result = run_cli("predict", model, keyword_data["test"], "-o", out, "--batch-size", 4)
    assert result.exit_code == 0, result.stderr
    assert "discarded 4 rows" in result.stderr and "model content" in result.stderr
    fresh = tmp_path / "fresh.jsonl"
    assert run_cli("predict", model, keyword_data["test"], "-o", fresh).exit_code == 0
    assert out.read_text() == fresh.read_text()


def _interrupt_after_first_write(monkeypatch) -> None:
    original = writer_module.JsonlWriter.write
    calls = {"n": 0}

    def interrupted(self, rows):
        calls["n"] += 1
        if calls["n"] == 1:
            original(self, list(rows)[:5])
            raise KeyboardInterrupt
        return original(self, rows)

    monkeypatch.setattr(writer_module.JsonlWriter, "write", interrupted)


def test_resume_ignores_how_the_input_path_is_spelled_and_names_real_differences(
    tmp_path: Path, monkeypatch
) -> None:
    local = write_jsonl(tmp_path / "train.jsonl", read_jsonl(SOURCE))
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        _interrupt_after_first_write(patch)
        assert run_cli("eda", local, "-o", out, *EDA_ARGS).exit_code == 130
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as patch:  # ./train.jsonl: the same job, resumed
        _interrupt_after_first_write(patch)
        result = run_cli("eda", "./train.jsonl", "-o", out, *EDA_ARGS)
    assert "resuming: 5 rows already written" in result.stderr
    assert "discarded" not in result.stderr

    result = run_cli("eda", local.resolve(), "-o", out, "--n-aug", 2, "--seed", 8)
    assert result.exit_code == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "discarded" in line]
    assert len(warning) == 1 and "rows of an unfinished earlier run" in warning[0]
    assert "--seed 7 -> 8" in warning[0]


def test_rows_with_nan_are_never_written(tmp_path: Path) -> None:
    writer = writer_module.JsonlWriter(tmp_path / "o.jsonl", run_key="k")
    with pytest.raises(AugtoolError, match="row a: holds NaN"):
        writer.write([{"id": "a", "score": float("nan")}])
    writer.close()
    assert (tmp_path / "o.jsonl.partial").read_text() == ""
    writer_module.write_json(tmp_path / "m.json", {"f1": float("nan"), "n": [float("inf"), 1.0]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"f1": None, "n": [None, 1.0]}


def test_eda_ids_never_repeat_an_input_id(tmp_path: Path) -> None:
    rows = [
        {"id": "q1", "text": "book a table for two tonight please", "label": "a"},
        {"id": "q1-eda0", "text": "play some quiet music in the kitchen", "label": "b"},
        {"id": "q1-eda1-1", "text": "what is the weather like tomorrow", "label": "c"},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    result = run_cli("eda", source, "-o", out, "--n-aug", 2, "--keep-original")
    assert result.exit_code == 0, result.stderr
    ids = [row["id"] for row in read_jsonl(out)]
    assert len(ids) == len(set(ids)) == 9
    assert "q1-eda0-1" in ids and "q1-eda1" in ids  # q1's first row moved aside


def test_a_finished_eda_is_not_redone(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert run_cli("eda", SOURCE, "-o", out, *EDA_ARGS).exit_code == 0
    before = out.stat().st_mtime_ns
    for extra in ((), ("--overwrite",)):
        result = run_cli("eda", SOURCE, "-o", out, *EDA_ARGS, *extra)
        assert result.exit_code == 0, result.stderr
        assert "already complete" in result.stdout
        assert out.stat().st_mtime_ns == before
    # Another setting is another job: refused without --overwrite, redone with it.
    assert run_cli("eda", SOURCE, "-o", out, "--n-aug", 3).exit_code != 0
    assert run_cli("eda", SOURCE, "-o", out, "--n-aug", 3, "--overwrite").exit_code == 0
    assert len(read_jsonl(out)) == 96 * 3


def test_every_numeric_option_has_a_declared_range() -> None:
    import typer

    from augtool.cli.app import app
    from augtool.core.option_ranges import RANGES

    missing = set()

    def walk(command, path=()):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
            return
        for param in command.params:
            annotation = str(param.type_descriptor.annotation)
            if ("int" in annotation or "float" in annotation) and param.name not in RANGES:
                missing.add(f"{' '.join(path)} --{param.name.replace('_', '-')}")

    walk(typer.main.get_command(app))
    assert not missing, f"numeric options without a range in option_ranges.RANGES: {missing}"


def test_lock_is_reentrant_in_one_process_and_released_on_exit(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    with OutputLock(out):
        with OutputLock(out):
            assert lock_path_for(out).exists()
        assert lock_path_for(out).exists()  # the outer hold is still there
    assert not lock_path_for(out).exists()
    if os.name == "posix":
        holder = _hold_lock(out)
        try:
            with pytest.raises(AugtoolError, match="already writing"):
                OutputLock(out).acquire()
        finally:
            holder.kill()
            holder.wait()
        OutputLock(out).acquire().release()


def test_training_says_what_differs_when_it_discards_a_checkpoint(
    tiny_st: Path, keyword_data: dict, tmp_path: Path, monkeypatch
) -> None:
    from augtool.core.taskmodel import train as train_module

    out = tmp_path / "model"
    args = ("train", keyword_data["train"], "-o", out, "--encoder", tiny_st, "--epochs", 2)
    original = train_module.train_task_model

    def stop_after_a_step(*positional, **keywords):
        def hook(epoch: int, step: int) -> None:
            if epoch == 1 and step == 2:
                raise KeyboardInterrupt

        return original(*positional, **{**keywords, "on_step_end": hook})

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "train_task_model", stop_after_a_step)
        result = run_cli(*args, "--checkpoint-every", 0.000001)
    assert result.exit_code == 130, result.stderr
    result = run_cli(*args, "--lr", 1e-3)
    assert result.exit_code == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "discarded" in line]
    assert len(warning) == 1 and "--lr" in warning[0] and "model.partial" in warning[0]


def test_rerunning_a_finished_command_is_a_no_op(
    tiny_st: Path, keyword_data: dict, tmp_path: Path
) -> None:
    """A script restarted after a crash that came after the output was finished."""
    model = tmp_path / "model"
    train = ("train", keyword_data["train"], "-o", model, "--encoder", tiny_st, "--epochs", 1)
    predict = ("predict", model, keyword_data["test"], "-o", tmp_path / "p.jsonl")
    embed = ("embed", keyword_data["test"], "-o", tmp_path / "e.npy", "--encoder", tiny_st)
    for command in (train, predict, embed):
        assert run_cli(*command).exit_code == 0
        result = run_cli(*command)
        assert result.exit_code == 0, result.stderr
        assert "already complete" in result.stdout, command[0]
    # Retraining the model changes predict's job: refused (the output exists) until asked.
    assert run_cli(*train, "--seed", 3, "--overwrite").exit_code == 0
    result = run_cli(*predict)
    assert_one_line_error(result, "already exists")
