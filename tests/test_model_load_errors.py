"""Damaged model folders (issue 17, defect 5): every command that loads a model from disk
answers a truncated or garbled file with one ``error: cannot load <kind> <folder>: <reason>``
line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_cli
from conftest import keyword_rows, read_jsonl, write_jsonl

from augtool.core.model_errors import (
    MAX_REASON,
    ModelLoadError,
    check_safetensors,
    load_reason,
    model_load_errors,
)
from augtool.errors import AugtoolError, DataError, ModelError


def damage(path: Path, how: str) -> None:
    """Truncate a file to half its size, or replace it with bytes no loader accepts."""
    if how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"garbage \x00\xff not a model file\n")
    else:  # pragma: no cover - test table typo
        raise ValueError(how)


def assert_cannot_load(result, *fragments: str) -> str:
    """Exactly one stderr line, ``error: ... cannot load ...``, no traceback anywhere."""
    assert result.exit_code not in (0, None), result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: ") and "cannot load " in line, line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


# ---- the helper itself


def test_reason_is_one_short_line() -> None:
    assert load_reason(ValueError("first line\n  second   line")) == "first line"
    assert load_reason(OSError("  lots   of\tspace  ")) == "lots of space"
    assert load_reason(RuntimeError()) == "RuntimeError"
    assert load_reason(KeyError("hidden")) == "missing entry 'hidden'"
    long = load_reason(ValueError("x" * 1000))
    assert len(long) == MAX_REASON and long.endswith("...")


def test_helper_converts_loader_errors_and_keeps_the_rest(tmp_path: Path) -> None:
    from safetensors import SafetensorError

    with pytest.raises(ModelError, match=r"^cannot load model /m: boom$"):
        with model_load_errors("/m"):
            raise SafetensorError("boom\nmore detail")
    with pytest.raises(ModelError, match=r"^cannot load LLM hub/id: Expecting value"):
        with model_load_errors("hub/id", "LLM"):
            json.loads("")
    # Clearer errors raised inside pass unchanged; so do interrupts and missing packages.
    clear = DataError("x.jsonl", "bad row", line=3)
    with pytest.raises(DataError) as caught, model_load_errors("/m"):
        raise clear
    assert caught.value is clear
    with pytest.raises(KeyboardInterrupt), model_load_errors("/m"):
        raise KeyboardInterrupt
    with pytest.raises(ModuleNotFoundError), model_load_errors("/m"):
        raise ModuleNotFoundError("No module named 'peft'", name="peft")
    # A part inside the folder is named relative to the folder the user gave.
    (tmp_path / "model" / "encoder").mkdir(parents=True)
    with pytest.raises(ModelLoadError) as nested:
        with model_load_errors(tmp_path / "model", hint="retrain it"):
            with model_load_errors(tmp_path / "model" / "encoder", "encoder"):
                raise OSError("bad weights")
    assert str(nested.value) == (
        f"cannot load model {tmp_path / 'model'}: encoder: bad weights (retrain it)"
    )
    # A separate model (not inside the folder) keeps its own message.
    (tmp_path / "other").mkdir()
    with pytest.raises(ModelLoadError, match=r"^cannot load encoder .*other: nope$"):
        with model_load_errors(tmp_path / "model"):
            with model_load_errors(tmp_path / "other", "encoder"):
                raise ValueError("nope")


def test_check_safetensors_reads_headers_only(tiny_st: Path) -> None:
    check_safetensors(tiny_st)  # intact
    check_safetensors("sentence-transformers/not-downloaded")  # a hub id: nothing to check
    damage(tiny_st / "model.safetensors", "truncate")
    with pytest.raises(ModelError, match="model.safetensors: Error while deserializing"):
        with model_load_errors(tiny_st, "encoder"):
            check_safetensors(tiny_st)


def test_damaged_checkpoint_says_how_to_start_over(tmp_path: Path) -> None:
    import torch

    from augtool.core.checkpoint import Checkpoint

    module = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(module.parameters())
    checkpoint = Checkpoint(tmp_path / "ckpt", "key")
    checkpoint.save({"adaptor": module}, optimizer, {"step": 1})
    damage(tmp_path / "ckpt" / "adaptor.safetensors", "truncate")
    with pytest.raises(ModelError) as caught:
        checkpoint.restore({"adaptor": module}, optimizer)
    message = str(caught.value)
    assert message.startswith(f"cannot load checkpoint {tmp_path / 'ckpt'}: adaptor.safetensors")
    assert message.endswith("(delete it to start over)") and "\n" not in message


# ---- task models: predict, eval, train --init-from


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory, tiny_model_store) -> Path:
    """A tiny task model with a fine-tuned (saved) encoder: one epoch, keyword task."""
    root = tmp_path_factory.mktemp("damaged-model")
    train = write_jsonl(root / "train.jsonl", keyword_rows(3, seed=1))
    model = root / "model"
    result = run_cli(
        "train", train, "-o", model, "--encoder", tiny_model_store["st"], "--epochs", 1
    )
    assert result.exit_code == 0, result.stderr
    assert (model / "encoder" / "model.safetensors").is_file()
    return model


DAMAGES = [
    ("head.safetensors", "truncate"),
    ("head.safetensors", "garbage"),
    ("encoder/model.safetensors", "truncate"),
    ("encoder/config.json", "garbage"),
    ("encoder/modules.json", "garbage"),
]
COMMANDS = {
    "predict": ("predict", "{model}", "{data}", "-o", "{out}"),
    "eval": ("eval", "{model}", "{data}"),
    "train-init-from": ("train", "{data}", "-o", "{out}", "--init-from", "{model}", "--epochs", 1),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(("file", "how"), DAMAGES, ids=[f"{f}-{h}" for f, h in DAMAGES])
def test_damaged_task_model_is_one_line(
    command: str, file: str, how: str, trained_model: Path, tmp_path: Path
) -> None:
    model = Path(shutil.copytree(trained_model, tmp_path / "model"))
    damage(model / file, how)
    data = write_jsonl(tmp_path / "data.jsonl", keyword_rows(2, seed=4))
    out = tmp_path / "out.jsonl" if command == "predict" else tmp_path / "out"
    values = {"model": model, "data": data, "out": out}
    args = [a.format(**values) if isinstance(a, str) else a for a in COMMANDS[command]]
    result = run_cli(*args)
    part = file.split("/")[0]  # head.safetensors, or encoder for the encoder's files
    line = assert_cannot_load(result, f"cannot load model {model}: {part}")
    if command == "train-init-from":
        assert "--init-from" in line
    assert not out.exists()


def test_missing_or_foreign_model_folders_keep_their_messages(
    trained_model: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", keyword_rows(1, seed=4))
    missing = run_cli("eval", tmp_path / "nope", data)
    assert "no such folder" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "empty").mkdir()
    foreign = run_cli("eval", tmp_path / "empty", data)
    assert "not an augtool model folder" in foreign.stderr
    model = Path(shutil.copytree(trained_model, tmp_path / "model"))
    (model / "head.safetensors").unlink()
    assert "head.safetensors is missing" in run_cli("eval", model, data).stderr


# ---- encoders: augtool embed --encoder


@pytest.mark.parametrize(
    ("file", "how"),
    [("model.safetensors", "truncate"), ("config.json", "garbage"), ("modules.json", "garbage")],
)
def test_damaged_sentence_transformers_encoder(
    file: str, how: str, tiny_st: Path, tmp_path: Path
) -> None:
    damage(tiny_st / file, how)
    data = write_jsonl(tmp_path / "data.jsonl", keyword_rows(1, seed=4))
    out = tmp_path / "e.npy"
    result = run_cli("embed", data, "-o", out, "--encoder", tiny_st)
    assert_cannot_load(result, f"cannot load encoder {tiny_st}: ")
    assert not out.exists()


@pytest.mark.parametrize("file", ["model.safetensors", "augtool_pooling.json"])
def test_damaged_hf_encoder(file: str, tiny_hf: Path, tmp_path: Path) -> None:
    damage(tiny_hf / file, "garbage")
    data = write_jsonl(tmp_path / "data.jsonl", keyword_rows(1, seed=4))
    result = run_cli("embed", data, "-o", tmp_path / "e.npy", "--encoder", f"hf:{tiny_hf}")
    line = assert_cannot_load(result, f"cannot load encoder {tiny_hf}: ")
    if file == "augtool_pooling.json":
        assert f"{file}: " in line


# ---- causal LMs (hf:), invmix models, pinr decoders


@pytest.fixture(scope="module")
def random_llama(tmp_path_factory: pytest.TempPathFactory, tiny_model_store) -> Path:
    """A tiny random Llama with the MiniLM tokenizer: loads like any causal LM (what it
    writes does not matter here, no test gets as far as generating)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("random-llama") / "llama"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_store["hf"])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("file", "how"),
    [("model.safetensors", "truncate"), ("config.json", "garbage"), ("tokenizer.json", "garbage")],
)
def test_damaged_hf_llm(file: str, how: str, random_llama: Path, tmp_path: Path) -> None:
    llm = Path(shutil.copytree(random_llama, tmp_path / "llm"))
    damage(llm / file, how)
    data = write_jsonl(tmp_path / "data.jsonl", keyword_rows(1, seed=4))
    out = tmp_path / "out.jsonl"
    result = run_cli("llm", "rewrite", data, "-o", out, "--llm", f"hf:{llm}")
    line = assert_cannot_load(result, f"cannot load LLM {llm}: ")
    if file.endswith(".safetensors"):  # found by the header check, before any work
        assert f"{file}: Error while deserializing header" in line
    assert not out.exists()


