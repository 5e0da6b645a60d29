"""LM-mixup GRPO: batched group generation vs an unbatched loop, and TRL steps/s.

GRPO samples ``group`` completions of every prompt. TRL (which ``augtool lmmixup grpo``
uses) repeats each prompt ``group`` times and generates the whole batch in one
``generate`` call. This script measures that against the naive alternative, one
``generate`` call per completion, on the same model in the same run. Generation is the
GRPO step's dominant cost; the "steps/s" below count one group of completions as a step.
It then times real ``GRPOTrainer`` steps through :func:`augtool.methods.lmmixup.training.run_grpo`.

    python benchmarks/lmmixup_grpo.py [--group 8] [--tokens 48] [--hidden 64] [--layers 2]
    python benchmarks/lmmixup_grpo.py --size 0.5b --device cuda   # GPU: ~0.5B random Llama, LoRA
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import offline, save_result

from augtool.methods.lmmixup.schema import mixup_prompt

INPUTS = [
    "Instruction: how reset password??\nOutput: go to sign in page click forgot",
    "Instruction: password reset how\nOutput: forgot password link, email, new password",
    "Instruction: reset my pasword pls\nOutput: use the email link",
]


def build_model(folder: Path, size: str, hidden: int, layers: int) -> Path:
    """A random-weight Llama: tiny (hidden/layers given) or about 0.5B parameters."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from augtool.testing.tiny_llama import build_tiny_llama

    build_tiny_llama(folder, INPUTS, hidden_size=32, layers=1, train_steps=0)
    if size == "0.5b":  # Qwen2.5-0.5B-like shape
        config = LlamaConfig(
            vocab_size=600,
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
        )
    else:
        config = LlamaConfig(
            vocab_size=600,
            hidden_size=hidden,
            intermediate_size=hidden * 4,
            num_hidden_layers=layers,
            num_attention_heads=max(1, hidden // 64),
        )
    base = json.loads((folder / "config.json").read_text())
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config, key, base.get(key))
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def time_generation(model, tokenizer, group: int, tokens: int, rounds: int, device: str):
    text = tokenizer.apply_chat_template(
        mixup_prompt(INPUTS, "instruction"), tokenize=False, add_generation_prompt=True
    )
    encoded = tokenizer(text, return_tensors="pt").to(device)
    options = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True, top_p=1.0)

    def batched() -> None:  # TRL's way: the prompt repeated, one call
        ids = encoded["input_ids"].repeat(group, 1)
        mask = encoded["attention_mask"].repeat(group, 1)
        model.generate(input_ids=ids, attention_mask=mask, **options)

    def looped() -> None:  # one call per completion
        for _ in range(group):
            model.generate(**encoded, **options)

    results = {}
    for name, run in (("batched", batched), ("unbatched loop", looped)):
        run()  # warm-up
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            with torch.inference_mode():
                run()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        results[name] = statistics.median(times)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", choices=("tiny", "0.5b"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--trl-steps", type=int, default=4)
    parser.add_argument(
        "--save",
        default="",
        help="Write the figures to benchmarks/results/<SAVE>.json (by default only print).",
    )
    args = parser.parse_args()
    offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="augtool-lmm-grpo-"))
    folder = build_model(work / "model", args.size, args.hidden, args.layers)
    model = AutoModelForCausalLM.from_pretrained(folder).to(args.device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"random Llama, {params / 1e6:.1f}M parameters, device {args.device}, "
        f"group {args.group}, {args.tokens} new tokens per completion"
    )
    timing = time_generation(model, tokenizer, args.group, args.tokens, args.rounds, args.device)
    for name, seconds in timing.items():
        print(f"{name:16s} {seconds:.3f} s per group = {1 / seconds:.2f} groups/s")
    ratio = timing["unbatched loop"] / timing["batched"]
    print(f"batched / unbatched speed-up: {ratio:.1f}x (target >= 4x)")

    from augtool.methods.lmmixup.config import GRPOTrainConfig
    from augtool.methods.lmmixup.training import run_grpo

    def length(prompts, completions, **kwargs):
        return [min(1.0, len(str(c)) / 200) for c in completions]

    rows = [
        {"id": f"r{i}", "schema": "instruction", "inputs": INPUTS, "target": INPUTS[0]}
        for i in range(args.group * args.trl_steps)
    ]
    config = GRPOTrainConfig(
        max_steps=args.trl_steps,
        group=args.group,
        batch_size=args.group,
        device=args.device,
        max_completion_length=args.tokens,
        logging_steps=1,
        save_steps=10_000,
    )
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run_grpo(
        rows, config, f"hf:{folder}", work / "grpo", reward_funcs=[length], reward_weights=[1.0]
    )
    elapsed = time.perf_counter() - start
    print(
        f"TRL GRPOTrainer (LoRA), {args.trl_steps} steps of one group: "
        f"{args.trl_steps / elapsed:.2f} steps/s including model load and setup"
    )
    peak_gib = None
    if args.device.startswith("cuda"):
        peak_gib = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory {peak_gib:.2f} GiB")
    if args.save:
        figures = {
            "parameters": params,
            "seconds_per_group_batched": timing["batched"],
            "seconds_per_group_unbatched": timing["unbatched loop"],
            "speedup": ratio,
            "target_speedup": 4,
            "trl_steps_per_second": args.trl_steps / elapsed,
            "peak_gpu_gib": peak_gib,
        }
        settings = {k: getattr(args, k) for k in ("group", "tokens", "hidden", "layers")}
        settings.update(rounds=args.rounds, size=args.size, device=args.device)
        save_result(args.save, figures, {**settings, "trl_steps": args.trl_steps})


if __name__ == "__main__":
    main()
