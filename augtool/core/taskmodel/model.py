"""The task classifier: a sentence encoder plus an MLP head; saving and loading.

A saved model is a folder::

    augtool_model.json   labels, encoder reference, head shape, training config
    head.safetensors     the head's weights
    encoder/             the fine-tuned encoder (absent when it was kept frozen)
    train_log.jsonl      one line of metrics per epoch
    meta.json            provenance
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augtool.core.encoders import TorchEncoder, load_encoder
from augtool.core.encoders.base import Progress
from augtool.errors import ModelError

MODEL_FILE = "augtool_model.json"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
FORMAT_VERSION = 1


class ClassifierHead(nn.Module):
    """Dropout -> Linear(dim, hidden) -> GELU -> Dropout -> Linear(hidden, labels).

    With ``hidden=0`` it is Dropout -> Linear(dim, labels).
    """

    def __init__(self, input_dim: int, num_labels: int, hidden: int, dropout: float) -> None:
        super().__init__()
        if hidden > 0:
            self.layers = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(input_dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_labels),
            )
        else:
            self.layers = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_dim, num_labels))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings)


class TaskModel:
    """A trained (or training) classifier over ``labels``."""

    def __init__(
        self,
        encoder: TorchEncoder,
        labels: Sequence[str],
        *,
        head_hidden: int = 256,
        dropout: float = 0.1,
        encoder_spec: dict[str, Any] | None = None,
        train_config: dict[str, Any] | None = None,
    ) -> None:
        self.encoder = encoder
        self.labels = list(labels)
        self.head_hidden = head_hidden
        self.dropout = dropout
        self.head = ClassifierHead(encoder.dimension, len(self.labels), head_hidden, dropout)
        self.head.to(encoder.device)
        self.encoder_spec = encoder_spec or {"name": encoder.name, "backend": encoder.backend}
        self.train_config = train_config or {}

    @property
    def device(self) -> str:
        return self.encoder.device

    def logits_from_embeddings(self, embeddings: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Head logits for precomputed sentence embeddings."""
        self.head.eval()
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(embeddings), batch_size):
                chunk = torch.as_tensor(
                    embeddings[start : start + batch_size], dtype=torch.float32, device=self.device
                )
                outputs.append(self.head(chunk).float().cpu().numpy())
        if not outputs:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.concatenate(outputs)

    def logits(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """Logits for ``texts`` (sentence embeddings come through the encoder's cache)."""
        embeddings = self.encoder.encode(list(texts), batch_size=batch_size, progress=progress)
        return self.logits_from_embeddings(embeddings)

    def save(self, folder: str | Path, *, encoder_trained: bool) -> None:
        """Write the model folder (safetensors weights + JSON config)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            key: value.detach().cpu().contiguous() for key, value in self.head.state_dict().items()
        }
        save_file(state, str(folder / HEAD_FILE))
        encoder_info = dict(self.encoder_spec)
        if encoder_trained:
            self.encoder.save(folder / ENCODER_DIR)
            encoder_info["path"] = ENCODER_DIR
        else:
            encoder_info["fingerprint"] = self.encoder.fingerprint
        config = {
            "format": FORMAT_VERSION,
            "labels": self.labels,
            "encoder": encoder_info,
            "head": {
                "input_dim": self.encoder.dimension,
                "hidden": self.head_hidden,
                "dropout": self.dropout,
            },
            "train_config": self.train_config,
        }
        (folder / MODEL_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        device: str = "auto",
        batch_size: int = 64,
        cache: bool = True,
    ) -> TaskModel:
        """Load a folder written by :meth:`save` (``augtool train``)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not folder.exists():
            raise ModelError(f"model {str(folder)!r}: no such folder")
        config_path = folder / MODEL_FILE
        if not config_path.is_file():
            raise ModelError(
                f"model {str(folder)!r}: not an augtool model folder "
                f"(no {MODEL_FILE}; train one with `augtool train`)"
            )
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            labels = config["labels"]
            encoder_info = config["encoder"]
            head = config["head"]
        except (ValueError, KeyError) as exc:
            raise ModelError(f"{config_path}: unreadable model config ({exc})") from exc
        if config.get("format", 0) > FORMAT_VERSION:
            raise ModelError(f"{config_path}: written by a newer augtool; please upgrade")
        local = encoder_info.get("path")
        spec = str(folder / local) if local else encoder_info["name"]
        encoder = load_encoder(
            spec,
            backend=encoder_info.get("backend", "auto"),
            device=device,
            dtype="float32",
            batch_size=batch_size,
            max_length=encoder_info.get("max_length"),
            pooling=encoder_info.get("pooling"),
            cache=cache,
        )
        if not isinstance(encoder, TorchEncoder):  # pragma: no cover - registry guard
            raise ModelError(f"encoder backend {encoder.backend!r} cannot be used here")
        expected = encoder_info.get("fingerprint")
        if expected and encoder.fingerprint != expected:
            raise ModelError(
                f"model {str(folder)!r}: its frozen encoder {encoder_info['name']!r} now resolves "
                "to different weights than it was trained with"
            )
        encoder.load()
        model = cls(
            encoder,
            labels,
            head_hidden=int(head["hidden"]),
            dropout=float(head["dropout"]),
            encoder_spec=encoder_info,
            train_config=config.get("train_config", {}),
        )
        head_path = folder / HEAD_FILE
        if not head_path.is_file():
            raise ModelError(f"model {str(folder)!r}: {HEAD_FILE} is missing")
        model.head.load_state_dict(load_file(str(head_path), device=str(model.device)))
        model.head.eval()
        return model


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
