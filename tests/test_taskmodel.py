"""The task model: it learns, uses soft labels, mixes, stops early, saves, reloads and resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import keyword_rows

from augtool.core.taskmodel.config import TrainConfig
from augtool.core.taskmodel.evaluate import evaluate_model
from augtool.core.taskmodel.model import TaskModel
from augtool.core.taskmodel.train import mixup, soft_cross_entropy, train_task_model
from augtool.data import Record
from augtool.errors import AugtoolError, ModelError, OutputExistsError


def records(per_label: int, seed: int, prefix: str) -> list[Record]:
    return [Record(**row) for row in keyword_rows(per_label, seed, prefix)]


TRAIN = records(12, 1, "tr")
TEST = records(6, 2, "te")


def config(encoder: Path, **overrides) -> TrainConfig:
    values = {
        "encoder": str(encoder),
        "epochs": 10,
        "lr": 1e-3,
        "head_lr": 1e-2,
        "batch_size": 8,
        "seed": 0,
    }
    values.update(overrides)
    return TrainConfig(**values)


def test_fine_tuning_learns_the_task(tiny_st: Path, tmp_path: Path) -> None:
    untrained = train_task_model(
        TRAIN, config(tiny_st, epochs=1, lr=1e-6, head_lr=1e-6), tmp_path / "untrained"
    )
    result = train_task_model(TRAIN, config(tiny_st), tmp_path / "model")
    assert evaluate_model(untrained.model, TEST)["accuracy"] < 0.6
    metrics = evaluate_model(result.model, TEST)
    assert metrics["accuracy"] >= 0.9
    assert set(metrics["per_class"]) == {"food", "music", "sports"}
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert (tmp_path / "model" / "encoder" / "model.safetensors").is_file()


def test_frozen_encoder_trains_only_the_head(tiny_st: Path, tmp_path: Path) -> None:
    before = (tiny_st / "model.safetensors").read_bytes()
    result = train_task_model(
        TRAIN, config(tiny_st, freeze_encoder=True, epochs=30), tmp_path / "frozen"
    )
    assert evaluate_model(result.model, TEST)["accuracy"] >= 0.8
    assert not (tmp_path / "frozen" / "encoder").exists()
    assert (tiny_st / "model.safetensors").read_bytes() == before


def test_same_seed_same_model_and_reload_gives_same_logits(tiny_st: Path, tmp_path: Path) -> None:
    texts = [r.text for r in TEST]
    first = train_task_model(TRAIN, config(tiny_st, epochs=3), tmp_path / "a")
    second = train_task_model(TRAIN, config(tiny_st, epochs=3), tmp_path / "b")
    other = train_task_model(TRAIN, config(tiny_st, epochs=3, seed=1), tmp_path / "c")
    logits = first.model.logits(texts)
    np.testing.assert_array_equal(logits, second.model.logits(texts))
    assert not np.allclose(logits, other.model.logits(texts))
    reloaded = TaskModel.load(tmp_path / "a")
    assert reloaded.labels == ["food", "music", "sports"]
    np.testing.assert_allclose(reloaded.logits(texts), logits, atol=1e-6)


def test_soft_labels_are_the_training_target(tiny_st: Path, tmp_path: Path) -> None:
    soft = [Record(id=r.id, text=r.text, label_dist={"a": 0.8, "b": 0.2}) for r in TRAIN]
    result = train_task_model(
        soft,
        config(tiny_st, freeze_encoder=True, epochs=40, head_hidden=0, dropout=0.0),
        tmp_path / "soft",
    )
    probs = torch.softmax(torch.tensor(result.model.logits([r.text for r in TEST])), dim=1)
    assert result.model.labels == ["a", "b"]
    assert abs(float(probs[:, 0].mean()) - 0.8) < 0.05


def test_mixup_interpolates_embeddings_and_labels() -> None:
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mixed, mixed_targets = mixup(embeddings, targets, 0.7, torch.tensor([1, 0]))
    torch.testing.assert_close(mixed, torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    torch.testing.assert_close(mixed_targets, torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    loss = soft_cross_entropy(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 0.5]]))
    assert abs(float(loss) - float(np.log(2))) < 1e-6


def test_training_with_mixup_learns_and_differs_from_plain(tiny_st: Path, tmp_path: Path) -> None:
    plain = train_task_model(TRAIN, config(tiny_st, epochs=4), tmp_path / "plain")
    mixed = train_task_model(
        TRAIN, config(tiny_st, epochs=10, mixup=True, alpha=0.4), tmp_path / "mixup"
    )
    assert mixed.model.train_config["mixup"] is True
    texts = [r.text for r in TEST]
    assert not np.allclose(plain.model.logits(texts), mixed.model.logits(texts))
    assert evaluate_model(mixed.model, TEST)["accuracy"] >= 0.8


def test_early_stopping_keeps_the_best_dev_epoch(tiny_st: Path, tmp_path: Path) -> None:
    flip = {"food": "music", "music": "sports", "sports": "food"}
    misleading_dev = [
        Record(id=f"dev{i}", text=r.text, label=flip[r.label]) for i, r in enumerate(TEST)
    ]
    result = train_task_model(
        TRAIN, config(tiny_st, epochs=20, patience=2), tmp_path / "es", dev=misleading_dev
    )
    assert len(result.history) < 20
    assert result.best_epoch is not None
    assert len(result.history) == result.best_epoch + 2
    assert "dev_accuracy" in result.history[0]


def test_dev_fraction_splits_off_a_dev_set(tiny_st: Path, tmp_path: Path) -> None:
    result = train_task_model(TRAIN, config(tiny_st, epochs=2, dev_fraction=0.25), tmp_path / "df")
    assert result.dev_size == 9 and result.train_size == 27


def test_interrupted_training_resumes_to_the_same_model(tiny_st: Path, tmp_path: Path) -> None:
    settings = config(tiny_st, epochs=5)
    reference = train_task_model(TRAIN, settings, tmp_path / "ref", checkpoint_seconds=0)

    def crash_after_epoch_3(epoch: int, _: dict) -> None:
        if epoch == 3:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train_task_model(
            TRAIN, settings, out, checkpoint_seconds=0, on_epoch_end=crash_after_epoch_3
        )
    assert not out.exists() and (tmp_path / "resumed.partial" / "checkpoint").is_dir()
    resumed = train_task_model(TRAIN, settings, out, checkpoint_seconds=0)
    assert resumed.resumed_epochs == 3
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4, 5]
    assert resumed.history == reference.history
    texts = [r.text for r in TEST]
    np.testing.assert_allclose(
        resumed.model.logits(texts), reference.model.logits(texts), atol=1e-6
    )
    assert not (tmp_path / "resumed.partial").exists()


def test_output_and_label_errors(tiny_st: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        train_task_model(TRAIN, config(tiny_st, epochs=1), tmp_path / "taken")
    with pytest.raises(AugtoolError, match="not an augtool model folder"):
        train_task_model(TRAIN, config(tiny_st, epochs=1), tmp_path / "taken", overwrite=True)
    one_label = [Record(id=str(i), text="x", label="only") for i in range(3)]
    with pytest.raises(AugtoolError, match="at least two labels"):
        train_task_model(one_label, config(tiny_st), tmp_path / "one")


def test_frozen_model_refuses_an_encoder_whose_weights_changed(
    tiny_st: Path, tmp_path: Path
) -> None:
    train_task_model(TRAIN, config(tiny_st, freeze_encoder=True, epochs=1), tmp_path / "m")
    weights = tiny_st / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="different weights"):
        TaskModel.load(tmp_path / "m")
    with pytest.raises(ModelError, match="no such folder"):
        TaskModel.load(tmp_path / "missing")
    with pytest.raises(ModelError, match="not an augtool model folder"):
        TaskModel.load(tiny_st)


def test_init_from_starts_from_the_saved_weights_and_keeps_learning(
    tiny_st: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from augtool.core.taskmodel.model import resolve_init_model
    from augtool.core.taskmodel.train import build_task_model

    saved = train_task_model(TRAIN, config(tiny_st, epochs=2, head_hidden=16), tmp_path / "a")
    init = resolve_init_model(tmp_path / "a")
    assert init.labels == saved.model.labels and init.encoder_saved

    # Before any training step: exactly the saved encoder and head, the saved head shape
    # (not the config's head_hidden) and the saved label order.
    start, copy_encoder = build_task_model(
        config(tiny_st, init_from=str(tmp_path / "a"), head_hidden=256, freeze_encoder=True),
        ["food", "sports"],
        init,
    )
    assert copy_encoder and start.labels == saved.model.labels and start.head_hidden == 16
    head = load_file(tmp_path / "a" / "head.safetensors")
    assert all(torch.equal(v, head[k]) for k, v in start.head.state_dict().items())
    encoder = load_file(tmp_path / "a" / "encoder" / "model.safetensors")
    state = start.encoder.module.state_dict()
    matched = [k for k in encoder if any(s.endswith(k) for s in state)]
    assert matched and all(
        torch.equal(encoder[k], next(v for s, v in state.items() if s.endswith(k))) for k in matched
    )
    np.testing.assert_allclose(
        start.logits([r.text for r in TEST]), saved.model.logits([r.text for r in TEST]), atol=1e-5
    )

    # Training continues from there: more epochs lower the loss further than the first
    # epoch of the original run.
    more = train_task_model(
        TRAIN, config(tiny_st, epochs=3, init_from=str(tmp_path / "a")), tmp_path / "b"
    )
    assert more.history[0]["train_loss"] < saved.history[0]["train_loss"]
    assert more.init_from is not None and more.init_from["sha256"] == init.fingerprint
