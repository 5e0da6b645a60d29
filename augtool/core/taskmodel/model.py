"""The task classifier: a sentence encoder plus an MLP head; saving and loading.

A saved model is a folder::

    augtool_model.json   labels, encoder reference, head shape, training config
    head.safetensors     the head's weights
    encoder/             the fine-tuned encoder (absent when it was kept frozen)
    train_log.jsonl      one line of metrics per epoch
    meta.json            provenance
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augtool.core.encoders import TorchEncoder, load_encoder
from augtool.core.encoders.base import Progress
from augtool.core.model_errors import model_load_errors
from augtool.errors import ModelError, OptionError

MODEL_FILE = "augtool_model.json"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
FORMAT_VERSION = 1
#: An ``invmix`` model folder; after ``invmix refine`` its ``task_model`` names theta*.
INVERSION_FILE = "inversion.json"


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
        """Load a folder written by :meth:`save` (``augtool train``).

        A missing folder, a folder without ``augtool_model.json`` or an unreadable one is
        a :class:`ModelError` saying so; damaged weights (a truncated ``head.safetensors``,
        a garbled encoder) are one ``cannot load model FOLDER: reason`` line.
        """
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
        head_path = folder / HEAD_FILE
        with model_load_errors(folder):
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
                    f"model {str(folder)!r}: its frozen encoder {encoder_info['name']!r} now "
                    "resolves to different weights than it was trained with"
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
            if not head_path.is_file():
                raise ModelError(f"model {str(folder)!r}: {HEAD_FILE} is missing")
            with model_load_errors(head_path, "weights"):  # names the file in the reason
                model.head.load_state_dict(load_file(str(head_path), device=str(model.device)))
        model.head.eval()
        return model


@dataclass(frozen=True)
class InitModel:
    """A saved task model that training continues from (``--init-from``)."""

    given: Path
    folder: Path
    labels: list[str]
    fingerprint: str
    encoder_saved: bool

    def describe(self) -> dict[str, Any]:
        """What outputs' meta records about the starting point."""
        return {
            "path": str(self.given),
            "task_model": str(self.folder),
            "labels": self.labels,
            "sha256": self.fingerprint,
        }

    def require_labels(self, data_labels: Iterable[str], option: str = "init_from") -> None:
        """Fail in one line when the data has labels the model's head has no output for."""
        unknown = sorted(set(data_labels) - set(self.labels))
        if unknown:
            raise OptionError(
                option,
                f"{self.given}: the training data has label(s) {', '.join(unknown)} that this "
                f"model does not know (its labels: {', '.join(self.labels)})",
            )


def resolve_init_model(path: str | Path, option: str = "init_from") -> InitModel:
    """Check a ``--init-from`` folder without loading it: a task-model folder, or an
    ``invmix refine`` folder (whose ``task_model/`` is theta*). Missing or damaged folders
    are one-line errors."""
    given = Path(path)
    if not given.is_dir():
        raise OptionError(option, f"{given}: no such model folder")
    folder = given
    if not (given / MODEL_FILE).is_file() and (given / INVERSION_FILE).is_file():
        try:
            inner = json.loads((given / INVERSION_FILE).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise OptionError(option, f"{given / INVERSION_FILE}: unreadable ({exc})") from exc
        if not isinstance(inner, dict) or not inner.get("task_model"):
            raise OptionError(
                option,
                f"{given}: an invmix stage-1 adaptor has no task model; use the output of "
                "`augtool invmix refine`",
            )
        folder = given / str(inner["task_model"])
    config_path = folder / MODEL_FILE
    if not config_path.is_file():
        raise OptionError(
            option, f"{folder}: not a task model folder (no {MODEL_FILE}; see `augtool train`)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        labels = config["labels"]
        encoder_info = config["encoder"]
        head = config["head"]
        int(head["hidden"]), float(head["dropout"])
    except (ValueError, KeyError, TypeError) as exc:
        raise OptionError(option, f"{config_path}: unreadable model config ({exc})") from exc
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels) or not labels:
        raise OptionError(option, f'{config_path}: "labels" must be a list of label names')
    if config.get("format", 0) > FORMAT_VERSION:
        raise OptionError(option, f"{config_path}: written by a newer augtool; please upgrade")
    files = [config_path, folder / HEAD_FILE]
    if not files[1].is_file():
        raise OptionError(option, f"{folder}: {HEAD_FILE} is missing")
    local = encoder_info.get("path") if isinstance(encoder_info, dict) else None
    if local:
        encoder_dir = folder / str(local)
        weights = sorted(p for p in encoder_dir.rglob("*") if p.is_file())
        if not any(p.suffix in (".safetensors", ".bin") for p in weights):
            raise OptionError(option, f"{encoder_dir}: the saved encoder has no weights")
        files.extend(weights)
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(folder)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return InitModel(given, folder, list(labels), digest.hexdigest(), bool(local))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
