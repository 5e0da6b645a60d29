"""Estimated GPU memory of the 8B setting (Llama-3-8B's shapes, bfloat16) for docs/gpu.md.

Estimates, not measurements: arithmetic on the model's configuration, for the workload of
``benchmarks/gpu_suite.py`` (which measures the same jobs on a GPU):

- parameters counted on the ``meta`` device (no memory, no download), so the weights in
  bfloat16 are exact; 4-bit NF4 (``--load-in-4bit``: bitsandbytes, double quantisation)
  stores the decoder's linear layers in 4 bits plus one 8-bit scale per 64 weights and
  one float32 scale per 256 blocks, and keeps embeddings, ``lm_head`` and norms in bf16;
- adaptor training (frozen LM, gradient into the soft prompt only): the tensors autograd
  keeps for the backward pass, per token and layer (checked against a real count in
  tests/test_gpu_suite.py), plus the vocabulary logits and their gradient at the loss;
  with ``--gradient-checkpointing`` each layer keeps only its input, and one layer's
  activations are rebuilt at a time;
- log-likelihood labelling: the KV cache of every (prompt, label) pair, the option
  positions' logits, and one layer's working memory;
- generation: the KV cache, ``2 x layers x kv_heads x head_dim x tokens x batch x 2``
  bytes, and one layer's working memory during the prompt pass.

    python benchmarks/gpu_memory_estimate.py
"""

from __future__ import annotations

from typing import Any

from _common import save_result
from gpu_suite import (
    ADAPTOR_BATCH,
    GEN_BATCH,
    GEN_NEW_TOKENS,
    GEN_PROMPT_TOKENS,
    LLAMA3_8B,
    LOGLIK_BATCH,
    LOGLIK_LABELS,
    LOGLIK_PROMPT_TOKENS,
    MAX_TARGET_TOKENS,
)

BF16 = 2  # bytes
FP32 = 4
#: The invmix prompt around the soft token with Llama-3's tokenizer: <|begin_of_text|>,
#: "Given the embedding ", one soft token, ", generate the original sentence: ".
ADAPTOR_PROMPT_TOKENS = 13
#: The longest of the 14 labels in Llama-3 tokens ("Mean of transportation").
LOGLIK_OPTION_TOKENS = 3
#: NF4 with double quantisation: 4 bits, an 8-bit absmax per block of 64, a float32
#: absmax per 256 blocks (bytes per weight).
NF4_BYTES = 0.5 + 1 / 64 + FP32 / (64 * 256)


def parameter_counts(shape: dict[str, Any]) -> dict[str, int]:
    """Parameters of a Llama of ``shape`` by kind, counted on the meta device."""
    import torch
    from torch import nn
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**shape))
    linear = sum(
        module.weight.numel()
        for module in model.model.layers.modules()
        if isinstance(module, nn.Linear)
    )
    total = sum(p.numel() for p in model.parameters())
    embedding = model.model.embed_tokens.weight.numel()
    head = 0 if shape.get("tie_word_embeddings") else model.lm_head.weight.numel()
    return {
        "total": total,
        "decoder_linear": linear,
        "embedding": embedding,
        "lm_head": head,
        "other": total - linear - embedding - head,
    }


def head_dim(shape: dict[str, Any]) -> int:
    return shape["hidden_size"] // shape["num_attention_heads"]


def saved_bytes_per_token_layer(shape: dict[str, Any], dtype_bytes: int = BF16) -> int:
    """What autograd keeps per token in one decoder layer when only the input needs a
    gradient (frozen weights keep no inputs of their linear layers): the MLP's gate, up
    and SiLU(gate); both RMSNorms' float32 inputs and their reciprocal RMS; attention's
    query, output, key, value (key and value at the KV heads' width) and the float32
    log-sum-exp per head."""
    h, i = shape["hidden_size"], shape["intermediate_size"]
    kv = shape["num_key_value_heads"] * head_dim(shape)
    mlp = 3 * i * dtype_bytes
    norms = 2 * (h * FP32 + FP32)
    attention = (2 * h + 2 * kv) * dtype_bytes + shape["num_attention_heads"] * FP32
    return mlp + norms + attention


def saved_bytes(shape: dict[str, Any], batch: int, tokens: int, dtype_bytes: int = BF16) -> int:
    """Everything autograd keeps for a ``(batch, tokens)`` loss through the whole LM:
    the layers, the final norm, the rotary tables, the float32 log-softmax of the loss
    and the labels."""
    n = batch * tokens
    layers = shape["num_hidden_layers"] * n * saved_bytes_per_token_layer(shape, dtype_bytes)
    final_norm = n * (shape["hidden_size"] * FP32 + FP32)
    rotary = 2 * tokens * head_dim(shape) * dtype_bytes
    loss = n * shape["vocab_size"] * FP32 + n * 8
    return layers + final_norm + rotary + loss


def kv_bytes_per_token(shape: dict[str, Any], dtype_bytes: int = BF16) -> int:
    """Keys and values of one token in every layer."""
    return (
        2 * shape["num_hidden_layers"] * shape["num_key_value_heads"] * head_dim(shape)
    ) * dtype_bytes


