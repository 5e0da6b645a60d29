"""Estimated cost of one ``lmmixup grpo`` step at 0.5B, 1.5B and 7B (Qwen2.5's shapes),
with and without ``--use-vllm``, for docs/lmmixup.md's GPU section.

Estimates, not measurements (no GPU was at hand): arithmetic on each model's configuration
(parameters counted on the ``meta`` device: no memory, no download) for the public
config's step shape (``--group 4``, ``--max-completion-length 2400``) with augtool's
defaults (``--batch-size 8`` completions per device, LoRA r 16 on every linear layer) and
with full fine-tuning (the public code's choice):

- weights in bfloat16; full fine-tuning keeps a reference copy for the KL term (LoRA
  reuses the base weights with the adapter switched off) and 16 bytes per trained
  parameter (float32 weight, gradient and two AdamW moments);
- generation's KV cache, ``2 x layers x kv_heads x head_dim x 2`` bytes per token, for
  every completion of the step at full length (prompt + completion);
- the log-probabilities pass: float32 logits of the completion tokens of one completion
  at a time (TRL's per-device micro-batch of 1 here), and each layer's input kept for the
  backward pass (gradient checkpointing);
- compute: ``2 N`` FLOPs per generated token, ``2 N`` per token for the reference pass,
  and ``6 N`` (full) or ``4 N`` (LoRA: no weight gradients) per token trained;
- decoding is bound by memory bandwidth, not FLOPs: the 8 completions are decoded
  together, so the weights are read once per completion position, 2,400 times a step;
  at an H200's 4.8 TB/s (NVIDIA's specification) that is a floor on generation time.

With ``--use-vllm`` the completions are generated on the vLLM server's GPU: the trainer's
GPU no longer holds the KV cache, and after every optimiser step the trainer sends the
(merged) weights to the server.

    python benchmarks/lmmixup_gpu_estimate.py
"""

from __future__ import annotations

from typing import Any

from _common import save_result

BF16, FP32 = 2, 4
#: Bytes per fully trained parameter: float32 weight, gradient, two AdamW moments.
TRAINED_BYTES = 16
GROUP = 4
COMPLETIONS = 8  # --batch-size: completions per device per step
COMPLETION_TOKENS = 2400
PROMPT_TOKENS = 600  # a group of 2-3 GSM8K-sized inputs and the instruction
LORA_R = 16
#: H200 memory bandwidth, NVIDIA's specification (TB/s): decoding reads every weight once
#: per generated token position, so this bounds generation time from below.
H200_TBPS = 4.8

#: Qwen2.5 configurations (the models' config.json), the public code's model family.
SHAPES: dict[str, dict[str, Any]] = {
    "0.5B": {
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "1.5B": {
        "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
        "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "7B": {
        "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
}  # fmt: skip


def counts(shape: dict[str, Any]) -> dict[str, int]:
    """Total parameters and LoRA r-16 parameters on every decoder linear layer."""
    import torch
    from torch import nn
    from transformers import Qwen2Config, Qwen2ForCausalLM

    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(**shape))
    lora = sum(
        LORA_R * (m.in_features + m.out_features)
        for m in model.model.layers.modules()
        if isinstance(m, nn.Linear)
    )
    return {"total": sum(p.numel() for p in model.parameters()), "lora": lora}


def gib(count: float) -> float:
    return round(count / 2**30, 2)


def estimate(shape: dict[str, Any]) -> dict[str, Any]:
    """Memory (GiB) of the trainer's GPU and compute (TFLOPs) of one GRPO step."""
    n = counts(shape)
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    kv_per_token = 2 * shape["num_hidden_layers"] * shape["num_key_value_heads"] * head_dim * BF16
    tokens = PROMPT_TOKENS + COMPLETION_TOKENS
    kv = kv_per_token * tokens * COMPLETIONS
    logits = COMPLETION_TOKENS * shape["vocab_size"] * FP32
    activations = shape["num_hidden_layers"] * tokens * shape["hidden_size"] * BF16
    weights = n["total"] * BF16
    generated = COMPLETIONS * COMPLETION_TOKENS
    trained = COMPLETIONS * COMPLETION_TOKENS
    out: dict[str, Any] = {"parameters": n["total"], "lora_parameters": n["lora"]}
    for mode, optimiser, reference, per_token in (
        ("lora", n["lora"] * TRAINED_BYTES, 0, 4),
        ("full", n["total"] * (TRAINED_BYTES - BF16), weights, 6),
    ):
        common = weights + reference + optimiser + logits + activations
        out[mode] = {
            "weights_gib": gib(weights),
            "reference_gib": gib(reference),
            "optimiser_gib": gib(optimiser),
            "kv_cache_gib": gib(kv),
            "logprob_pass_gib": gib(logits + activations),
            "trainer_gpu_gib": gib(common + kv),
            "trainer_gpu_with_vllm_gib": gib(common),
            "vllm_sync_gib_per_step": gib(weights),
            "decode_floor_s_h200": round(COMPLETION_TOKENS * weights / (H200_TBPS * 1e12), 2),
            "generation_tflops": round(2 * n["total"] * generated / 1e12, 1),
            "training_tflops": round(
                (2 + per_token) * n["total"] * (trained + COMPLETIONS * PROMPT_TOKENS) / 1e12, 1
            ),
        }
    return out


def main() -> None:
    figures = {name: estimate(shape) for name, shape in SHAPES.items()}
    for name, entry in figures.items():
        print(name, entry["lora"]["trainer_gpu_gib"], entry["full"]["trainer_gpu_gib"])
    save_result(
        "lmmixup_gpu_estimate",
        figures,
        {
            "kind": "estimate (arithmetic on the configuration; no GPU run)",
            "group": GROUP,
            "completions_per_step": COMPLETIONS,
            "completion_tokens": COMPLETION_TOKENS,
            "prompt_tokens": PROMPT_TOKENS,
            "lora_r": LORA_R,
            "h200_bandwidth_tbps": H200_TBPS,
            "models": "Qwen2.5-0.5B/1.5B/7B shapes (Qwen2ForCausalLM on the meta device)",
        },
    )


if __name__ == "__main__":
    main()
