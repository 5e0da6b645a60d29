"""The decoder's generator warm-started from the encoder's own BERT (bert2bert): built from
the encoder checkpoint's weights, trained and used through the CLI, saved and reloaded,
resumed exactly, decoded in batches with the KV cache; other encoders and a conflicting
--seq2seq are refused in one line. One test loads the real default encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl
from test_decoder import StopAt, weights

from augtool.core.encoders import load_encoder
from augtool.core.inversion.decoder import DECODER_FILE, EmbeddingDecoder
from augtool.core.inversion.decoder_train import DecoderConfig, train_decoder
from augtool.core.inversion.warm_start import warm_start_source
from augtool.errors import OptionError

ROWS = read_jsonl(EXAMPLES / "intents-train.jsonl")
TEXTS = [r["text"] for r in ROWS if len(r["text"]) < 60][:8]


pytestmark = pytest.mark.usefixtures("one_thread")


def bert_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The encoder checkpoint's BertModel weights, loaded the normal way."""
    from transformers import AutoModel

    return {
        k: v.detach().clone() for k, v in AutoModel.from_pretrained(folder).state_dict().items()
    }


def check_warm_start(decoder: EmbeddingDecoder, checkpoint: dict[str, torch.Tensor]) -> None:
    """Both halves hold the checkpoint's weights; the decoder is causal with new
    cross-attention and an LM head tied to its word embeddings."""
    model = decoder.model
    assert type(model).__name__ == "EncoderDecoderModel"
    encoder_half = model.encoder.state_dict()
    decoder_half = model.decoder.bert.state_dict()
    for name, value in checkpoint.items():
        assert torch.equal(encoder_half[name], value), name
        if not name.startswith("pooler."):  # the LM-head model has no pooler
            assert torch.equal(decoder_half[name], value), name
    assert model.decoder.config.is_decoder and model.decoder.config.add_cross_attention
    cross = [n for n in decoder_half if "crossattention" in n]
    assert cross and not any(n in checkpoint for n in cross)
    head = model.decoder.get_output_embeddings().weight
    assert head is model.decoder.get_input_embeddings().weight
    tokenizer = decoder.tokenizer
    assert model.config.decoder_start_token_id == tokenizer.cls_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert tokenizer.eos_token_id == tokenizer.sep_token_id == model.config.eos_token_id


def test_create_warm_starts_from_the_encoder_checkpoint(tiny_st: Path) -> None:
    encoder = load_encoder(str(tiny_st), device="cpu")
    decoder = EmbeddingDecoder.create(None, encoder, num_tokens=4, device="cpu", seed=0)
    check_warm_start(decoder, bert_weights(tiny_st))
    assert decoder.init_from_encoder == {
        "encoder": str(tiny_st),
        "source": str(tiny_st),
        "fingerprint": encoder.fingerprint,
        "model_type": "bert",
    }
    again = EmbeddingDecoder.create(None, encoder, num_tokens=4, device="cpu", seed=0)
    cross = "decoder.bert.encoder.layer.0.crossattention.self.query.weight"
    assert torch.equal(decoder.model.state_dict()[cross], again.model.state_dict()[cross])