@pytest.fixture(scope="module")
def invmix_model(tmp_path_factory: pytest.TempPathFactory, tiny_model_store, random_llama) -> Path:
    """An (untrained) invmix adaptor folder over the tiny encoder and the random Llama."""
    from augtool.core.inversion.model import InversionModel

    folder = tmp_path_factory.mktemp("invmix") / "adaptor"
    model = InversionModel.create(
        str(tiny_model_store["st"]), f"hf:{random_llama}", device="cpu", dtype="float32"
    )
    model.save(folder)
    return folder


def test_damaged_invmix_adaptor(invmix_model: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(invmix_model, tmp_path / "adaptor"))
    damage(model / "adaptor.safetensors", "truncate")
    data = write_jsonl(tmp_path / "data.jsonl", keyword_rows(2, seed=4))
    out = tmp_path / "mixed.jsonl"
    result = run_cli("invmix", "generate", data, "--model", model, "-o", out, "--n", 2)
    assert_cannot_load(result, f"cannot load model {model}: adaptor.safetensors: ")
    assert not out.exists()


@pytest.fixture(scope="module")
def pinr_decoder(tmp_path_factory: pytest.TempPathFactory, tiny_model_store) -> Path:
    """An (untrained) embedding-to-text decoder: tiny T5 behind a fresh projection."""
    from tiny_models import build_tiny_t5

    from augtool.core.inversion.decoder import EmbeddingDecoder

    root = tmp_path_factory.mktemp("pinr-decoder")
    t5 = build_tiny_t5(root / "t5")
    decoder = EmbeddingDecoder.create(
        str(t5), str(tiny_model_store["st"]), num_tokens=4, device="cpu", max_length=16
    )
    return decoder.save(root / "decoder")


@pytest.mark.parametrize(
    ("file", "part"),
    [("projection.safetensors", "projection.safetensors"), ("seq2seq/config.json", "seq2seq")],
)
def test_damaged_pinr_decoder(
    file: str, part: str, pinr_decoder: Path, tiny_model_store, tmp_path: Path
) -> None:
    from conftest import EXAMPLES

    decoder = Path(shutil.copytree(pinr_decoder, tmp_path / "decoder"))
    assert (decoder / file).is_file()
    damage(decoder / file, "garbage" if file.endswith(".json") else "truncate")
    rows = read_jsonl(EXAMPLES / "intents-train.jsonl")[:12]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    out = tmp_path / "condensed.jsonl"
    result = run_cli(
        "pinr", "condense", data, "--m", 4, "-o", out, "--decoder", decoder,
        "--encoder", tiny_model_store["st"], "--device", "cpu", "--iterations", 2,
    )  # fmt: skip
    assert_cannot_load(result, f"cannot load decoder {decoder}: {part}")
    assert not out.exists()


def test_errors_are_augtool_errors() -> None:
    assert issubclass(ModelLoadError, ModelError) and issubclass(ModelError, AugtoolError)
