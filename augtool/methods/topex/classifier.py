"""The model TopEx explores: an augtool task model or any Hugging Face sequence classifier.

Both give, for every row, the classifier's outputs (logits) in the order of ``labels``
and sentence embeddings (for naming clusters and scoring names). Outputs are computed in
batches through the embedding cache, so exploring again (other clusterer, other
threshold) or resuming an interrupted run does not repeat the forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from augtool.core.encoders.base import Encoder, Progress, TorchEncoder
from augtool.core.hub import DEFAULT_ENCODER
from augtool.data.records import Record
from augtool.errors import ModelError

if TYPE_CHECKING:
    import torch

#: Joins a pair's two texts into one cache key (a control character no text contains).
PAIR_JOIN = "\x1f"


def model_input(record: Record) -> str:
    """The text a classifier sees for ``record`` (pairs joined by :data:`PAIR_JOIN`)."""
    text = record.text or ""
    return text if record.text_pair is None else f"{text}{PAIR_JOIN}{record.text_pair}"


class SequenceClassifierLogits(Encoder):
    """``AutoModelForSequenceClassification`` whose "embedding" of a text is its logits.

    Being an :class:`Encoder` gives it batching, longest-first ordering and the SQLite
    cache keyed by the model's content fingerprint.
    """

    backend = "hf-classifier"
    kind = "classifier"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._model: torch.nn.Module | None = None
        self._tokenizer: Any = None
        self.device = ""

    def load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from augtool.core.device import resolve_device
        from augtool.core.hub import loading, quiet_transformers

        quiet_transformers()
        self.device = resolve_device(self.device_spec)
        with loading("classifier", self.name):
            tokenizer = AutoTokenizer.from_pretrained(self.source)
            model = AutoModelForSequenceClassification.from_pretrained(self.source)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            model.config.pad_token_id = tokenizer.pad_token_id
        model.to(self.device).eval()
        self._model, self._tokenizer = model, tokenizer

    @property
    def labels(self) -> list[str]:
        """The model's label names in output order (``config.id2label``)."""
        self.load()
        assert self._model is not None
        mapping = self._model.config.id2label
        return [str(mapping[i]) for i in range(len(mapping))]

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        self.load()
        assert self._model is not None
        firsts, seconds = [], []
        for text in texts:
            first, _, second = text.partition(PAIR_JOIN)
            firsts.append(first)
            seconds.append(second if PAIR_JOIN in text else None)
        pairs = seconds if any(s is not None for s in seconds) else None
        if pairs is not None:
            pairs = [s or "" for s in pairs]
        limit = self.max_length or min(int(self._tokenizer.model_max_length or 512), 512)
        features = self._tokenizer(
            firsts,
            pairs,
            padding=True,
            truncation=True,
            max_length=limit,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            logits = self._model(**features).logits
        return logits.float().cpu().numpy()


@dataclass
class Outputs:
    """What the Explorer needs from a model, for every row."""

    labels: list[str]
    logits: np.ndarray
    embeddings: np.ndarray
    encoder: TorchEncoder
    info: dict[str, Any]


def _label_mapping(
    model_labels: Sequence[str], data_labels: Sequence[str], label_order: str | None, where: str
) -> list[str]:
    """The data label of each model output, checked against the labels in the data."""
    labels = list(model_labels)
    if label_order:
        names = [name.strip() for name in label_order.split(",") if name.strip()]
        if len(names) != len(labels):
            raise ModelError(
                f"--label-order names {len(names)} labels but {where} has {len(labels)} outputs"
            )
        labels = names
    unknown = sorted(set(data_labels) - set(labels))
    if unknown:
        hint = "" if label_order else " (map them with --label-order)"
        raise ModelError(
            f"{where} predicts {', '.join(labels)} but the data has label(s) "
            f"{', '.join(unknown)} it does not know{hint}"
        )
    return labels


def task_model_outputs(
    model_dir: str | Path,
    records: Sequence[Record],
    *,
    encoder: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    progress: Progress | None = None,
) -> Outputs:
    """Logits and sentence embeddings from an ``augtool train`` model folder (embeddings
    from its own encoder unless ``encoder`` names another)."""
    from augtool.core.encoders import load_encoder
    from augtool.core.taskmodel.model import TaskModel

    model = TaskModel.load(model_dir, device=device, batch_size=batch_size)
    data_labels = sorted({r.label for r in records if r.label is not None})
    labels = _label_mapping(model.labels, data_labels, None, f"model {str(model_dir)!r}")
    texts = [r.text or "" for r in records]
    embeddings = model.encoder.encode(texts, batch_size=batch_size, progress=progress)
    logits = model.logits_from_embeddings(embeddings)
    sentence_encoder: TorchEncoder = model.encoder
    if encoder:
        loaded = load_encoder(encoder, device=device, batch_size=batch_size)
        if not isinstance(loaded, TorchEncoder):  # pragma: no cover - registry guard
            raise ModelError(f"encoder {encoder!r} cannot give token embeddings")
        sentence_encoder = loaded
        embeddings = sentence_encoder.encode(texts, batch_size=batch_size)
    info = {"task_model": str(model_dir), "encoder": sentence_encoder.describe()}
    return Outputs(labels, logits, embeddings, sentence_encoder, info)


def classifier_outputs(
    name: str,
    records: Sequence[Record],
    *,
    encoder: str | None = None,
    label_order: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    progress: Progress | None = None,
) -> Outputs:
    """Logits from a Hugging Face sequence classifier; embeddings from ``encoder``."""
    from augtool.core.encoders import load_encoder

    classifier = SequenceClassifierLogits(name, device=device, batch_size=batch_size)
    data_labels = sorted({r.label for r in records if r.label is not None})
    labels = _label_mapping(classifier.labels, data_labels, label_order, f"classifier {name!r}")
    logits = classifier.encode([model_input(r) for r in records], progress=progress)
    sentence_encoder = load_encoder(encoder or DEFAULT_ENCODER, device=device)
    if not isinstance(sentence_encoder, TorchEncoder):  # pragma: no cover - registry guard
        raise ModelError(f"encoder {encoder!r} cannot give token embeddings")
    embeddings = sentence_encoder.encode([r.text or "" for r in records], batch_size=batch_size)
    info = {"classifier": classifier.describe(), "encoder": sentence_encoder.describe()}
    return Outputs(labels, logits, embeddings, sentence_encoder, info)
