"""Training loops that scale: gradient accumulation gives the weights of one big batch,
and two processes under `accelerate launch` (CPU, gloo) give the weights of one process,
with one output written by rank 0."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, keyword_rows, read_jsonl, write_jsonl
from tiny_models import build_inversion_lm, build_tiny_t5

from augtool.core.distributed import DataParallel, data_parallel
from augtool.data import Record

SENTENCES = [row["text"] for row in read_jsonl(EXAMPLES / "intents-train.jsonl")[:16]]
ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def no_dropout(folder: Path) -> Path:
    """Turn off every dropout in a saved model's configs (batch splits then change nothing
    but float rounding)."""
    for path in folder.rglob("config.json"):
        settings = json.loads(path.read_text(encoding="utf-8"))
        for name in (
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "dropout_rate",
            "attention_dropout",
        ):
            if name in settings:
                settings[name] = 0.0
        path.write_text(json.dumps(settings), encoding="utf-8")
    return folder


@pytest.fixture
def still_st(tiny_st: Path) -> Path:
    """The tiny sentence-transformers encoder without dropout."""
    return no_dropout(tiny_st)


def weights(*files: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    found: dict[str, torch.Tensor] = {}
    for file in files:
        found.update({f"{file.name}:{k}": v for k, v in load_file(file).items()})
    return found


def assert_same_weights(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    assert ours.keys() == theirs.keys()
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, atol=ATOL, rtol=0, msg=name)


def task_weights(folder: Path) -> dict[str, torch.Tensor]:
    return weights(folder / "head.safetensors", folder / "encoder" / "model.safetensors")


# --- splitting a global batch -------------------------------------------------------------


def test_ranks_share_a_global_batch_in_order() -> None:
    batch = list(range(10, 21))  # 11 rows
    shares = [DataParallel(rank=r, world_size=3).share(batch) for r in range(3)]
    assert [len(s) for s in shares] == [4, 4, 3]
    assert sum(shares, []) == batch
    micro = DataParallel(rank=1, world_size=3).micro_batches(batch, 3)
    assert micro == [[14, 15, 16], [17]]
    assert DataParallel().micro_batches(batch, 4) == [batch[:4], batch[4:8], batch[8:]]
    assert DataParallel(rank=2, world_size=3).micro_batches([1, 2], 4) == []
    assert data_parallel("cpu") is data_parallel() and not data_parallel().active  # no launcher


def test_only_rank_0_locks_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command locks its output (handle_errors); under a launcher rank 0 alone does,
    or the other ranks would be refused their own job's lock."""
    from augtool.cli.common import output_locks
    from augtool.data.lock import lock_path_for

    out = tmp_path / "model"
    monkeypatch.setenv("RANK", "1")
    with output_locks({"output": out}):
        assert not lock_path_for(out).exists()
    monkeypatch.setenv("RANK", "0")
    with output_locks({"output": out}):
        assert lock_path_for(out).exists()


# --- gradient accumulation = one big batch ------------------------------------------------


def test_grad_accum_trains_the_task_model_of_one_big_batch(still_st: Path, tmp_path: Path) -> None:
    from augtool.core.taskmodel.config import TrainConfig
    from augtool.core.taskmodel.train import train_task_model

    rows = [Record(**row) for row in keyword_rows(12, 1, "tr")]  # 36 rows: 5 steps of 8

    def run(name: str, **batching: int) -> Path:
        settings = TrainConfig(
            encoder=str(still_st), epochs=2, lr=1e-3, head_lr=1e-2, dropout=0.0, seed=0,
            device="cpu", **batching,
        )  # fmt: skip
        return train_task_model(rows, settings, tmp_path / name).output

    big = run("big", batch_size=8)
    accumulated = run("accum", batch_size=4, grad_accum=2)
    assert_same_weights(task_weights(accumulated), task_weights(big))
    losses = [
        [json.loads(line)["train_loss"] for line in (f / "train_log.jsonl").open()]
        for f in (big, accumulated)
    ]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    small = task_weights(run("small", batch_size=4))  # no accumulation: other steps
    reference = task_weights(big)
    assert any(not torch.allclose(small[k], v, atol=ATOL) for k, v in reference.items())


@pytest.fixture(scope="module")
def random_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama with the inversion tokenizer, barely trained (gradients are all we need)."""
    return build_inversion_lm(tmp_path_factory.mktemp("dist-lm") / "lm", SENTENCES, steps=1)


def test_grad_accum_trains_the_adaptor_of_one_big_batch(
    tiny_model_store: dict[str, Path], random_lm: Path, tmp_path: Path
) -> None:
    """The LM's loss is a token mean: micro-batches are weighted by their target tokens."""
    from augtool.core.inversion.model import InversionModel
    from augtool.core.inversion.train import train_adaptor

    def run(name: str, batch_size: int, grad_accum: int) -> tuple[dict, dict]:
        model = InversionModel.create(
            str(tiny_model_store["st"]), f"hf:{random_lm}", device="cpu", seed=0
        )
        progress = train_adaptor(
            model, SENTENCES, model.embed(SENTENCES), epochs=3, lr=1e-2,
            batch_size=batch_size, grad_accum=grad_accum, seed=0,
            checkpoint_dir=tmp_path / name, run_key=name,
        )  # fmt: skip
        assert progress["step"] == 6  # 16 sentences, 9 per optimizer step, 3 epochs
        return {k: v.clone() for k, v in model.adaptor.state_dict().items()}, progress

    big, big_progress = run("big", 9, 1)
    accumulated, accumulated_progress = run("accum", 3, 3)  # micro-batches 3+3+3, 3+3+1
    assert_same_weights(accumulated, big)
    for ours, theirs in zip(accumulated_progress["history"], big_progress["history"], strict=True):
        assert ours["loss"] == pytest.approx(theirs["loss"], abs=1e-5)