def test_the_checkpoint_is_found_in_a_sentence_transformers_subfolder(
    tiny_hf: Path, tmp_path: Path
) -> None:
    """Older sentence-transformers folders keep the BERT in ``0_Transformer``."""
    import shutil

    root = tmp_path / "old-st"
    shutil.copytree(tiny_hf, root / "0_Transformer")
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    modules = [
        {"idx": 0, "name": "0", "path": "0_Transformer", "type": "x.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "x.models.Pooling"},
    ]
    (root / "modules.json").write_text(json.dumps(modules))
    source = warm_start_source(load_encoder(str(root), device="cpu"))
    assert source.folder == root / "0_Transformer" and source.model_type == "bert"
    assert warm_start_source(load_encoder(f"hf:{tiny_hf}", device="cpu")).folder == tiny_hf


@pytest.fixture
def data(tmp_path: Path) -> Path:
    picked = [
        row
        for label in ("account", "billing")
        for row in [r for r in ROWS if r["label"] == label][:4]
    ]
    return write_jsonl(tmp_path / "train.jsonl", picked)


def test_cli_train_decoder_warm_started_then_condense(
    data: Path, tiny_st: Path, tmp_path: Path
) -> None:
    out = tmp_path / "decoder"
    args = ("--encoder", tiny_st, "--epochs", 2, "--batch-size", 4, "--num-tokens", 4)
    result = run_cli(
        "pinr",
        "train-decoder",
        data,
        "-o",
        out,
        *args,
        "--lr",
        1e-3,
        "--max-length",
        16,
        "--correction-epochs",
        1,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    assert "warm-started from the encoder" in result.stdout
    encoder = load_encoder(str(tiny_st), device="cpu")
    info = json.loads((out / DECODER_FILE).read_text())
    assert info["init_from_encoder"] == {
        "encoder": str(tiny_st),
        "source": str(tiny_st),
        "fingerprint": encoder.fingerprint,
        "model_type": "bert",
    }
    assert info["training"]["seq2seq"] is None
    seq2seq_config = json.loads((out / "seq2seq" / "config.json").read_text())
    assert seq2seq_config["model_type"] == "encoder-decoder"
    assert seq2seq_config["decoder"]["model_type"] == "bert"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["init_from_encoder"]["fingerprint"] == encoder.fingerprint
    assert [h["phase"] for h in meta["history"]] == ["inversion"] * 2 + ["correction"]

    # trained: the weights moved away from the checkpoint's, the LM head is still tied
    decoder = EmbeddingDecoder.load(out, device="cpu", encoder=encoder)
    assert decoder.init_from_encoder == info["init_from_encoder"]
    model = decoder.model
    assert (
        model.decoder.get_output_embeddings().weight is model.decoder.get_input_embeddings().weight
    )
    start = bert_weights(tiny_st)["embeddings.word_embeddings.weight"]
    assert not torch.equal(model.decoder.get_input_embeddings().weight, start)

    rows = tmp_path / "pinr.jsonl"
    result = run_cli(
        "pinr",
        "condense",
        data,
        "--m",
        2,
        "-o",
        rows,
        "--encoder",
        tiny_st,
        "--decoder",
        out,
        "--no-refine",
        "--components",
        1,
        "--iterations",
        20,
        "--correction-steps",
        1,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    written = read_jsonl(rows)
    assert sorted(r["label"] for r in written) == ["account", "billing"]
    assert all(r["text"].strip() and r["aug"]["method"] == "pinr" for r in written)


def test_decoding_is_batched_and_uses_the_kv_cache(tiny_st: Path, tmp_path: Path) -> None:
    encoder = load_encoder(str(tiny_st), device="cpu")
    decoder = EmbeddingDecoder.create(None, encoder, num_tokens=4, device="cpu", seed=0)
    decoder.save(tmp_path / "saved")
    loaded = EmbeddingDecoder.load(tmp_path / "saved", device="cpu", encoder=encoder)
    calls: list[tuple[int, int, bool]] = []
    inner = loaded.model.decoder.forward

    def spy(*args, **kwargs):
        ids = kwargs["input_ids"]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        calls.append((ids.shape[0], ids.shape[1], cache is not None))
        return inner(*args, **kwargs)

    loaded.model.decoder.forward = spy
    embeddings = encoder.encode(TEXTS[:6])
    texts = loaded.generate(embeddings, max_new_tokens=5, batch_size=4)
    assert texts == decoder.generate(embeddings, max_new_tokens=5, batch_size=4)
    assert len(texts) == 6
    assert {batch for batch, _, _ in calls} == {4, 2}  # two batches, not six rows
    # with the cache every step reads only its newest token (the first, the start token),
    # the earlier ones' keys and values coming from the cache
    assert all(width == 1 and cached for _, width, cached in calls)
    assert len(calls) == 2 * 5  # one call per new token and batch


def test_interrupted_warm_started_training_resumes_to_the_same_weights(
    tiny_st: Path, tmp_path: Path
) -> None:
    cfg = DecoderConfig(
        encoder=str(tiny_st),
        num_tokens=4,
        epochs=2,
        correction_epochs=1,
        batch_size=4,
        lr=1e-3,
        max_length=12,
        save_every=1,
        device="cpu",
    )
    whole = train_decoder(TEXTS, cfg, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train_decoder(TEXTS, cfg, tmp_path / "resumed", reporter=StopAt(3))
    last = StopAt(10**6)
    resumed = train_decoder(TEXTS, cfg, tmp_path / "resumed", reporter=last)
    assert "resuming decoder training at step 3" in last.messages
    assert resumed.history == whole.history
    expected, got = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_a_non_bert_encoder_is_refused_in_one_line(data: Path, tmp_path: Path) -> None:
    from tiny_models import build_tiny_t5

    t5 = build_tiny_t5(tmp_path / "t5")
    result = run_cli("pinr", "train-decoder", data, "-o", tmp_path / "d", "--encoder", f"hf:{t5}")
    assert_one_line_error(result, "--init-from-encoder", "is a t5 model", "--seq2seq MODEL")
    assert not (tmp_path / "d.partial").exists()


def test_seq2seq_and_init_from_encoder_are_exclusive(data: Path, tiny_st: Path, tmp_path: Path):
    result = run_cli(
        "pinr",
        "train-decoder",
        data,
        "-o",
        tmp_path / "d",
        "--seq2seq",
        "google-t5/t5-base",
        "--init-from-encoder",
        "--encoder",
        tiny_st,
    )
    assert_one_line_error(result, "--init-from-encoder", "--seq2seq", "mutually exclusive")
    assert result.exit_code == 2
    with pytest.raises(OptionError, match="--seq2seq: must name a model"):
        DecoderConfig(seq2seq=" ")
    assert DecoderConfig().warm_start and DecoderConfig(init_from_encoder=True).warm_start
    assert not DecoderConfig(seq2seq="google-t5/t5-base").warm_start
    with pytest.raises(OptionError, match="--max-length"):
        EmbeddingDecoder.create(
            None, load_encoder(str(tiny_st), device="cpu"), num_tokens=200, max_length=64
        )


def test_the_default_encoder_warm_starts_the_decoder_and_a_few_steps_lower_the_loss() -> None:
    """The real all-MiniLM-L6-v2 (offline, from the embedded package), through
    ``from_pretrained``: the seq2seq halves hold its weights; training steps help."""
    from augtool.core.hub import DEFAULT_ENCODER

    encoder = load_encoder(DEFAULT_ENCODER, device="cpu")
    source = warm_start_source(encoder)
    decoder = EmbeddingDecoder.create(None, encoder, num_tokens=4, device="cpu", seed=0)
    checkpoint = bert_weights(source.folder)
    assert checkpoint["embeddings.word_embeddings.weight"].shape == (30522, 384)
    check_warm_start(decoder, checkpoint)
    assert torch.equal(
        decoder.model.decoder.get_input_embeddings().weight,
        checkpoint["embeddings.word_embeddings.weight"],
    )
    texts = TEXTS[:4]
    vectors = torch.as_tensor(encoder.encode(texts))
    decoder.projection.fit_inputs(vectors)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=1e-4)
    decoder.train()
    torch.manual_seed(0)
    losses = []
    for _ in range(4):
        loss = decoder.loss(vectors, texts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    decoder.eval()
    with torch.no_grad():
        final = float(decoder.loss(vectors, texts))
    assert final < losses[0] * 0.8, (losses, final)
