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
        device_map: str | None = None,
        load_in_4bit: bool = False,
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
        self.device_map = device_map
        self.load_in_4bit = load_in_4bit
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
            if self.load_in_4bit:  # quantised weights answer differently: their own cache
                self._identity["quantization"] = "nf4"
        return self._identity

    def check(self) -> None:
        """Validate the model folder cheaply (tokenizer and config); weights load lazily,
        so a fully cached rerun never loads them."""
        from transformers import AutoConfig

        from augtool.core.model_errors import check_safetensors
        from augtool.core.pretrained import plan_load

        plan_load(  # --device/--dtype/--device-map/--load-in-4bit fail before any work
            self.device_spec,
            self.dtype_spec,
            device_map=self.device_map,
            load_in_4bit=self.load_in_4bit,
        )
        self.tokenizer  # noqa: B018 - loads and validates the tokenizer
        with loading("LLM", self.model):
            AutoConfig.from_pretrained(self.source)
            check_safetensors(self.source)  # headers only: a truncated file fails now

    def load(self) -> None:
        """Load the model (and tokenizer) now; loading is otherwise lazy."""
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM

        from augtool.core.pretrained import input_device, load_pretrained, plan_load

        tokenizer = self.tokenizer
        plan = plan_load(
            self.device_spec,
            self.dtype_spec,
            device_map=self.device_map,
            load_in_4bit=self.load_in_4bit,
        )
        with loading("LLM", self.model):
            model = load_pretrained(AutoModelForCausalLM, self.source, plan)
        self.device = input_device(model)
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
        """Sum of log P(option tokens | rendered prompt) for every prompt and option.

        Each prompt is run once (the prompts batched and left-padded) and only its last
        position's vocabulary logits are kept (``logits_to_keep=1``): they score every
        option's first token. The prompts' KV cache is then repeated once per option and a
        second pass runs only the options' tokens (all but the last, right-padded) on top of
        it, with the prompt's mask extended by the options' and positions continuing after
        each row's real prompt length. Vocabulary logits therefore exist only at the options'
        positions (padded to the longest option) and float32 log-probabilities are taken only
        at real option positions, a chunk of rows at a time: memory grows with the options'
        tokens, not with prompt length x vocabulary, and the prompt is not recomputed once
        per option. Options of a single token need no second pass. Models whose forward
        takes no cache or no ``logits_to_keep`` (or returns a cache that cannot be
        repeated) are scored on full ``prompt + option`` sequences instead
        (:meth:`_score_full_sequences`, the previous path).
        """
        self.load()
        option_ids = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
        if any(not ids for ids in option_ids):
            raise ModelError("an option tokenizes to nothing; options must be non-empty text")
        prefixes = [self._encode(self.render(prompt)) for prompt in prompts]
        arguments = _cache_arguments(self._model)
        totals = None
        try:
            if arguments is not None:
                totals = self._score_shared_prompts(prefixes, option_ids, *arguments)
            if totals is None:
                totals = self._score_full_sequences(prefixes, option_ids)
        except torch.OutOfMemoryError as exc:
            raise ModelError(f"LLM {self.model!r}: out of memory; lower --batch-size") from exc
        return [
            [
                OptionScore(float(total), len(ids))
                for total, ids in zip(row, option_ids, strict=True)
            ]
            for row in totals.tolist()
        ]

    def _score_shared_prompts(
        self, prefixes: list[list[int]], option_ids: list[list[int]], cache_arg: str, keep_arg: str
    ) -> torch.Tensor | None:
        """(prompts x options) totals from one prompt pass and one cached option pass; None
        when the model's cache cannot be repeated per option."""
        n_prompts, n_options = len(prefixes), len(option_ids)
        batch = self._left_pad(prefixes)
        mask = batch["attention_mask"]
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        first = torch.tensor([ids[0] for ids in option_ids], device=self.device)
        # Position j of an option's pass predicts its token j + 1; the last token is not fed.
        width = max(len(ids) for ids in option_ids) - 1
        with torch.inference_mode():
            output = self._model(**batch, position_ids=positions, use_cache=True, **{keep_arg: 1})
            last = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
            totals = last[:, first]  # the first option token, predicted by the prompt's end
            if width == 0:
                return totals.cpu()
            cache = _repeat_cache(_output_cache(output), n_options)
            if cache is None:
                return None
            del output, last
            pad = self.tokenizer.pad_token_id
            feed = torch.full((n_options, width), pad, dtype=torch.long)
            targets = torch.zeros((n_options, width), dtype=torch.long)
            real = torch.zeros((n_options, width), dtype=torch.bool)
            for row, ids in enumerate(option_ids):
                feed[row, : len(ids) - 1] = torch.tensor(ids[:-1])
                targets[row, : len(ids) - 1] = torch.tensor(ids[1:])
                real[row, : len(ids) - 1] = True
            # Row p * n_options + o is prompt p with option o (the cache's repeat order).
            feed, targets, real = (
                t.to(self.device).repeat(n_prompts, 1) for t in (feed, targets, real)
            )
            lengths = mask.sum(dim=-1).repeat_interleave(n_options)
            option_positions = lengths[:, None] + torch.arange(width, device=self.device)
            option_mask = torch.cat([mask.repeat_interleave(n_options, dim=0), real.long()], dim=1)
            logits = self._model(
                input_ids=feed,
                attention_mask=option_mask,
                position_ids=option_positions,
                use_cache=True,
                **{cache_arg: cache},
            ).logits
            rest = torch.zeros(real.shape, dtype=torch.float32, device=logits.device)
            rest[real] = _target_log_probs(logits, real, targets)
            totals = totals + rest.sum(dim=-1).view(n_prompts, n_options).to(totals.device)
        return totals.cpu()

    def _score_full_sequences(
        self, prefixes: list[list[int]], option_ids: list[list[int]]
    ) -> torch.Tensor:
        """(prompts x options) totals from ``prompt + option`` sequences, one per pair.

        The fallback for models without a usable cache. Sequences are left-padded, so
        every option ends at the last position: only the last ``longest option + 1``
        positions need vocabulary logits, and only those are computed when the forward
        takes ``logits_to_keep`` (otherwise the full logits are sliced the same way).
        """
        sequences, lengths = [], []
        for prefix in prefixes:
            for ids in option_ids:
                sequences.append(prefix + ids)
                lengths.append(len(ids))
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
        # The option fills the last option_len positions (left padding).
        totals = [
            token_scores[row, token_scores.shape[1] - option_len :].sum()
            for row, option_len in enumerate(lengths)
        ]
        return torch.stack(totals).view(len(prefixes), len(option_ids)).cpu()


