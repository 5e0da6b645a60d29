"""`invmix warm-lm`: a BERT encoder's weights continued as a causal LM, saved as a normal
transformers folder that every invmix stage takes as --llm hf:DIR. Tiny random BERTs
through the CLI (build, train-adaptor, generate, reconstruct, intrusion; resume; bad
encoder and corpus), and one test on the real default encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import typer
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl

from augtool.cli.app import app
from augtool.methods.invmix.config import WarmLMConfig

UNLABELED = EXAMPLES / "intents-unlabeled.jsonl"
TINY = ("--device", "cpu", "--batch-size", 8, "--max-length", 24)


def warm_lm(encoder: Path, corpus: Path, out: Path, *extra: object):
    return run_cli("invmix", "warm-lm", corpus, "-o", out, "--encoder", encoder, *TINY, *extra)


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_store: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sentence-transformers BERT continued as a causal LM, through the CLI."""
    out = tmp_path_factory.mktemp("warm-lm") / "lm"
    result = warm_lm(tiny_model_store["st"], UNLABELED, out, "--epochs", 2, "--lr", 1e-3)
    assert result.exit_code == 0, result.stderr
    return out


# --- the folder ---------------------------------------------------------------------------


def test_warm_lm_writes_a_causal_bert_folder_with_provenance(
    tiny_lm: Path, tiny_model_store: dict[str, Path]
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, BertLMHeadModel

    from augtool.core.encoders import load_encoder
    from augtool.data.provenance import file_fingerprint

    config = json.loads((tiny_lm / "config.json").read_text())
    assert config["is_decoder"] is True and config["architectures"] == ["BertLMHeadModel"]
    assert config["tie_word_embeddings"] is True
    assert (tiny_lm / "model.safetensors").is_file()
    assert not (tiny_lm.parent / "lm.partial").exists()

    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    assert isinstance(model, BertLMHeadModel) and model.config.is_decoder
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (cls, sep) and pad == 0
    ids = tokenizer("where is my parcel")["input_ids"]
    assert ids[0] == cls and sep not in ids  # a causal LM's tokenizer: BOS only
    assert model.generation_config.eos_token_id == sep
    assert model.generation_config.pad_token_id == pad

    info = json.loads((tiny_lm / "warm_lm.json").read_text())
    assert info["corpus"]["sha256"] == file_fingerprint(UNLABELED)["sha256"]
    assert info["corpus"]["sentences"] == len(read_jsonl(UNLABELED))
    assert info["encoder"]["fingerprint"] == load_encoder(str(tiny_model_store["st"])).fingerprint
    assert "torch" in info["environment"]["packages"]
    # a sentence-transformers checkpoint has no MLM head: its weights are new, and said so
    assert "cls.predictions.transform.dense.weight" in info["initialised"]
    assert [row["epoch"] for row in info["history"]] == [1, 2]
    assert info["config"]["epochs"] == 2
    meta = json.loads((tiny_lm / "meta.json").read_text())
    assert meta["command"] == "invmix warm-lm" and meta["counts"]["sentences"] == 40
    log = [json.loads(line) for line in (tiny_lm / "train_log.jsonl").read_text().splitlines()]
    assert log == info["history"]


def test_warm_lm_starts_from_the_encoder_weights(tiny_model_store: dict[str, Path]) -> None:
    """Every encoder weight carries over through from_pretrained; only the MLM head's
    transform and bias are new."""
    from safetensors.torch import load_file

    from augtool.methods.invmix.warm_lm import bert_source, build_causal_lm, causal_tokenizer

    source = bert_source(str(tiny_model_store["st"]))
    model, initialised = build_causal_lm(source, causal_tokenizer(source), seed=0)
    assert initialised == [
        "cls.predictions.bias",
        "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.dense.weight",
    ]
    encoder = load_file(str(Path(source) / "model.safetensors"))
    state = model.state_dict()
    for name, value in encoder.items():
        if not name.startswith("pooler."):
            assert torch.equal(state[f"bert.{name}"], value), name
    assert torch.equal(
        model.cls.predictions.decoder.weight, encoder["embeddings.word_embeddings.weight"]
    )


def test_the_options_are_the_config_fields() -> None:
    import dataclasses

    command = typer.main.get_command(app).commands["invmix"].commands["warm-lm"]
    options = {p.name for p in command.params} - {
        "file",
        "output",
        "overwrite",
        "skip_invalid",
        "config",
    }
    assert options == {f.name for f in dataclasses.fields(WarmLMConfig)}


# --- every invmix stage runs on it ----------------------------------------------------------


def test_invmix_stages_run_on_the_warm_lm(
    tiny_lm: Path, tiny_model_store: dict[str, Path], tmp_path: Path
) -> None:
    lm = shutil.copytree(tiny_lm, tmp_path / "lm")
    encoder = tiny_model_store["st"]
    adaptor = tmp_path / "adaptor"
    result = run_cli(
        "invmix", "train-adaptor", UNLABELED, "-o", adaptor, "--encoder", encoder,
        "--llm", f"hf:{lm}", "--max-samples", 16, "--batch-size", 8, "--lr", 1e-3,
        "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    inversion = json.loads((adaptor / "inversion.json").read_text())
    assert inversion["adaptor"]["llm_dim"] == 32 and inversion["llm"]["spec"] == f"hf:{lm}"

    rows = read_jsonl(EXAMPLES / "intents-train.jsonl")[:8]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    mixed = tmp_path / "mixed.jsonl"
    result = run_cli(
        "invmix", "generate", train, "--model", adaptor, "-o", mixed, "--n", 4,
        "--max-new-tokens", 8, "--keep-duplicates", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = read_jsonl(mixed)
    assert len(out) == 4 and all(isinstance(r["text"], str) for r in out)
    assert all(r["aug"]["method"] == "invmix" for r in out)

    recon = tmp_path / "recon.jsonl"
    result = run_cli(
        "invmix", "reconstruct", train, "--model", adaptor, "-o", recon,
        "--max-new-tokens", 8, "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(read_jsonl(recon)) == 8

    report = tmp_path / "intrusion.json"
    result = run_cli(
        "invmix", "intrusion", mixed, "--judge", f"hf:{lm}", "-o", report, "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(report.read_text())["sample"]["judged"] == 4


def test_soft_prompts_on_a_bert_lm_start_with_cls_end_with_sep_and_stop_there(
    tiny_lm: Path,
) -> None:
    """The inversion prompt is [CLS] prefix [soft] suffix, the target ends with [SEP]
    (EOS), decoding stops at [SEP] and uses the KV cache (same tokens as without it)."""
    from augtool.core.inversion.model import load_causal_lm
    from augtool.core.inversion.soft_prompt import SoftPromptLM

    model, tokenizer, _, info = load_causal_lm(f"hf:{tiny_lm}", device="cpu", dtype="float32")
    assert info["hidden_size"] == 32
    lm = SoftPromptLM(model, tokenizer, max_target_tokens=8)
    sep, cls = tokenizer.sep_token_id, tokenizer.cls_token_id
    assert lm.prefix_ids[0] == cls and sep not in lm.prefix_ids + lm.suffix_ids
    targets = lm.target_ids(["where is my parcel", "refund please"])
    assert all(seq[-1] == sep and seq.count(sep) == 1 for seq in targets)
    batch = lm.training_batch(torch.zeros(2, 1, 32), ["where is my parcel", "refund please"])
    labels = batch["labels"]
    assert (labels == sep).sum() == 2 and (labels == tokenizer.pad_token_id).sum() == 0

    soft = torch.randn(3, 1, 32, generator=torch.Generator().manual_seed(0))
    prompt = lm.prompt_embeddings(soft)
    ones = torch.ones(prompt.shape[:2], dtype=torch.long)
    with torch.inference_mode():
        cached = model.generate(
            inputs_embeds=prompt, attention_mask=ones, max_new_tokens=6, do_sample=False,
            use_cache=True,
        )  # fmt: skip
        plain = model.generate(
            inputs_embeds=prompt, attention_mask=ones, max_new_tokens=6, do_sample=False,
            use_cache=False,
        )  # fmt: skip
    assert torch.equal(cached, plain)

    seen: list[torch.Tensor] = []
    generate = model.generate

    def recording(*args, **kwargs):
        seen.append(output := generate(*args, **kwargs))
        return output

    model.generate = recording
    with torch.no_grad():
        model.cls.predictions.bias[sep] += 1e4  # every row's first token is now [SEP]
    assert lm.generate(soft, max_new_tokens=6) == ["", "", ""]
    assert seen[-1].shape[1] == 1  # stopped at EOS instead of running 6 tokens


# --- resume -------------------------------------------------------------------------------


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(
    tiny_st: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file
    from transformers import BertLMHeadModel

    args = ("--epochs", 2, "--save-every", 2, "--lr", 1e-3)
    reference = tmp_path / "reference"
    result = warm_lm(tiny_st, UNLABELED, reference, *args)  # 5 steps per epoch
    assert result.exit_code == 0, result.stderr

    forward = BertLMHeadModel.forward
    calls = {"n": 0}

    def crash_on_step_7(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return forward(self, *a, **k)

    out = tmp_path / "lm"
    with monkeypatch.context() as patch:
        patch.setattr(BertLMHeadModel, "forward", crash_on_step_7)
        assert warm_lm(tiny_st, UNLABELED, out, *args).exit_code == 130
    assert not out.exists()
    assert (tmp_path / "lm.partial" / "checkpoint" / "progress.json").is_file()
    result = warm_lm(tiny_st, UNLABELED, out, *args)
    assert result.exit_code == 0, result.stderr
    assert "resuming warm-LM training at step 6" in result.stderr
    ours, theirs = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert (out / "train_log.jsonl").read_text() == (reference / "train_log.jsonl").read_text()


def test_the_corpus_is_read_back_from_disk_a_batch_at_a_time(tmp_path: Path) -> None:
    from augtool.methods.invmix.warm_lm import index_corpus

    rows = [{"text": f"sentence number {i} é"} for i in range(10)]
    path = tmp_path / "c.jsonl"
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
    path.write_bytes(b"\xef\xbb\xbf" + body.replace("\n", "\n\n", 1).encode() + b"\n")
    index = index_corpus(path, limit=6)
    assert len(index) == 6 and index.offsets.dtype.name == "int64"
    with path.open("rb") as handle:
        assert index.read(handle, [5, 0, 2]) == [rows[5]["text"], rows[0]["text"], rows[2]["text"]]


# --- bad input ----------------------------------------------------------------------------


def test_a_non_bert_encoder_is_a_one_line_error(tmp_path: Path) -> None:
    from transformers import MPNetConfig, MPNetModel

    folder = tmp_path / "tiny-mpnet"
    config = MPNetConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64,
    )  # fmt: skip
    MPNetModel(config).save_pretrained(folder)
    out = tmp_path / "lm"
    result = warm_lm(folder, UNLABELED, out)
    assert_one_line_error(result, "--encoder", "'mpnet'", "--llm hf:")
    assert not out.exists() and not (tmp_path / "lm.partial").exists()


def test_bad_corpora_are_one_line_errors_naming_file_and_line(
    tiny_st: Path, tmp_path: Path
) -> None:
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"text": "fine"}, {"sentence": "no"}])
    result = warm_lm(tiny_st, missing, tmp_path / "a")
    assert_one_line_error(result, f"{missing}:2", 'missing field "text"')

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = warm_lm(tiny_st, empty, tmp_path / "b")
    assert_one_line_error(result, str(empty), "empty")

    result = warm_lm(tiny_st, tmp_path / "absent.jsonl", tmp_path / "c")
    assert_one_line_error(result, "absent.jsonl")

    result = warm_lm(tiny_st, UNLABELED, tmp_path / "d", "--max-length", 2)
    assert_one_line_error(result, "--max-length")
    assert not any(p.name.startswith(("a", "b", "c", "d")) for p in tmp_path.iterdir())


def test_skip_invalid_trains_on_the_good_rows(tiny_st: Path, tmp_path: Path) -> None:
    rows = [{"text": r["text"]} for r in read_jsonl(UNLABELED)[:6]] + [{"text": ""}]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    out = tmp_path / "lm"
    result = warm_lm(tiny_st, corpus, out, "--skip-invalid")
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "warm_lm.json").read_text())["corpus"]["sentences"] == 6
    assert len(read_jsonl(out / "rejects.jsonl")) == 1


# --- the real default encoder -------------------------------------------------------------


def test_the_default_encoder_becomes_a_causal_lm_that_learns() -> None:
    """all-MiniLM-L6-v2 (offline) through from_pretrained: its word embeddings are the
    LM's (input and tied output), and a few steps on a batch lower the loss."""
    from augtool.core.encoders import load_encoder
    from augtool.core.hub import DEFAULT_ENCODER
    from augtool.methods.invmix.warm_lm import (
        bert_source,
        build_causal_lm,
        causal_tokenizer,
        lm_batch,
    )

    source = bert_source(DEFAULT_ENCODER)
    tokenizer = causal_tokenizer(source)
    model, initialised = build_causal_lm(source, tokenizer, seed=0)
    encoder = load_encoder(DEFAULT_ENCODER, device="cpu")
    words = encoder.module[0].auto_model.embeddings.word_embeddings.weight
    assert torch.equal(model.get_input_embeddings().weight, words)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert initialised and all(name.startswith("cls.predictions.") for name in initialised)

    texts = [r["text"] for r in read_jsonl(UNLABELED)[:8]]
    batch = lm_batch(tokenizer, texts, 32, "cpu")
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.eval()  # no dropout: the loss change is the updates'
    with torch.no_grad():
        before = float(model(**batch).loss)
    for _ in range(3):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(model(**batch).loss)
    assert after < before - 0.5, (before, after)