def layer_working_bytes(shape: dict[str, Any], tokens: int, dtype_bytes: int = BF16) -> int:
    """One layer's transient tensors for ``tokens`` tokens in inference (gate, up, their
    product; the hidden state, its norm, the query and the attention output)."""
    return tokens * (3 * shape["intermediate_size"] + 4 * shape["hidden_size"]) * dtype_bytes


def gib(count: float) -> float:
    return round(count / 2**30, 2)


def estimate(shape: dict[str, Any] = LLAMA3_8B) -> dict[str, Any]:
    """The docs table's figures (GiB) for ``shape``."""
    counts = parameter_counts(shape)
    vocab = shape["vocab_size"]
    weights = counts["total"] * BF16
    quantised = (
        counts["decoder_linear"] * NF4_BYTES + (counts["total"] - counts["decoder_linear"]) * BF16
    )

    # Adaptor training: the widest batch (targets at --max-target-tokens, plus EOS).
    row = ADAPTOR_PROMPT_TOKENS + MAX_TARGET_TOKENS + 1
    n = ADAPTOR_BATCH * row
    kept = saved_bytes(shape, ADAPTOR_BATCH, row) - n * vocab * FP32
    # At the loss: bf16 logits, their float32 copy and log-softmax; in the backward the
    # log-softmax is still held while its gradient and the logits' gradient are made.
    logits = n * vocab * (BF16 + FP32 + FP32 + FP32)
    checkpointed = (
        shape["num_hidden_layers"] * n * shape["hidden_size"] * BF16
        + n * saved_bytes_per_token_layer(shape)
        + n * (shape["hidden_size"] * FP32 + FP32)
    )

    # Log-likelihood labelling: every (prompt, label) pair's cache, the option positions'
    # logits (bf16, and float32 log-softmax), the prompt pass's working memory.
    pairs = LOGLIK_BATCH * len(LOGLIK_LABELS)
    width = LOGLIK_OPTION_TOKENS - 1
    loglik_cache = pairs * (LOGLIK_PROMPT_TOKENS + width) * kv_bytes_per_token(shape)
    loglik_logits = pairs * width * vocab * (BF16 + FP32)
    loglik_work = layer_working_bytes(shape, LOGLIK_BATCH * LOGLIK_PROMPT_TOKENS)

    # Generation: the cache at its longest, the prompt pass's working memory, and the
    # sampler's float32 vocabulary rows (logits, scaled, noise, sum).
    gen_cache = GEN_BATCH * (GEN_PROMPT_TOKENS + GEN_NEW_TOKENS) * kv_bytes_per_token(shape)
    gen_work = layer_working_bytes(shape, GEN_BATCH * GEN_PROMPT_TOKENS)
    gen_sampler = 4 * GEN_BATCH * vocab * FP32

    def job(**parts: float) -> dict[str, float]:
        figures = {f"{name}_gib": gib(value) for name, value in parts.items()}
        above = sum(parts.values())
        return {**figures, "above_weights_gib": gib(above), "peak_gib": gib(weights + above)}

    return {
        "parameters": counts,
        "weights_bf16_gib": gib(weights),
        "weights_nf4_gib": gib(quantised),
        "adaptor_training": {
            "tokens": n,
            **job(activations=kept, logits=logits),
        },
        "adaptor_training_checkpointed": {
            "tokens": n,
            **job(activations=checkpointed, logits=logits),
        },
        "loglik_labelling": {
            "pairs": pairs,
            **job(kv_cache=loglik_cache, logits=loglik_logits, working=loglik_work),
        },
        "generation": {
            "tokens": GEN_BATCH * (GEN_PROMPT_TOKENS + GEN_NEW_TOKENS),
            **job(kv_cache=gen_cache, working=gen_work + gen_sampler),
        },
    }


def settings() -> dict[str, Any]:
    return {
        "kind": "estimate (arithmetic on the configuration; nothing was run on a GPU)",
        "shape": LLAMA3_8B,
        "dtype": "bfloat16",
        "adaptor": {
            "batch": ADAPTOR_BATCH,
            "prompt_tokens": ADAPTOR_PROMPT_TOKENS,
            "target_tokens": MAX_TARGET_TOKENS + 1,
        },
        "loglik": {
            "labels": len(LOGLIK_LABELS),
            "prompts_per_batch": LOGLIK_BATCH,
            "prompt_tokens": LOGLIK_PROMPT_TOKENS,
            "longest_label_tokens": LOGLIK_OPTION_TOKENS,
        },
        "generation": {
            "batch": GEN_BATCH,
            "prompt_tokens": GEN_PROMPT_TOKENS,
            "new_tokens": GEN_NEW_TOKENS,
        },
        "nf4_bytes_per_weight": round(NF4_BYTES, 6),
    }


def main() -> None:
    figures = estimate()
    for name, value in figures.items():
        print(f"{name}: {value}")
    save_result("gpu_memory_estimate", figures, settings())


if __name__ == "__main__":
    main()