def test_grad_accum_trains_the_warm_lm_of_one_big_batch(still_st: Path, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in SENTENCES])
    common = ("--encoder", still_st, "--device", "cpu", "--max-length", 24, "--lr", 1e-3)
    outputs = []
    for name, batching in (("big", (8, 1)), ("accum", (4, 2))):
        out = tmp_path / name
        result = run_cli(
            "invmix", "warm-lm", corpus, "-o", out, *common,
            "--batch-size", batching[0], "--grad-accum", batching[1],
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        outputs.append(out)
    assert_same_weights(*(weights(out / "model.safetensors") for out in outputs))


def test_grad_accum_trains_the_decoder_of_one_big_batch(
    tiny_model_store: dict[str, Path], tmp_path: Path
) -> None:
    """Inversion epochs (correction epochs decode each micro-batch greedily, so a float
    difference in the weights may flip a near-tied token of a hypothesis)."""
    from augtool.core.inversion.decoder_train import DecoderConfig, train_decoder

    t5 = no_dropout(build_tiny_t5(tmp_path / "t5"))
    texts = SENTENCES[:10]

    def run(name: str, batch_size: int, grad_accum: int) -> dict[str, torch.Tensor]:
        settings = DecoderConfig(
            seq2seq=str(t5), encoder=str(tiny_model_store["st"]), num_tokens=4, epochs=2,
            batch_size=batch_size, grad_accum=grad_accum, lr=1e-2,
            max_length=16, save_every=0, device="cpu",
        )  # fmt: skip
        out = train_decoder(texts, settings, tmp_path / name).output
        return weights(*sorted(out.glob("*.safetensors")))

    assert_same_weights(run("accum", 4, 3), run("big", 12, 1))  # 10 texts: one step


def test_grad_accum_is_an_option_checked_before_any_work(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", keyword_rows(2, 0, "r"))
    result = run_cli("train", train, "-o", tmp_path / "m", "--grad-accum", 0)
    assert_one_line_error(result, "--grad-accum")
    assert not (tmp_path / "m").exists()
    for command in (("invmix", "train-adaptor"), ("invmix", "refine"), ("invmix", "warm-lm")):
        result = run_cli(*command, "--help")
        assert "--grad-accum" in result.stdout, command
    assert "--grad-accum" in run_cli("pinr", "train-decoder", "--help").stdout


# --- two processes (accelerate launch, CPU, gloo) = one process ---------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(tmp_path: Path, *args: object, processes: int = 2) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes N -m augtool ARGS`` on the CPU: with
    --multi_gpu, accelerate starts the processes through torchrun, and augtool's
    ``--device cpu`` makes them join a gloo process group."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "-m", "augtool", *map(str, args),
    ]  # fmt: skip
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf-home"),  # no user accelerate config applies
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def assert_one_output(out: Path, done: subprocess.CompletedProcess, says: str) -> None:
    assert done.returncode == 0, done.stderr[-4000:]
    said = done.stdout + done.stderr
    assert said.count("data parallel: 2 processes (gloo)") == 1, said[-4000:]
    assert (out / "meta.json").is_file()
    assert not out.with_name(out.name + ".partial").exists()
    assert not out.with_name(out.name + ".lock").exists()
    assert said.count(says) == 1, said[-4000:]
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name)) == [out.name]


def test_two_processes_train_the_task_model_of_one(still_st: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", keyword_rows(12, 1, "tr"))
    dev = write_jsonl(tmp_path / "dev.jsonl", keyword_rows(3, 2, "dv"))
    args = (
        "train", train, "--dev", dev, "--encoder", still_st, "--epochs", 2, "--lr", 1e-3,
        "--head-lr", 1e-2, "--dropout", 0, "--seed", 0, "--device", "cpu",
    )  # fmt: skip
    single = tmp_path / "runs" / "single"
    result = run_cli(*args, "-o", single, "--batch-size", 8)
    assert result.exit_code == 0, result.stderr

    # 8 rows per optimizer step, as above: 4 per process.
    out = tmp_path / "runs" / "ddp"
    done = launch(tmp_path, *args, "-o", out, "--batch-size", 4, "--grad-accum", 2)
    assert_one_output(out, done, "saved model to")
    assert_same_weights(task_weights(out), task_weights(single))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["grad_accum"] == 2 and meta["config"]["device"] == "cpu"
    history = [json.loads(line) for line in (out / "train_log.jsonl").open()]
    reference = [json.loads(line) for line in (single / "train_log.jsonl").open()]
    assert [r["dev_accuracy"] for r in history] == [r["dev_accuracy"] for r in reference]
    for ours, theirs in zip(history, reference, strict=True):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-5)


def test_two_processes_train_the_adaptor_of_one(
    tiny_model_store: dict[str, Path], random_lm: Path, tmp_path: Path
) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in SENTENCES])
    args = (
        "invmix", "train-adaptor", corpus, "--encoder", tiny_model_store["st"],
        "--llm", f"hf:{random_lm}", "--epochs", 2, "--lr", 1e-2, "--device", "cpu",
        "--batch-size", 8, "--save-every", 1,
    )  # fmt: skip
    single = tmp_path / "runs" / "single"
    result = run_cli(*args, "-o", single)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "runs" / "ddp"
    done = launch(tmp_path, *args, "-o", out)  # each process: 4 sentences of every step
    assert_one_output(out, done, "saved the adaptor to")
    assert_same_weights(
        weights(out / "adaptor.safetensors"), weights(single / "adaptor.safetensors")
    )
    shutil.rmtree(tmp_path / "hf-home", ignore_errors=True)
