"""The sentence-transformers backend (the default)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from augtool.core.encoders.base import TorchEncoder, move_to

if TYPE_CHECKING:
    import torch


class SentenceTransformerEncoder(TorchEncoder):
    """Any sentence-transformers model: its own tokenizer, pooling and normalisation."""

    backend = "sentence-transformers"

    def _load_module(self) -> torch.nn.Module:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.source, device="cpu")
        if self.max_length is not None:
            model.max_seq_length = self.max_length
        return model

    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        model = self.module
        prepare = getattr(model, "preprocess", None) or model.tokenize
        return move_to(prepare(texts), self.device)

    def forward(self, features: dict[str, Any]) -> torch.Tensor:
        return self.module(features)["sentence_embedding"]

    def token_states(self, features: dict[str, Any]) -> torch.Tensor:
        return self.module(features)["token_embeddings"]

    @property
    def special_token_ids(self) -> list[int]:
        return list(self.module.tokenizer.all_special_ids)

    def save(self, folder: str | Path) -> None:
        self.module.save(str(folder), safe_serialization=True)

    @property
    def dimension(self) -> int:
        model = self.module
        getter = getattr(model, "get_embedding_dimension", None)
        getter = getter or model.get_sentence_embedding_dimension
        return int(getter())
