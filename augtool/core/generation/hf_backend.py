"""``hf:`` — a local transformers causal LM.

Batched, left-padded generation with the KV cache (``model.generate``), the tokenizer's
chat template when it has one, ``--device``/``--dtype``. Sampling is seeded *per
request*: a logits processor adds Gumbel noise drawn from a generator seeded by the
request's seed and decoding takes the argmax, which samples exactly from the
(temperature-scaled, top-p-filtered) distribution. A row's sample therefore does not
depend on which other rows share its batch, so resumed and sharded runs agree.
"""

from __future__ import annotations

from typing import Any

import torch

from augtool.core.generation.base import ScoringLLM
from augtool.core.generation.params import (
    Failure,
    GenerationParams,
    OptionScore,
    Prompt,
    as_messages,
    as_text,
)
from augtool.core.hub import loading
from augtool.errors import ModelError


class SeededSampler:
    """Temperature, top-p, then Gumbel-max sampling with one generator per batch row.

    The generators live on the device the logits are on (created with the first step),
    so the noise is drawn there: no vocabulary-sized tensor per row and token is made on
    the host and copied over. A row's draws depend only on its seed, so outputs stay the
    same across batch sizes (on one device type; CPU and CUDA streams differ).
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device: str) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.seeds = [int(s) % (2**63) for s in seeds]
        self.generators: list[torch.Generator] | None = None
        self.device = device

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.temperature <= 0:
            return scores
        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
            drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= self.top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
        if self.generators is None:
            self.generators = [
                torch.Generator(device=logits.device).manual_seed(seed) for seed in self.seeds
            ]
        uniform = torch.stack(
            [
                torch.rand(logits.shape[-1], generator=g, device=logits.device)
                for g in self.generators
            ]
        )
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
        return logits + gumbel


class HFBackend(ScoringLLM):
    """A causal LM from a local folder or the hub, run in-process."""

    scheme = "hf"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 16,
        cache: bool = True,
        cache_dir: str | None = None,
        **_: Any,
    ) -> None:
        from augtool.core.hub import resolve_model_source

        super().__init__(model, cache=cache, cache_dir=cache_dir)
        self.source = resolve_model_source(model, "LLM")
        self.device_spec = device
        self.dtype_spec = dtype
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self.device = ""
        self._identity: dict[str, Any] | None = None

    @classmethod
    def from_loaded(
        cls, name: str, model: Any, tokenizer: Any, device: str, **options: Any
    ) -> HFBackend:
        """A backend around a model already in memory (e.g. invmix's frozen LM), so it is
        not loaded twice."""
        backend = cls(name, **options)
        backend._model, backend._tokenizer, backend.device = model, tokenizer, device
        return backend

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            from pathlib import Path

            from augtool.core.hub import folder_fingerprint, hub_snapshot

            folder = Path(self.source) if Path(self.source).is_dir() else hub_snapshot(self.source)
            content = folder_fingerprint(folder) if folder is not None else self.source
            self._identity = {"backend": self.scheme, "model": self.model, "content": content}
        return self._identity

    def check(self) -> None:
        """Validate the model folder cheaply (tokenizer and config); weights load lazily,
        so a fully cached rerun never loads them."""
        from transformers import AutoConfig

        from augtool.core.model_errors import check_safetensors

        self.tokenizer  # noqa: B018 - loads and validates the tokenizer
        with loading("LLM", self.model):
            AutoConfig.from_pretrained(self.source)
            check_safetensors(self.source)  # headers only: a truncated file fails now

    def load(self) -> None:
        """Load the model (and tokenizer) now; loading is otherwise lazy."""
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM

        from augtool.core.device import resolve_device, resolve_dtype

        tokenizer = self.tokenizer
        self.device = resolve_device(self.device_spec)
        dtype = resolve_dtype(self.dtype_spec, self.device)
        with loading("LLM", self.model):
            model = AutoModelForCausalLM.from_pretrained(self.source)
        model.to(device=self.device, dtype=dtype)
        model.eval()
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        self._model = model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer alone (enough for ``--dry-run`` token counts)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from augtool.core.hub import quiet_transformers

            quiet_transformers()
            with loading("LLM", self.model):
                tokenizer = AutoTokenizer.from_pretrained(self.source, padding_side="left")
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees (chat template applied when there is one)."""
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(
                as_messages(prompt), tokenize=False, add_generation_prompt=True
            )
        return as_text(prompt)

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self._encode(self.render(prompt)))

    def _encode(self, text: str) -> list[int]:
        # A chat template writes its own special tokens; plain prompts get the usual ones.
        return self.tokenizer(text, add_special_tokens=not self.has_chat_template)["input_ids"]

    def _left_pad(self, sequences: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(seq) for seq in sequences)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            if seq:
                ids[row, width - len(seq) :] = torch.tensor(seq)
                mask[row, width - len(seq) :] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    def generate_batch(
        self, prompts: list[Prompt], params: GenerationParams, seeds: list[int]
    ) -> list[str | Failure]:
        from transformers import LogitsProcessorList

        self.load()
        batch = self._left_pad([self._encode(self.render(p)) for p in prompts])
        sampler = SeededSampler(seeds, params.temperature, params.top_p, self.device)
        try:
            with torch.inference_mode():
                output = self._model.generate(
                    **batch,
                    max_new_tokens=params.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    logits_processor=LogitsProcessorList([sampler]),
                    pad_token_id=self.tokenizer.pad_token_id,
                    use_cache=True,
                )
        except torch.OutOfMemoryError as exc:
            raise ModelError(f"LLM {self.model!r}: out of memory; lower --batch-size") from exc
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [text.strip() for text in texts]

    def score_batch(self, prompts: list[Prompt], options: list[str]) -> list[list[OptionScore]]:
        """Sum of log P(option tokens | rendered prompt), one forward pass per prompt batch.

        Sequences are left-padded, so every option ends at the last position: only the
        last ``longest option + 1`` positions need vocabulary logits, and only those are
        computed (``logits_to_keep``), so memory grows with the options' tokens, not with
        prompt length x vocabulary. Models whose forward lacks ``logits_to_keep`` get
        the full logits, sliced the same way.
        """
        self.load()
        option_ids = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
        if any(not ids for ids in option_ids):
            raise ModelError("an option tokenizes to nothing; options must be non-empty text")
        sequences, spans = [], []
        for prompt in prompts:
            prefix = self._encode(self.render(prompt))
            for ids in option_ids:
                sequences.append(prefix + ids)
                spans.append((len(prefix), len(ids)))
        batch = self._left_pad(sequences)
        positions = (batch["attention_mask"].cumsum(dim=-1) - 1).clamp(min=0)
        # The predictors of every option token (the last ``keep`` positions).
        keep = min(max(len(ids) for ids in option_ids) + 1, batch["input_ids"].shape[1])
        with torch.inference_mode():
            try:
                output = self._model(**batch, position_ids=positions, logits_to_keep=keep)
            except TypeError:  # an architecture without logits_to_keep
                output = self._model(**batch, position_ids=positions)
        logits = output.logits[:, -keep:].float()
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = batch["input_ids"][:, -keep + 1 :]
        token_scores = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        scores: list[OptionScore] = []
        for row, (_, option_len) in enumerate(spans):
            # The option fills the last option_len positions (left padding).
            total = token_scores[row, token_scores.shape[1] - option_len :].sum()
            scores.append(OptionScore(float(total), option_len))
        k = len(options)
        return [scores[i * k : (i + 1) * k] for i in range(len(prompts))]
