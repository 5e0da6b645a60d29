"""The embedding decoder: it learns to invert embeddings of texts it trained on, saves and
reloads, refuses a foreign encoder, resumes an interrupted training exactly, corrects."""

from __future__ import annotations

import json
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXAMPLES
from tiny_models import build_tiny_t5

from augtool.core.encoders import load_encoder
from augtool.core.inversion.decoder import DECODER_FILE, PROJECTION_FILE, EmbeddingDecoder
from augtool.core.inversion.decoder_train import DecoderConfig, train_decoder
from augtool.core.progress import Reporter
from augtool.errors import AugtoolError, ModelError, OptionError

TEXTS = [
    json.loads(line)["text"]
    for line in (EXAMPLES / "intents-train.jsonl").read_text(encoding="utf-8").splitlines()
    if len(json.loads(line)["text"]) < 60
][:10]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny-t5") / "t5")


def config(t5: Path, encoder: Path, **overrides) -> DecoderConfig:
    values = {
        "seq2seq": str(t5),
        "encoder": str(encoder),
        "num_tokens": 8,
        "epochs": 120,
        "batch_size": 10,
        "lr": 1e-2,
        "max_length": 32,
        "save_every": 0,
        "device": "cpu",
    }
    values.update(overrides)
    return DecoderConfig(**values)


