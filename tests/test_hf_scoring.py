"""hf: option scoring on a tiny Llama: the shared-prompt KV-cache path against a naive
full-sequence computation, at several batch sizes; the prompt is run once, not once per
option; models without cache arguments fall back to full sequences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from augtool.core.generation import load_llm
from augtool.core.generation.hf_backend import HFBackend, _cache_arguments, _repeat_cache
from augtool.errors import ModelError

PROMPTS = [
    "hi there",
    "Where is my parcel?",
    [{"role": "user", "content": "My card was charged twice"}],
    "how do I change my email address on the account page " * 6,
]
# Token lengths differ (one token up to several), so option padding is exercised.
OPTIONS = ["a", "billing", "account settings", "technical problem with the mobile app"]


def backend(tiny_llama: Path) -> HFBackend:
    llm = load_llm(f"hf:{tiny_llama}", cache=False, device="cpu")
    assert isinstance(llm, HFBackend)
    llm.load()
    return llm


def naive_scores(llm: HFBackend, options: list[str]) -> list[list[float]]:
    """Each prompt + option alone through the model, full log_softmax, summed over the
    option's tokens."""
    model = llm._model
    rows = []
    for prompt in PROMPTS:
        prefix = llm._encode(llm.render(prompt))
        row = []
        for option in options:
            ids = llm.tokenizer(option, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([prefix + ids])).logits[0]
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            row.append(sum(float(log_probs[len(prefix) + i - 1, t]) for i, t in enumerate(ids)))
        rows.append(row)
    return rows


def option_lengths(llm: HFBackend, options: list[str]) -> list[int]:
    return [len(llm.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in options]


def assert_close(scores: list[list[Any]], expected: list[list[float]], lengths: list[int]) -> None:
    for row, want in zip(scores, expected, strict=True):
        for score, value, n in zip(row, want, lengths, strict=True):
            assert abs(score.logprob - value) < 1e-4
            assert score.tokens == n


def test_cached_scores_equal_the_naive_computation_at_every_batch_size(tiny_llama: Path) -> None:
    llm = backend(tiny_llama)
    lengths = option_lengths(llm, OPTIONS)
    assert lengths[0] == 1 and len(set(lengths)) >= 3
    prompt_lengths = {len(llm._encode(llm.render(p))) for p in PROMPTS}
    assert len(prompt_lengths) >= 3
    expected = naive_scores(llm, OPTIONS)
    for batch_size in (1, 3, len(PROMPTS)):
        llm.batch_size = batch_size
        assert_close(llm.score(PROMPTS, OPTIONS), expected, lengths)


def test_prompt_runs_once_and_options_run_on_its_cache(tiny_llama: Path) -> None:
    llm = backend(tiny_llama)
    arguments = _cache_arguments(llm._model)
    assert arguments is not None
    cache_arg = arguments[0]
    calls: list[dict[str, Any]] = []

    def record(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        cache = kwargs.get(cache_arg)
        calls.append(
            {
                "shape": tuple(kwargs["input_ids"].shape),
                "cached": 0 if cache is None else cache.get_seq_length(),
            }
        )

    hook = llm._model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        llm.score(PROMPTS, OPTIONS)
    finally:
        hook.remove()
    width = max(len(llm._encode(llm.render(p))) for p in PROMPTS)
    longest = max(option_lengths(llm, OPTIONS))
    # One pass over the prompts, then one over every (prompt, option) pair's option tokens
    # (all but the last) on the prompt cache: never the prompt once per option.
    assert calls == [
        {"shape": (len(PROMPTS), width), "cached": 0},
        {"shape": (len(PROMPTS) * len(OPTIONS), longest - 1), "cached": width},
    ]


def test_single_token_options_need_only_the_prompt_pass(tiny_llama: Path) -> None:
    llm = backend(tiny_llama)
    options = ["a", "b", "c"]
    assert option_lengths(llm, options) == [1, 1, 1]
    kept: list[int] = []
    hook = llm._model.register_forward_hook(lambda m, a, out: kept.append(out.logits.shape[1]))
    try:
        scores = llm.score(PROMPTS, options)
    finally:
        hook.remove()
    assert kept == [1]  # one pass, vocabulary logits at the last position only
    assert_close(scores, naive_scores(llm, options), [1, 1, 1])


class PlainForward(torch.nn.Module):
    """A causal LM whose forward takes neither a cache nor ``logits_to_keep``."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> Any:
        return self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        )


def test_models_without_cache_arguments_fall_back_to_full_sequences(tiny_llama: Path) -> None:
    llm = backend(tiny_llama)
    expected = naive_scores(llm, OPTIONS)
    plain = PlainForward(llm._model).eval()
    assert _cache_arguments(plain) is None
    fallback = HFBackend.from_loaded(str(tiny_llama), plain, llm.tokenizer, "cpu", cache=False)
    rows: list[int] = []
    hook = plain.register_forward_hook(lambda m, a, out: rows.append(out.logits.shape[0]))
    try:
        scores = fallback.score(PROMPTS, OPTIONS)
    finally:
        hook.remove()
    assert rows == [len(PROMPTS) * len(OPTIONS)]  # one full sequence per pair
    assert_close(scores, expected, option_lengths(llm, OPTIONS))


def test_empty_option_is_a_model_error(tiny_llama: Path) -> None:
    llm = backend(tiny_llama)
    with pytest.raises(ModelError, match="tokenizes to nothing"):
        llm.score(PROMPTS[:1], ["billing", ""])


def test_legacy_tuple_caches_repeat_row_by_row() -> None:
    keys = torch.arange(2.0).view(2, 1, 1, 1)
    repeated = _repeat_cache(((keys, keys + 10),), 3)
    assert repeated[0][0].flatten().tolist() == [0, 0, 0, 1, 1, 1]
    assert repeated[0][1].flatten().tolist() == [10, 10, 10, 11, 11, 11]
    assert _repeat_cache(object(), 2) is None


class UnrepeatableCache:
    """Like a transformers 5 cache holding a linear-attention layer: no per-layer repeat."""

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise AttributeError(
            "'LinearAttentionLayer' object has no attribute 'batch_repeat_interleave'"
        )


def test_a_cache_that_cannot_repeat_falls_back_to_full_sequences(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from augtool.core.generation import hf_backend

    llm = backend(tiny_llama)
    expected = naive_scores(llm, OPTIONS)
    assert _repeat_cache(UnrepeatableCache(), 2) is None
    monkeypatch.setattr(hf_backend, "_output_cache", lambda output: UnrepeatableCache())
    assert_close(llm.score(PROMPTS, OPTIONS), expected, option_lengths(llm, OPTIONS))


def test_log_probabilities_in_small_chunks_give_the_same_scores(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from augtool.core.generation import hf_backend

    llm = backend(tiny_llama)
    whole = llm.score(PROMPTS, OPTIONS)
    # Three vocabulary rows per chunk: many chunks, and a last one that is not full.
    monkeypatch.setattr(hf_backend, "_CHUNK_FLOATS", 3 * len(llm.tokenizer))
    chunked = llm.score(PROMPTS, OPTIONS)
    assert [[s.logprob for s in row] for row in chunked] == [
        [s.logprob for s in row] for row in whole
    ]
