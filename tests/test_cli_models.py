"""End to end through the CLI: ``augtool embed``, ``train``, ``eval``, ``predict``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl

TRAIN_OPTS = ("--epochs", 10, "--lr", 1e-3, "--head-lr", 1e-2, "--batch-size", 8)


def test_embed_writes_npy_ids_and_meta_and_caches(tiny_st: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    source = EXAMPLES / "intents-unlabeled.jsonl"
    out = tmp_path / "u.emb.npy"
    result = run_cli("embed", source, "-o", out, "--encoder", tiny_st, "--batch-size", 8)
    assert result.exit_code == 0, result.stderr
    vectors = np.load(out)
    ids = json.loads((tmp_path / "u.emb.npy.ids.json").read_text())
    rows = read_jsonl(source)
    assert vectors.shape == (40, 32) and ids == [r["id"] for r in rows]
    reference = SentenceTransformer(str(tiny_st), device="cpu").encode([r["text"] for r in rows])
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    meta = json.loads((tmp_path / "u.emb.npy.meta.json").read_text())
    assert meta["models"]["encoder"]["fingerprint"] and meta["counts"] == {"rows": 40}
    assert not (tmp_path / "u.emb.npy.partial").exists()

    again = run_cli(
        "embed", source, "-o", tmp_path / "again.npy", "--encoder", tiny_st, "--device", "cpu"
    )
    assert again.exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), vectors)


def test_embed_reads_options_from_a_config_file(tiny_hf: Path, tmp_path: Path) -> None:
    config = tmp_path / "embed.yaml"
    config.write_text(f"encoder: hf:{tiny_hf}\npooling: cls\nbatch-size: 4\ncache: false\n")
    out = tmp_path / "cls.npy"
    result = run_cli("embed", EXAMPLES / "intents-test.jsonl", "-o", out, "--config", config)
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / "cls.npy.meta.json").read_text())
    assert meta["config"]["pooling"] == "cls" and meta["config"]["cache"] is False
    assert meta["models"]["encoder"]["backend"] == "hf"
    assert np.load(out).shape == (48, 32)


def test_embed_bad_model_and_existing_output(tmp_path: Path) -> None:
    source = EXAMPLES / "intents-test.jsonl"
    result = run_cli("embed", source, "-o", tmp_path / "x.npy", "--encoder", "./missing-model")
    assert_one_line_error(result, "'./missing-model'", "no such folder")
    assert not (tmp_path / "x.npy").exists()
    (tmp_path / "x.npy").write_bytes(b"old")
    assert_one_line_error(run_cli("embed", source, "-o", tmp_path / "x.npy"), "--overwrite")
    bad_opt = run_cli("embed", source, "-o", tmp_path / "y.npy", "--batch-size", 0)
    assert_one_line_error(bad_opt, "--batch-size", "at least 1")


def test_train_eval_predict_round_trip(tiny_st: Path, keyword_data: dict, tmp_path: Path) -> None:
    model = tmp_path / "runs" / "base"
    result = run_cli(
        "train", keyword_data["train"], "-o", model, "--encoder", tiny_st, *TRAIN_OPTS, "--seed", 3
    )
    assert result.exit_code == 0, result.stderr
    assert "saved model to" in result.stdout
    for name in (
        "augtool_model.json",
        "head.safetensors",
        "encoder",
        "train_log.jsonl",
        "meta.json",
    ):
        assert (model / name).exists(), name
    meta = json.loads((model / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["config"]["epochs"] == 10
    assert len(meta["history"]) == 10

    table = run_cli("eval", model, keyword_data["test"])
    assert table.exit_code == 0, table.stderr
    assert "accuracy" in table.stdout and "sports" in table.stdout
    metrics = json.loads(run_cli("eval", model, keyword_data["test"], "--json").stdout)
    assert metrics["accuracy"] >= 0.9 and set(metrics) >= {"accuracy", "macro_f1", "per_class"}
    assert metrics["per_class"]["food"]["support"] == 6

    saved = tmp_path / "metrics.json"
    assert run_cli("eval", model, keyword_data["test"], "-o", saved).exit_code == 0
    assert json.loads(saved.read_text())["accuracy"] == metrics["accuracy"]

    preds = tmp_path / "preds.jsonl"
    result = run_cli("predict", model, keyword_data["test"], "-o", preds)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(preds)
    assert len(rows) == 18
    first = rows[0]
    assert set(first["pred_probs"]) == {"food", "music", "sports"}
    assert abs(sum(first["pred_probs"].values()) - 1) < 1e-4
    assert len(first["pred_logits"]) == 3
    assert first["pred_label"] == max(first["pred_probs"], key=first["pred_probs"].get)
    accuracy = np.mean([r["pred_label"] == r["label"] for r in rows])
    assert abs(accuracy - metrics["accuracy"]) < 1e-9


def test_train_with_mixup_dev_set_and_frozen_encoder(
    tiny_st: Path, keyword_data: dict, tmp_path: Path
) -> None:
    dev = write_jsonl(tmp_path / "dev.jsonl", read_jsonl(keyword_data["test"])[:9])
    result = run_cli(
        "train",
        keyword_data["train"],
        "-o",
        tmp_path / "mix",
        "--encoder",
        tiny_st,
        *TRAIN_OPTS,
        "--mixup",
        "--alpha",
        0.4,
        "--dev",
        dev,
        "--patience",
        2,
    )
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "mix" / "augtool_model.json").read_text())["train_config"]
    assert config["mixup"] is True and config["alpha"] == 0.4
    log = read_jsonl(tmp_path / "mix" / "train_log.jsonl")
    assert "dev_accuracy" in log[0]

    frozen = run_cli(
        "train",
        keyword_data["train"],
        "-o",
        tmp_path / "frozen",
        "--encoder",
        tiny_st,
        "--freeze-encoder",
        "--epochs",
        2,
    )
    assert frozen.exit_code == 0, frozen.stderr
    assert not (tmp_path / "frozen" / "encoder").exists()


def test_train_bad_input_leaves_no_output(tiny_st: Path, tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "a", "label": "x"}, '{"text": "b", '])
    out = tmp_path / "model"
    result = run_cli("train", bad, "-o", out, "--encoder", tiny_st)
    assert_one_line_error(result, f"{bad}:2", "invalid JSON")
    assert not out.exists() and not (tmp_path / "model.partial").exists()

    unlabelled = write_jsonl(tmp_path / "u.jsonl", [{"text": "a"}])
    assert_one_line_error(
        run_cli("train", unlabelled, "-o", out), f"{unlabelled}:1", 'missing field "label"'
    )
    assert_one_line_error(run_cli("train", bad, "-o", out, "--epochs", 0), "--epochs")


def test_eval_and_predict_errors(tiny_st: Path, keyword_data: dict, tmp_path: Path) -> None:
    model = tmp_path / "m"
    run_cli("train", keyword_data["train"], "-o", model, "--encoder", tiny_st, "--epochs", 1)
    unknown = write_jsonl(
        tmp_path / "t.jsonl",
        [{"text": "pizza", "label": "food"}, {"text": "rain", "label": "weather"}],
    )
    assert_one_line_error(
        run_cli("eval", model, unknown), f"{unknown}:2", 'unknown label "weather"'
    )
    assert_one_line_error(run_cli("eval", tmp_path / "nope", unknown), "nope", "no such folder")
    assert_one_line_error(
        run_cli("predict", tmp_path / "nope", unknown, "-o", tmp_path / "p.jsonl"), "no such folder"
    )
    skipped = run_cli("eval", model, unknown, "--skip-invalid", "--json")
    assert skipped.exit_code == 0 and json.loads(skipped.stdout)["n"] == 1


def test_predict_resumes_an_interrupted_run(
    tiny_st: Path, keyword_data: dict, tmp_path: Path, monkeypatch
) -> None:
    from augtool.core.taskmodel.model import TaskModel

    model = tmp_path / "m"
    run_cli("train", keyword_data["train"], "-o", model, "--encoder", tiny_st, "--epochs", 1)
    full = tmp_path / "full.jsonl"
    assert run_cli("predict", model, keyword_data["test"], "-o", full).exit_code == 0
    one_by_one = tmp_path / "one.jsonl"
    result = run_cli("predict", model, keyword_data["test"], "-o", one_by_one, "--batch-size", 1)
    assert result.exit_code == 0
    by_four = tmp_path / "four.jsonl"
    result = run_cli("predict", model, keyword_data["test"], "-o", by_four, "--batch-size", 4)
    assert result.exit_code == 0

    calls = {"n": 0}
    original = TaskModel.logits

    def interrupted(self, texts, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, texts, **kwargs)

    out = tmp_path / "preds.jsonl"
    with monkeypatch.context() as patch:
        patch.setattr(TaskModel, "logits", interrupted)
        result = run_cli("predict", model, keyword_data["test"], "-o", out, "--batch-size", 4)
    assert result.exit_code == 130
    assert_one_line_error(result, "interrupted", "rerun")
    assert not out.exists()
    assert len((tmp_path / "preds.jsonl.partial").read_text().splitlines()) == 8

    result = run_cli("predict", model, keyword_data["test"], "-o", out, "--batch-size", 4)
    assert result.exit_code == 0, result.stderr
    assert "resuming: 8 rows already written" in result.stderr
    assert out.read_text() == by_four.read_text()  # resumed == uninterrupted, byte for byte
    # at the written precision (4 decimals) the batch size does not show: batches of 1,
    # 4 and the default 64 agree, labels exactly, values to the last decimal
    for ours, theirs in zip(read_jsonl(one_by_one), read_jsonl(full), strict=True):
        assert ours["pred_label"] == theirs["pred_label"]
        assert all(
            abs(a - b) <= 1e-4
            for a, b in zip(ours["pred_logits"], theirs["pred_logits"], strict=True)
        )
        assert all(len(repr(x).split(".")[-1]) <= 4 for x in ours["pred_logits"])


def test_real_default_encoder_end_to_end(tmp_path: Path) -> None:
    """The README's main job: offline, on the embedded all-MiniLM-L6-v2."""
    model = tmp_path / "intents"
    result = run_cli(
        "train",
        EXAMPLES / "intents-train.jsonl",
        "-o",
        model,
        "--freeze-encoder",
        "--epochs",
        30,
        "--seed",
        1,
    )
    assert result.exit_code == 0, result.stderr
    info = json.loads((model / "augtool_model.json").read_text())
    assert info["encoder"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    metrics = json.loads(run_cli("eval", model, EXAMPLES / "intents-test.jsonl", "--json").stdout)
    assert metrics["accuracy"] >= 0.85


def test_interrupted_training_resumes_from_its_checkpoint(
    tiny_st: Path, keyword_data: dict, tmp_path: Path, monkeypatch
) -> None:
    from augtool.cli.console import RichReporter

    args = ("--encoder", tiny_st, *TRAIN_OPTS, "--checkpoint-every", 0)
    reference = tmp_path / "reference"
    assert run_cli("train", keyword_data["train"], "-o", reference, *args).exit_code == 0

    original = RichReporter.log

    def crash_at_epoch_4(self, message):
        if message.startswith("epoch 4/"):
            raise KeyboardInterrupt
        original(self, message)

    out = tmp_path / "model"
    with monkeypatch.context() as patch:
        patch.setattr(RichReporter, "log", crash_at_epoch_4)
        result = run_cli("train", keyword_data["train"], "-o", out, *args)
    assert result.exit_code == 130 and not out.exists()

    result = run_cli("train", keyword_data["train"], "-o", out, *args)
    assert result.exit_code == 0, result.stderr
    assert "resuming from epoch 3 of 10" in result.stderr
    assert (out / "train_log.jsonl").read_text() == (reference / "train_log.jsonl").read_text()
    ours = json.loads(run_cli("eval", out, keyword_data["test"], "--json").stdout)
    theirs = json.loads(run_cli("eval", reference, keyword_data["test"], "--json").stdout)
    assert {k: v for k, v in ours.items() if k != "model"} == {
        k: v for k, v in theirs.items() if k != "model"
    }


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    found = {f"head.{k}": v for k, v in load_file(folder / "head.safetensors").items()}
    encoder = folder / "encoder" / "model.safetensors"
    if encoder.is_file():
        found.update({f"encoder.{k}": v for k, v in load_file(encoder).items()})
    return found


def test_train_init_from_continues_from_a_saved_model(
    tiny_st: Path, keyword_data: dict, tmp_path: Path
) -> None:
    import torch

    start = tmp_path / "start"
    args = ("--encoder", tiny_st, *TRAIN_OPTS, "--seed", 3)
    assert run_cli("train", keyword_data["train"], "-o", start, *args).exit_code == 0
    saved = _weights(start)

    # Learning rates of ~0: the continued model keeps the saved weights (a fresh head
    # with the same settings does not), so training really started from them.
    still = ("--epochs", 1, "--lr", 1e-12, "--head-lr", 1e-12, "--batch-size", 8)
    kept = tmp_path / "kept"
    result = run_cli(
        "train", keyword_data["train"], "-o", kept, "--init-from", start, "--seed", 9, *still
    )
    assert result.exit_code == 0, result.stderr
    assert f"from {start}" in result.stdout
    after = _weights(kept)
    assert set(after) == set(saved)
    assert all(torch.allclose(after[k], saved[k], atol=1e-6) for k in saved)
    fresh = tmp_path / "fresh"
    result = run_cli("train", keyword_data["train"], "-o", fresh, "--encoder", tiny_st, *still)
    assert result.exit_code == 0, result.stderr
    head = _weights(fresh)
    assert not torch.allclose(head["head.layers.4.weight"], saved["head.layers.4.weight"])
    assert (
        json.loads(run_cli("eval", kept, keyword_data["test"], "--json").stdout)["accuracy"]
        == json.loads(run_cli("eval", start, keyword_data["test"], "--json").stdout)["accuracy"]
    )

    meta = json.loads((kept / "meta.json").read_text())
    assert meta["init_from"]["path"] == str(start)
    assert meta["init_from"]["labels"] == ["food", "music", "sports"]
    assert len(meta["init_from"]["sha256"]) == 64 and meta["config"]["init_from"] == str(start)

    # A subset of the labels is fine (the head keeps every output, in the saved order).
    subset = write_jsonl(
        tmp_path / "two.jsonl",
        [r for r in read_jsonl(keyword_data["train"]) if r["label"] != "music"],
    )
    result = run_cli("train", subset, "-o", tmp_path / "two", "--init-from", start, *still)
    assert result.exit_code == 0, result.stderr
    info = json.loads((tmp_path / "two" / "augtool_model.json").read_text())
    assert info["labels"] == ["food", "music", "sports"]

    # A frozen start (no encoder copy) continues with a frozen encoder too.
    frozen = tmp_path / "frozen"
    frozen_args = ("--encoder", tiny_st, "--freeze-encoder", "--epochs", 2)
    assert run_cli("train", keyword_data["train"], "-o", frozen, *frozen_args).exit_code == 0
    again = tmp_path / "frozen-again"
    result = run_cli(
        "train", keyword_data["train"], "-o", again, "--init-from", frozen, "--freeze-encoder"
    )
    assert result.exit_code == 0, result.stderr
    assert not (again / "encoder").exists()


def test_train_init_from_bad_folders_and_labels(
    tiny_st: Path, keyword_data: dict, tmp_path: Path
) -> None:
    start = tmp_path / "start"
    args = ("--encoder", tiny_st, "--epochs", 1)
    assert run_cli("train", keyword_data["train"], "-o", start, *args).exit_code == 0
    out = tmp_path / "out"

    def train(init: Path, data: Path = keyword_data["train"]):
        return run_cli("train", data, "-o", out, "--init-from", init, "--epochs", 1)

    assert_one_line_error(train(tmp_path / "missing"), "--init-from", "no such model folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(train(tmp_path / "empty"), "--init-from", "not a task model folder")
    other = write_jsonl(
        tmp_path / "other.jsonl",
        [{"text": "pizza", "label": "food"}, {"text": "snow", "label": "climate"}],
    )
    assert_one_line_error(
        train(start, other), "--init-from", "label(s) climate", "food, music, sports"
    )

    broken = tmp_path / "broken"
    shutil.copytree(start, broken)
    (broken / "head.safetensors").write_bytes(b"not safetensors")
    assert_one_line_error(train(broken), "--init-from", "cannot load model", "head.safetensors")
    (broken / "head.safetensors").unlink()
    assert_one_line_error(train(broken), "--init-from", "head.safetensors is missing")
    (broken / "augtool_model.json").write_text("{")
    assert_one_line_error(train(broken), "--init-from", "unreadable model config")
    assert not out.exists()

    adaptor = tmp_path / "adaptor"
    adaptor.mkdir()
    (adaptor / "inversion.json").write_text('{"stage": "adaptor", "task_model": null}')
    assert_one_line_error(train(adaptor), "--init-from", "stage-1 adaptor has no task model")
