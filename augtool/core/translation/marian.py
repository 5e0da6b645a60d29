"""MarianMT (or any transformers seq2seq translation model) back-translation.

Batched generation on the GPU when present; model ids (``Helsinki-NLP/opus-mt-en-de``)
or local folders for both directions; beam search, or sampling seeded per row (the same
Gumbel-max sampler as the ``hf:`` LLM backend, so a row's output does not depend on its
batch). Texts longer than ``max_length`` tokens are truncated, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from augtool.core.hub import loading
from augtool.core.translation.base import BackTranslator, Direction


class MarianBackTranslator(BackTranslator):
    """Forward and backward seq2seq models, loaded once."""

    name = "marian"

    def __init__(
        self,
        forward: str,
        backward: str,
        *,
        batch_size: int = 32,
        num_beams: int = 1,
        sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_length: int = 256,
        device: str = "auto",
        dtype: str = "auto",
        warn: Callable[[str], None] | None = None,
    ) -> None:
        from augtool.core.hub import resolve_model_source

        self.names = {"forward": forward, "backward": backward}
        self.sources = {
            key: resolve_model_source(name, "translation model") for key, name in self.names.items()
        }
        self.batch_size = batch_size
        self.num_beams = num_beams
        self.sample = sample
        self.temperature = temperature
        self.top_p = top_p
        self.max_length = max_length
        self.device_spec, self.dtype_spec = device, dtype
        self.warn = warn
        self.truncated = 0
        self._models: dict[str, tuple[Any, Any]] = {}

    def _model(self, direction: Direction) -> tuple[Any, Any]:
        if direction not in self._models:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            from augtool.core.hub import quiet_transformers
            from augtool.core.pretrained import input_device, load_pretrained, plan_load

            quiet_transformers()
            plan = plan_load(self.device_spec, self.dtype_spec)
            source = self.sources[direction]
            with loading("translation model", self.names[direction]):
                tokenizer = AutoTokenizer.from_pretrained(source)
                model = load_pretrained(AutoModelForSeq2SeqLM, source, plan)
            self.device = input_device(model)
            self._models[direction] = (tokenizer, model)
        return self._models[direction]

    def load(self) -> None:
        """Load both models now (fails fast on a bad path)."""
        self._model("forward")
        self._model("backward")

    def translate(self, texts: list[str], direction: Direction, seeds: list[int]) -> list[str]:
        import torch
        from transformers import LogitsProcessorList

        from augtool.core.generation.hf_backend import SeededSampler

        tokenizer, model = self._model(direction)
        lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
        cut = sum(1 for n in lengths if n > self.max_length)
        if cut:
            self.truncated += cut
            if self.warn is not None:
                self.warn(
                    f"{cut} text(s) longer than {self.max_length} tokens were truncated "
                    f"for {self.names[direction]}"
                )
        batch = tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        ).to(self.device)
        options: dict[str, Any] = {"max_new_tokens": self.max_length, "num_beams": self.num_beams}
        if self.sample:
            offset = 0 if direction == "forward" else 1
            sampler = SeededSampler(
                [s + offset for s in seeds], self.temperature, self.top_p, self.device
            )
            options.update(
                num_beams=1, do_sample=False, logits_processor=LogitsProcessorList([sampler])
            )
        with torch.inference_mode():
            output = model.generate(**batch, **options)
        decoded = tokenizer.batch_decode(output, skip_special_tokens=True)
        return [" ".join(text.split()) for text in decoded]

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "forward": self.names["forward"],
            "backward": self.names["backward"],
            "num_beams": self.num_beams,
            "sample": self.sample,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
