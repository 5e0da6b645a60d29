"""Plain Hugging Face transformers with an explicit pooling strategy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from augtool.core.encoders.base import TorchEncoder, move_to
from augtool.core.model_errors import model_load_errors
from augtool.errors import OptionError

if TYPE_CHECKING:
    import torch

POOLINGS = ("mean", "cls", "max", "last")
POOLING_FILE = "augtool_pooling.json"


class HFEncoder(TorchEncoder):
    """``AutoModel`` + ``AutoTokenizer`` with mean / cls / max / last-token pooling."""

    backend = "hf"

    def __init__(
        self,
        name: str,
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        saved = self._saved_pooling()
        self.pooling = pooling or saved.get("pooling", "mean")
        self.normalize = normalize if normalize is not None else saved.get("normalize", False)
        if self.pooling not in POOLINGS:
            raise OptionError(
                "pooling", f"unknown pooling {self.pooling!r} (choose from {', '.join(POOLINGS)})"
            )
        self._tokenizer = None

    def _saved_pooling(self) -> dict[str, Any]:
        path = Path(self.source) / POOLING_FILE
        if not path.is_file():
            return {}
        with model_load_errors(self.name, "encoder"), model_load_errors(path, "file"):
            saved = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
        return saved

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "pooling": self.pooling, "normalize": self.normalize}

    def _load_module(self) -> torch.nn.Module:
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.source)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self._tokenizer = tokenizer
        return AutoModel.from_pretrained(self.source)

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        tokenizer = self.tokenizer
        limit = self.max_length or min(int(tokenizer.model_max_length or 512), 512)
        features = tokenizer(
            texts, padding=True, truncation=True, max_length=limit, return_tensors="pt"
        )
        return move_to(dict(features), self.device)

    def forward(self, features: dict[str, Any]) -> torch.Tensor:
        import torch

        inputs = {
            k: v
            for k, v in features.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        hidden = self.token_states(inputs)
        mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
        elif self.pooling == "last":
            if self.tokenizer.padding_side == "left":
                pooled = hidden[:, -1]
            else:
                last = features["attention_mask"].sum(dim=1) - 1
                pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last]
        else:
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    def token_states(self, features: dict[str, Any]) -> torch.Tensor:
        inputs = {
            k: v
            for k, v in features.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        return self.module(**inputs).last_hidden_state

    @property
    def special_token_ids(self) -> list[int]:
        return list(self.tokenizer.all_special_ids)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.module.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        settings = {"pooling": self.pooling, "normalize": self.normalize}
        (folder / POOLING_FILE).write_text(json.dumps(settings), encoding="utf-8")

    @property
    def dimension(self) -> int:
        return int(self.module.config.hidden_size)
