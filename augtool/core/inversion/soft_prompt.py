"""Soft-prompt inversion: a frozen causal LM reads sentence embeddings as soft tokens.

The prompt is ``<prefix>[k soft tokens]<suffix><target>``, by default
``"Given the embedding [A(h)], generate the original sentence: x"``. The prefix and
suffix are token embeddings of the LM; the soft tokens are the adaptor's output
``A_phi(h)`` spliced in as ``inputs_embeds``. Training minimises
``L_GEN = -log P_psi(x | A_phi(h))`` over the target tokens only; the LM's weights never
receive gradients (only the adaptor's do, through the LM's activations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from augtool.core.inversion.adaptor import Adaptor

DEFAULT_PREFIX = "Given the embedding "
DEFAULT_SUFFIX = ", generate the original sentence: "


@dataclass(frozen=True)
class PromptTemplate:
    """Text around the soft tokens."""

    prefix: str = DEFAULT_PREFIX
    suffix: str = DEFAULT_SUFFIX


DEFAULT_TEMPLATE = PromptTemplate()


class SoftPromptLM:
    """A frozen causal LM with its tokenizer, turned into an embedding-to-text decoder."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        template: PromptTemplate = DEFAULT_TEMPLATE,
        *,
        max_target_tokens: int = 64,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.max_target_tokens = max_target_tokens
        model.requires_grad_(False)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.prefix_ids = tokenizer(template.prefix, add_special_tokens=True)["input_ids"]
        self.suffix_ids = tokenizer(template.suffix, add_special_tokens=False)["input_ids"]

    @property
    def hidden_size(self) -> int:
        return int(self.model.get_input_embeddings().embedding_dim)

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    def _embed_ids(self, ids: list[int]) -> torch.Tensor:
        tensor = torch.tensor(ids, dtype=torch.long, device=self.device)
        return self.model.get_input_embeddings()(tensor)

    def prompt_embeddings(self, soft: torch.Tensor) -> torch.Tensor:
        """``[prefix][soft][suffix]`` for a batch of soft tokens ``(B, k, d)``."""
        batch = soft.shape[0]
        prefix = self._embed_ids(self.prefix_ids).unsqueeze(0).expand(batch, -1, -1)
        suffix = self._embed_ids(self.suffix_ids).unsqueeze(0).expand(batch, -1, -1)
        return torch.cat([prefix, soft.to(self.dtype), suffix], dim=1)

    def target_ids(self, texts: list[str]) -> list[list[int]]:
        """Target tokens (truncated) followed by EOS."""
        eos = self.tokenizer.eos_token_id
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [seq[: self.max_target_tokens] + ([eos] if eos is not None else []) for seq in ids]

    def training_batch(self, soft: torch.Tensor, texts: list[str]) -> dict[str, torch.Tensor]:
        """``inputs_embeds``, ``attention_mask`` and ``labels`` (-100 outside the targets),
        right-padded to the longest target."""
        prompt = self.prompt_embeddings(soft)
        targets = self.target_ids(texts)
        width = max(len(t) for t in targets)
        pad = self.tokenizer.pad_token_id
        padded = torch.full((len(texts), width), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((len(texts), width), dtype=torch.long, device=self.device)
        for row, seq in enumerate(targets):
            padded[row, : len(seq)] = torch.tensor(seq, device=self.device)
            mask[row, : len(seq)] = 1
        target_embeddings = self.model.get_input_embeddings()(padded)
        prompt_len = prompt.shape[1]
        labels = torch.full(
            (len(texts), prompt_len + width), -100, dtype=torch.long, device=self.device
        )
        labels[:, prompt_len:] = padded.masked_fill(mask == 0, -100)
        attention = torch.cat(
            [torch.ones((len(texts), prompt_len), dtype=torch.long, device=self.device), mask],
            dim=1,
        )
        return {
            "inputs_embeds": torch.cat([prompt, target_embeddings], dim=1),
            "attention_mask": attention,
            "labels": labels,
        }

    def loss(self, soft: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Mean token cross-entropy of the targets given the soft prompt (L_GEN).

        With gradient checkpointing on, the forward runs in training mode (dropout is off,
        see :func:`augtool.core.inversion.model.enable_checkpointing`), the only mode in
        which HF layers checkpoint; the LM goes back to eval mode afterwards.
        """
        from augtool.core.inversion.model import is_checkpointing

        if not is_checkpointing(self.model):
            return self.model(**self.training_batch(soft, texts)).loss
        self.model.train()
        try:
            return self.model(**self.training_batch(soft, texts), use_cache=False).loss
        finally:
            self.model.eval()

    @torch.inference_mode()
    def generate(
        self,
        soft: torch.Tensor,
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seeds: list[int] | None = None,
        no_repeat_ngram_size: int = 0,
    ) -> list[str]:
        """Decode a batch of soft prompts (greedy by default, or sampled per-row seeded);
        ``no_repeat_ngram_size`` > 0 forbids repeating an n-gram of that size."""
        from transformers import LogitsProcessorList

        from augtool.core.generation.hf_backend import SeededSampler

        prompt = self.prompt_embeddings(soft)
        options: dict[str, Any] = {}
        if temperature > 0:
            sampler = SeededSampler(
                seeds or [0] * len(prompt), temperature, top_p, str(self.device)
            )
            options["logits_processor"] = LogitsProcessorList([sampler])
        output = self.model.generate(
            inputs_embeds=prompt,
            attention_mask=torch.ones(prompt.shape[:2], dtype=torch.long, device=self.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id,
            use_cache=True,
            no_repeat_ngram_size=no_repeat_ngram_size,
            **options,
        )
        texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]


def soft_tokens(adaptor: Adaptor, embeddings: torch.Tensor) -> torch.Tensor:
    """The adaptor's soft tokens ``(B, k, d_llm)`` for sentence embeddings ``(B, d_enc)``."""
    return adaptor(embeddings.float())


def frozen_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of a module's weights (to check that training left them untouched)."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}