#: Rows of vocabulary logits turned into float32 log-probabilities at a time: about
#: 64 MiB per chunk (2**24 floats), whatever the batch, the options and the vocabulary.
_CHUNK_FLOATS = 2**24


def _target_log_probs(
    logits: torch.Tensor, real: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """log P(target) at the ``real`` positions of ``logits`` (rows x positions x vocabulary),
    as float32, in chunks of rows so the float32 copy stays small."""
    vocabulary = logits.shape[-1]
    flat = logits.reshape(-1, vocabulary)
    index = real.reshape(-1).nonzero().squeeze(-1)
    wanted = targets.reshape(-1)[index]
    step = max(1, _CHUNK_FLOATS // vocabulary)
    picked = []
    for start in range(0, len(index), step):
        chunk = torch.log_softmax(flat[index[start : start + step]].float(), dim=-1)
        picked.append(chunk.gather(-1, wanted[start : start + step, None]).squeeze(-1))
    return torch.cat(picked) if picked else torch.zeros(0, device=logits.device)


def _cache_arguments(model: Any) -> tuple[str, str] | None:
    """The names the model's forward gives its KV cache and its logits_to_keep arguments
    (``cache``/``past_key_values``, ``logits_to_keep``/``num_logits_to_keep`` across
    transformers versions), or None when it lacks either."""
    import inspect

    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return None
    cache = next((n for n in ("cache", "past_key_values") if n in parameters), None)
    keep = next((n for n in ("logits_to_keep", "num_logits_to_keep") if n in parameters), None)
    return (cache, keep) if cache and keep else None


def _output_cache(output: Any) -> Any:
    """The KV cache a forward returned (``cache`` in transformers 5, ``past_key_values``
    before)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def _repeat_cache(cache: Any, repeats: int) -> Any:
    """The cache with each batch row repeated ``repeats`` times in place (row ``i`` becomes
    rows ``i * repeats ...``), or None for a cache of an unknown kind or one with layers
    that cannot repeat (e.g. linear-attention states in transformers 5)."""
    if hasattr(cache, "batch_repeat_interleave"):
        try:
            cache.batch_repeat_interleave(repeats)
        except (AttributeError, NotImplementedError):
            return None  # the caller falls back to full sequences and drops this cache
        return cache
    if isinstance(cache, tuple) and all(isinstance(layer, tuple) for layer in cache):
        return tuple(tuple(t.repeat_interleave(repeats, dim=0) for t in layer) for layer in cache)
    return None