@pytest.fixture(scope="module")
def trained(
    tiny_t5: Path, tiny_model_store: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A decoder trained for a few seconds on ``TEXTS`` (shared by the tests below)."""
    root = tmp_path_factory.mktemp("decoder")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUGTOOL_CACHE_DIR", str(root / "cache"))
        result = train_decoder(TEXTS, config(tiny_t5, tiny_model_store["st"]), root / "decoder")
    assert result.output == root / "decoder"
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 5
    return root / "decoder"


def overlap(generated: str, target: str) -> float:
    return SequenceMatcher(None, generated.split(), target.split()).ratio()


def test_decoder_learns_to_reconstruct_the_texts_it_trained_on(
    trained: Path, tiny_t5: Path, tiny_model_store: dict[str, Path]
) -> None:
    encoder = load_encoder(str(tiny_model_store["st"]), device="cpu")
    embeddings = encoder.encode(TEXTS)
    untrained = EmbeddingDecoder.create(str(tiny_t5), encoder, num_tokens=8, device="cpu", seed=0)
    before = untrained.generate(embeddings, max_new_tokens=32)
    decoder = EmbeddingDecoder.load(trained, device="cpu", encoder=encoder)
    after = decoder.generate(embeddings, max_new_tokens=32, batch_size=4)

    assert sum(a == t for a, t in zip(before, TEXTS, strict=True)) == 0
    assert np.mean([overlap(a, t) for a, t in zip(before, TEXTS, strict=True)]) < 0.2
    assert sum(a == t for a, t in zip(after, TEXTS, strict=True)) >= 8
    assert np.mean([overlap(a, t) for a, t in zip(after, TEXTS, strict=True)]) >= 0.9
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 121))
    assert not trained.with_name(trained.name + ".partial").exists()


def test_save_load_round_trip_gives_the_same_generations(
    trained: Path, tiny_model_store: dict[str, Path], tmp_path: Path
) -> None:
    encoder = load_encoder(str(tiny_model_store["st"]), device="cpu")
    embeddings = encoder.encode(TEXTS[:6])
    decoder = EmbeddingDecoder.load(trained, device="cpu")
    decoder.save(tmp_path / "copy")
    copy = EmbeddingDecoder.load(tmp_path / "copy", device="cpu", encoder=encoder)
    assert copy.generate(embeddings) == decoder.generate(embeddings)
    assert copy.generate(embeddings, num_beams=2) == decoder.generate(embeddings, num_beams=2)
    info = json.loads((tmp_path / "copy" / DECODER_FILE).read_text())
    assert info["format"] == 1 and info["num_tokens"] == 8
    assert info["encoder"]["fingerprint"] == encoder.fingerprint
    assert info["encoder"]["dimension"] == encoder.dimension == 32
    assert info["training"]["lr"] == 1e-2
    assert (tmp_path / "copy" / PROJECTION_FILE).is_file()
    assert (tmp_path / "copy" / "seq2seq" / "config.json").is_file()


def test_a_foreign_encoder_or_folder_is_refused_clearly(
    trained: Path, tiny_model_store: dict[str, Path], tmp_path: Path
) -> None:
    st = load_encoder(str(tiny_model_store["st"]), device="cpu")
    other = load_encoder(str(tiny_model_store["hf"]), backend="hf", device="cpu")
    assert other.dimension == st.dimension
    with pytest.raises(ModelError) as caught:
        EmbeddingDecoder.load(trained, device="cpu", encoder=other)
    message = str(caught.value)
    assert f"decoder {trained} was trained for encoder {st.name}" in message
    assert f"(fingerprint {st.fingerprint}), not {other.name}" in message
    assert f"(fingerprint {other.fingerprint})" in message

    decoder = EmbeddingDecoder.load(trained, device="cpu")
    with pytest.raises(ModelError, match="was trained for encoder"):
        decoder.generate(st.encode(TEXTS[:2]), correction_steps=1, encoder=other)
    with pytest.raises(ModelError, match="not an embedding decoder folder"):
        EmbeddingDecoder.load(tiny_model_store["st"], device="cpu")
    with pytest.raises(ModelError, match="no such folder"):
        EmbeddingDecoder.load(tmp_path / "missing", device="cpu")


def test_correction_steps_keep_the_closest_hypothesis(
    trained: Path, tiny_model_store: dict[str, Path]
) -> None:
    encoder = load_encoder(str(tiny_model_store["st"]), device="cpu")
    targets = encoder.encode(["I want to change my password", "the app restarts every time"])
    decoder = EmbeddingDecoder.load(trained, device="cpu", encoder=encoder)
    plain = decoder.generate(targets, max_new_tokens=24)
    corrected = decoder.generate(targets, max_new_tokens=24, correction_steps=1, encoder=encoder)
    assert len(corrected) == 2 and all(isinstance(t, str) for t in corrected)

    def cosine(texts: list[str]) -> np.ndarray:
        found = encoder.encode(texts)
        return (
            (found * targets).sum(1)
            / np.linalg.norm(found, axis=1)
            / np.linalg.norm(targets, axis=1)
        )

    assert np.all(cosine(corrected) >= cosine(plain) - 1e-6)
    with pytest.raises(AugtoolError, match="need the encoder"):
        decoder.generate(targets, correction_steps=1)

    decoder.train()
    loss = decoder.loss(torch.as_tensor(targets), ["a", "b"], plain, torch.as_tensor(targets))
    loss.backward()
    assert torch.isfinite(loss)
    assert decoder.projection.hypothesis.net[0].weight.grad is not None


class StopAt(Reporter):
    """Interrupts training (like Ctrl-C) once ``stop_at`` steps are done."""

    def __init__(self, stop_at: int) -> None:
        self.stop_at = stop_at
        self.messages: list[str] = []

    def task(self, description: str, total: int | None, completed: int = 0):
        done = [completed]

        def advance(n: int) -> None:
            done[0] += n
            if description == "training decoder" and done[0] >= self.stop_at:
                raise KeyboardInterrupt

        return advance

    def log(self, message: str) -> None:
        self.messages.append(message)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {
        **{f"p.{k}": v for k, v in load_file(folder / PROJECTION_FILE).items()},
        **{f"s.{k}": v for k, v in load_file(folder / "seq2seq" / "model.safetensors").items()},
    }


def test_interrupted_training_resumes_to_the_same_weights(
    tiny_t5: Path, tiny_model_store: dict[str, Path], tmp_path: Path
) -> None:
    texts = TEXTS[:8]
    cfg = config(
        tiny_t5,
        tiny_model_store["st"],
        epochs=2,
        correction_epochs=1,
        batch_size=4,
        max_length=12,
        save_every=1,
    )
    whole = train_decoder(texts, cfg, tmp_path / "whole")

    with pytest.raises(KeyboardInterrupt):
        train_decoder(texts, cfg, tmp_path / "resumed", reporter=StopAt(3))
    assert (tmp_path / "resumed.partial" / "checkpoint" / "progress.json").is_file()
    second = StopAt(5)  # mid correction epoch: hypotheses are kept with the checkpoint
    with pytest.raises(KeyboardInterrupt):
        train_decoder(texts, cfg, tmp_path / "resumed", reporter=second)
    assert "resuming decoder training at step 3" in second.messages
    third = StopAt(10**6)
    resumed = train_decoder(texts, cfg, tmp_path / "resumed", reporter=third)
    assert "resuming decoder training at step 5" in third.messages
    assert resumed.resumed_step == 5

    assert resumed.history == whole.history
    assert [r["phase"] for r in whole.history] == ["inversion", "inversion", "correction"]
    expected, got = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    assert not (tmp_path / "resumed.partial").exists()
    assert not (tmp_path / "resumed" / "checkpoint").exists()


def test_config_values_are_checked() -> None:
    with pytest.raises(OptionError, match="--epochs"):
        DecoderConfig(epochs=0)
    with pytest.raises(OptionError, match="--max-samples"):
        DecoderConfig(max_samples=0)
    with pytest.raises(OptionError, match="--correction-epochs"):
        DecoderConfig(correction_epochs=-1)
