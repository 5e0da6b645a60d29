"""The adaptor A_phi: sentence embedding -> k soft tokens in the LM's input-embedding space."""

from __future__ import annotations

import torch
from torch import nn


class Adaptor(nn.Module):
    """``h (d_enc) -> k x d_llm``.

    ``hidden=0`` is the paper's one-layer MLP (a single linear map); ``hidden>0`` adds a
    GELU hidden layer. ``norm`` (augtool's addition, on by default) puts a LayerNorm on
    the input, which makes the map indifferent to the encoder's embedding scale
    (normalised or not); ``norm=False`` is the paper's plain layer.
    """

    def __init__(
        self,
        encoder_dim: int,
        llm_dim: int,
        soft_tokens: int = 1,
        hidden: int = 0,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.encoder_dim = encoder_dim
        self.llm_dim = llm_dim
        self.soft_tokens = soft_tokens
        self.hidden = hidden
        self.use_norm = norm
        self.norm: nn.Module = nn.LayerNorm(encoder_dim) if norm else nn.Identity()
        out = soft_tokens * llm_dim
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(encoder_dim, hidden), nn.GELU(), nn.Linear(hidden, out)
            )
        else:
            self.net = nn.Linear(encoder_dim, out)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(embeddings)).view(-1, self.soft_tokens, self.llm_dim)

    def shape(self) -> dict[str, int]:
        return {
            "encoder_dim": self.encoder_dim,
            "llm_dim": self.llm_dim,
            "soft_tokens": self.soft_tokens,
            "hidden": self.hidden,
            "norm": self.use_norm,
        }
