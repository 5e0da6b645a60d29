"""``augtool train`` checkpoints mid-epoch on ``--checkpoint-every`` and a killed run,
rerun with the same command, resumes there and ends with the uninterrupted run's model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from conftest import read_jsonl, write_jsonl

import augtool.core.taskmodel.train as train_module

# 36 keyword rows, batch size 8: 5 optimizer steps per epoch. A fine-tuned encoder (its
# dropout and the head's consume the torch RNG) with Mixup (lambdas and pairings).
OPTS = ("--lr", 1e-3, "--head-lr", 1e-2, "--batch-size", 8, "--mixup", "--alpha", 0.4)
EVERY_STEP = ("--checkpoint-every", 1e-9)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    found = {f"head.{k}": v for k, v in load_file(folder / "head.safetensors").items()}
    found.update(
        {f"encoder.{k}": v for k, v in load_file(folder / "encoder" / "model.safetensors").items()}
    )
    return found


def _assert_same_model(ours: Path, reference: Path) -> None:
    mine, theirs = _weights(ours), _weights(reference)
    assert mine.keys() == theirs.keys()
    for name, tensor in theirs.items():
        assert torch.allclose(mine[name], tensor, atol=1e-6), name
    assert (ours / "train_log.jsonl").read_text() == (reference / "train_log.jsonl").read_text()


def _train(monkeypatch, *args, stop_at: tuple[int, int] | None = None):
    """Run ``augtool train``; returns the CLI result and the (epoch, step) pairs trained.

    ``stop_at`` raises KeyboardInterrupt (what Ctrl-C raises) right after that optimizer
    step, once any checkpoint due there is written.
    """
    steps: list[tuple[int, int]] = []
    original = train_module.train_task_model

    def on_step_end(epoch: int, step: int) -> None:
        steps.append((epoch, step))
        if (epoch, step) == stop_at:
            raise KeyboardInterrupt

    def counting(*a, **kw):
        return original(*a, **kw, on_step_end=on_step_end)

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "train_task_model", counting)
        result = run_cli("train", *args)
    return result, steps


def _progress(out: Path) -> dict:
    partial = out.with_name(out.name + ".partial")
    return json.loads((partial / "checkpoint" / "progress.json").read_text())


@pytest.mark.parametrize(
    ("epochs", "with_dev", "stop_at"),
    [(1, False, (1, 3)), (3, True, (2, 2))],
    ids=["one-epoch", "dev-early-stopping"],
)
def test_a_run_killed_mid_epoch_resumes_there_and_ends_with_the_same_model(
    tiny_st: Path, keyword_data: dict, tmp_path: Path, monkeypatch, epochs, with_dev, stop_at
) -> None:
    data = keyword_data["train"]
    extra: tuple = ("--encoder", tiny_st, "--epochs", epochs, *OPTS, *EVERY_STEP)
    if with_dev:
        dev = write_jsonl(tmp_path / "dev.jsonl", read_jsonl(keyword_data["test"])[:9])
        extra += ("--dev", dev, "--patience", 5)
    reference = tmp_path / "reference"
    result, all_steps = _train(monkeypatch, data, "-o", reference, *extra)
    assert result.exit_code == 0, result.stderr
    assert len(all_steps) == 5 * epochs

    out = tmp_path / "model"
    result, done = _train(monkeypatch, data, "-o", out, *extra, stop_at=stop_at)
    assert result.exit_code == 130, result.stderr
    assert "rerun the same command to resume" in result.stderr
    assert not out.exists() and done[-1] == stop_at
    progress = _progress(out)
    assert (progress["epoch"], progress["step"]) == stop_at

    result, redone = _train(monkeypatch, data, "-o", out, *extra)
    assert result.exit_code == 0, result.stderr
    epoch, step = stop_at
    assert f"resuming in epoch {epoch} of {epochs} after step {step} of 5" in result.stderr
    assert redone == all_steps[len(done) :], "finished steps were trained again"
    _assert_same_model(out, reference)
    assert not out.with_name("model.partial").exists()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["resumed_epochs"] == epoch - 1
    if with_dev:
        assert meta["best_epoch"] == json.loads((reference / "meta.json").read_text())["best_epoch"]


def test_a_kill_while_writing_a_checkpoint_leaves_the_previous_one_usable(
    tiny_st: Path, keyword_data: dict, tmp_path: Path, monkeypatch
) -> None:
    data = keyword_data["train"]
    extra = ("--encoder", tiny_st, "--epochs", 1, *OPTS, *EVERY_STEP)
    reference = tmp_path / "reference"
    assert _train(monkeypatch, data, "-o", reference, *extra)[0].exit_code == 0

    real_save = torch.save
    writes = []

    def killed_on_third_checkpoint(obj, path, *args, **kwargs):
        writes.append(path)
        if len(writes) == 3:  # half a file, then the process "dies"
            Path(path).write_bytes(b"\x80\x02partial")
            raise KeyboardInterrupt
        return real_save(obj, path, *args, **kwargs)

    out = tmp_path / "model"
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", killed_on_third_checkpoint)
        result, _ = _train(monkeypatch, data, "-o", out, *extra)
    assert result.exit_code == 130, result.stderr
    checkpoints = out.with_name("model.partial") / "checkpoint"
    assert (checkpoints / "step-3.tmp").is_dir()  # the interrupted write
    assert _progress(out)["folder"] == "step-2"

    result, redone = _train(monkeypatch, data, "-o", out, *extra)
    assert result.exit_code == 0, result.stderr
    assert "resuming in epoch 1 of 1 after step 2 of 5" in result.stderr
    assert redone == [(1, 3), (1, 4), (1, 5)]
    _assert_same_model(out, reference)


def test_checkpoint_every_zero_checkpoints_at_epoch_ends_only(
    tiny_st: Path, keyword_data: dict, tmp_path: Path, monkeypatch
) -> None:
    data = keyword_data["train"]
    extra = ("--encoder", tiny_st, "--epochs", 2, *OPTS, "--checkpoint-every", 0)
    reference = tmp_path / "reference"
    assert _train(monkeypatch, data, "-o", reference, *extra)[0].exit_code == 0

    out = tmp_path / "model"
    result, _ = _train(monkeypatch, data, "-o", out, *extra, stop_at=(2, 3))
    assert result.exit_code == 130
    assert (_progress(out)["epoch"], _progress(out)["step"]) == (1, 5)

    result, redone = _train(monkeypatch, data, "-o", out, *extra)
    assert result.exit_code == 0, result.stderr
    assert "resuming from epoch 1 of 2" in result.stderr
    assert redone == [(2, s) for s in range(1, 6)]
    _assert_same_model(out, reference)


def test_no_checkpoint_is_due_yet_so_a_rerun_starts_over(
    tiny_st: Path, keyword_data: dict, tmp_path: Path, monkeypatch
) -> None:
    data = keyword_data["train"]
    extra = ("--encoder", tiny_st, "--epochs", 1, *OPTS, "--checkpoint-every", 3600)
    out = tmp_path / "model"
    assert _train(monkeypatch, data, "-o", out, *extra, stop_at=(1, 4))[0].exit_code == 130
    assert not (out.with_name("model.partial") / "checkpoint" / "progress.json").exists()
    result, redone = _train(monkeypatch, data, "-o", out, *extra)
    assert result.exit_code == 0 and "resuming" not in result.stderr
    assert redone == [(1, s) for s in range(1, 6)]


def test_a_negative_interval_is_a_one_line_error(
    tiny_st: Path, keyword_data: dict, tmp_path: Path
) -> None:
    from augtool.core.taskmodel.config import TrainConfig
    from augtool.data import Record
    from augtool.errors import OptionError

    rows = [Record(**row) for row in read_jsonl(keyword_data["train"])]
    with pytest.raises(OptionError, match="--checkpoint-every: must be at least 0"):
        train_module.train_task_model(
            rows, TrainConfig(encoder=str(tiny_st)), tmp_path / "api", checkpoint_seconds=-1
        )
    result = run_cli("train", keyword_data["train"], "-o", tmp_path / "m", "--checkpoint-every", -1)
    assert_one_line_error(result, "--checkpoint-every", "at least 0")
    assert not (tmp_path / "m").exists()
