"""LM-mixup learning, offline: build -> SFT -> GRPO on GSM8K with a tiny Llama trained here.

The pipeline (all seeded, CPU):

1. GSM8K train and test rows (``qa`` schema) short enough for a tiny model
   (question + answer <= ``--max-words`` words); ``--train-rows`` clean training samples and
   ``--heldout`` held-out test samples, drawn with the seed.
2. A tiny chat Llama (``augtool.testing.tiny_llama``) whose BPE tokenizer and weights are
   trained as a plain LM on the GSM8K training texts and the fusion instruction: the
   "untrained" model (it has never seen a group -> sample pair).
3. ``augtool lmmixup build`` on the training rows and, separately, on the held-out rows.
4. ``augtool lmmixup sft`` (full fine-tuning) on the training mixture.
5. ``augtool lmmixup grpo`` (full fine-tuning, ``--quality cosine``: there is no LLM judge
   offline, hence no rated bank; ``--align-threshold auto``; weights 0.5/0.4/0.1).
6. The three models on the same held-out groups, with the prompt the trainers use: 4
   completions per group sampled at temperature 1.0 (GRPO's sampling) and one greedy
   completion, scored by the same reward code (``rewards.score_completions``) with the
   GRPO run's calibrated alignment threshold and a cosine quality bank of the training
   targets. Paired GRPO - SFT comparison over the groups (Wilcoxon signed-rank).
7. The SFT loss and GRPO reward curves as PNGs, and the figures in
   ``benchmarks/results/lmmixup_gsm8k.json`` (``--save``).

    python benchmarks/lmmixup_gsm8k.py                       # the documented run
    python benchmarks/lmmixup_gsm8k.py --toy --save ''       # a minute-long smoke test
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, dataset, offline, save_result

WEIGHTS = {"quality": 0.5, "alignment": 0.4, "format": 0.1}
COMPONENTS = ("total", "quality", "alignment", "format")
MODELS = ("untrained", "sft", "grpo")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


CALCULATOR = re.compile(r"<<[^<>]*>>")


def short_rows(
    path: Path, max_words: int, count: int, seed: int, strip: bool
) -> list[dict[str, Any]]:
    """``count`` rows (seeded draw) whose question + answer have at most ``max_words``
    words; with ``strip``, the answers' calculator annotations (``<<48/2=24>>``) are
    removed first, as in GSM8K's usual preprocessing."""
    rows = []
    for r in read_rows(path):
        answer = CALCULATOR.sub("", r["answer"]) if strip else r["answer"]
        if len(r["question"].split()) + len(answer.split()) <= max_words:
            rows.append({"id": r["id"], "question": r["question"], "answer": answer})
    if len(rows) < count:
        raise SystemExit(f"{path}: only {len(rows)} rows of <= {max_words} words, {count} asked")
    random.Random(seed).shuffle(rows)
    return rows[:count]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def augtool(*args: str) -> None:
    """Run ``augtool`` in a subprocess, as a user would; its output goes to our log."""
    command = [sys.executable, "-m", "augtool", *args]
    log("$ augtool " + " ".join(args))
    subprocess.run(command, check=True, cwd=ROOT)


def meta_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "meta.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------- evaluation


def generate(model, tokenizer, prompts: list[str], *, samples: int, greedy: bool, tokens: int,
             batch: int, seed: int) -> list[list[str]]:  # fmt: skip
    """Per prompt, ``samples`` completions (temperature 1.0, no top-k/top-p, as TRL
    samples in GRPO) or one greedy completion; decoded without special tokens, as TRL does."""
    import torch

    tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    out: list[list[str]] = []
    options: dict[str, Any] = {
        "max_new_tokens": tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if greedy:
        options.update(do_sample=False, num_return_sequences=1)
    else:
        options.update(
            do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=samples
        )
    n = 1 if greedy else samples
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        encoded = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(**encoded, **options)
        texts = tokenizer.batch_decode(
            ids[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True
        )
        out.extend(texts[i * n : (i + 1) * n] for i in range(len(chunk)))
    return out


def summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4)}


def evaluate(
    folder: Path, rows: list[dict[str, Any]], score: Any, args: argparse.Namespace, tokens: int
) -> dict[str, Any]:
    """Sampled and greedy rewards of one model on the held-out groups."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from augtool.methods.lmmixup.build import mixture_prompt

    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompts = [
        tokenizer.apply_chat_template(mixture_prompt(r), tokenize=False, add_generation_prompt=True)
        for r in rows
    ]
    start = time.perf_counter()
    sampled = generate(
        model, tokenizer, prompts, samples=args.eval_samples, greedy=False, tokens=tokens,
        batch=args.eval_batch, seed=args.seed,
    )  # fmt: skip
    greedy = generate(
        model, tokenizer, prompts, samples=1, greedy=True, tokens=tokens,
        batch=args.eval_batch * args.eval_samples, seed=args.seed,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {"generation_seconds": round(seconds, 1)}
    per_group: dict[str, list[float]] = {}
    for mode, outputs in (("sampled", sampled), ("greedy", greedy)):
        flat = [text for group in outputs for text in group]
        owners = [i for i, group in enumerate(outputs) for _ in group]
        scores = score(flat, owners)
        block: dict[str, Any] = {}
        for name in COMPONENTS:
            values = np.asarray(scores[name], dtype=float)
            groups = np.array([values[[j for j, o in enumerate(owners) if o == i]].mean()
                               for i in range(len(rows))])  # fmt: skip
            block[name] = summary(groups)
            if mode == "sampled":
                per_group[name] = [round(float(v), 4) for v in groups]
        lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in flat]
        block["mean_completion_tokens"] = round(float(np.mean(lengths)), 1)
        block["examples"] = [flat[j] for j in range(0, len(flat), max(1, len(flat) // 3))][:3]
        result[mode] = block
    result["per_group_sampled"] = per_group
    log(
        f"{folder.name}: sampled total {result['sampled']['total']['mean']:.4f} "
        f"(quality {result['sampled']['quality']['mean']:.3f}, alignment "
        f"{result['sampled']['alignment']['mean']:.3f}, format "
        f"{result['sampled']['format']['mean']:.3f}), greedy total "
        f"{result['greedy']['total']['mean']:.4f}, {seconds:.0f} s"
    )
    return result


# ---------------------------------------------------------------------- curves


def moving_average(values: list[float], window: int) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if len(array) < window:
        return array
    kernel = np.ones(window) / window
    head = [array[: i + 1].mean() for i in range(window - 1)]
    return np.concatenate([head, np.convolve(array, kernel, mode="valid")])


def plot_curves(sft_curve: dict[str, list], grpo_curve: dict[str, list], window: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(sft_curve["step"], sft_curve["loss"], color="tab:blue", lw=1)
    ax.set_xlabel("SFT step")
    ax.set_ylabel("training loss (completion tokens)")
    ax.set_title("LM-mixup SFT on GSM8K, tiny Llama")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = img / "lmmixup-gsm8k-sft.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(str(path.relative_to(ROOT)))

    fig, axes = plt.subplots(2, 2, figsize=(8, 5), sharex=True)
    names = [("reward", "total reward (weighted)"), ("quality", "quality (cosine, w 0.5)"),
             ("alignment", "alignment (w 0.4)"), ("format", "format (w 0.1)")]  # fmt: skip
    for ax, (key, title) in zip(axes.flat, names, strict=True):
        steps, values = grpo_curve["step"], grpo_curve[key]
        ax.plot(steps, values, color="tab:gray", lw=0.6, alpha=0.6, label="per step")
        ax.plot(steps, moving_average(values, window), color="tab:red", lw=1.5,
                label=f"moving average ({window})")  # fmt: skip
        ax.set_title(title, fontsize=9)
        finite = [v for v in values if v == v]
        ax.set_ylim(-0.02, max(0.1, 1.1 * max(finite, default=0.0)))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("GRPO step")
    fig.suptitle("LM-mixup GRPO on GSM8K: mean reward of the sampled completions", fontsize=10)
    fig.tight_layout()
    path = img / "lmmixup-gsm8k-grpo.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(str(path.relative_to(ROOT)))
    return paths


def curves(sft_meta: dict[str, Any], grpo_meta: dict[str, Any]) -> tuple[dict, dict]:
    sft = [h for h in sft_meta["history"] if "loss" in h]
    grpo = [h for h in grpo_meta["history"] if "reward" in h]
    sft_curve = {"step": [h["step"] for h in sft], "loss": [round(h["loss"], 4) for h in sft]}
    grpo_curve: dict[str, list] = {"step": [h["step"] for h in grpo]}
    grpo_curve["reward"] = [round(h["reward"], 4) for h in grpo]
    for name in ("quality", "alignment", "format"):
        grpo_curve[name] = [round(h.get(f"rewards/{name}/mean", float("nan")), 4) for h in grpo]
    for key in ("kl", "completions/mean_length", "reward_std"):
        grpo_curve[key] = [round(h.get(key, float("nan")), 4) for h in grpo]
    return sft_curve, grpo_curve


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser()
    add = parser.add_argument
    add("--work", type=Path, default=Path("/work/runs/lmmixup-gsm8k"), help="Scratch folder.")
    add("--train-rows", type=int, default=600)
    add("--heldout", type=int, default=200)
    add("--max-words", type=int, default=64, help="Longest question + answer, in words.")
    add("--keep-calculator", action="store_true", help="Keep the <<a*b=c>> annotations.")
    add("--hidden", type=int, default=192)
    add("--layers", type=int, default=3)
    add("--vocab", type=int, default=2000)
    add("--lm-steps", type=int, default=600)
    add("--degrade", default="noise,drop,truncation,redundancy")
    add("--group-size", default="2:3")
    add("--sft-lr", type=float, default=2e-3)
    add("--sft-epochs", type=float, default=5.0)
    add("--sft-batch", type=int, default=8)
    add("--sft-max-steps", type=int, default=0)
    add("--grpo-lr", type=float, default=1e-4)
    add("--grpo-steps", type=int, default=300)
    add("--grpo-batch", type=int, default=8)
    add("--group", type=int, default=4)
    add("--beta", type=float, default=0.01)
    add("--eval-samples", type=int, default=4)
    add("--eval-batch", type=int, default=16, help="Prompts per sampling batch.")
    add("--threads", type=int, default=2)
    add("--seed", type=int, default=0)
    add("--window", type=int, default=10, help="Moving-average window of the GRPO plot.")
    add("--toy", action="store_true", help="Tiny sizes, to shake out errors.")
    add("--save", default="lmmixup_gsm8k", help="Artefact name ('' to only print).")
    args = parser.parse_args()
    if args.toy:
        args.train_rows, args.heldout, args.lm_steps = 40, 20, 20
        args.hidden, args.layers, args.vocab = 64, 2, 800
        args.sft_max_steps, args.grpo_steps = 6, 4
    offline()
    import torch

    torch.set_num_threads(args.threads)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.perf_counter() - since, 1)
        log(f"{name}: {timings[name]:.0f} s")
        return time.perf_counter()

    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t = time.perf_counter()

    # 1. data
    strip = not args.keep_calculator
    train = short_rows(
        dataset("gsm8k", "train.jsonl"), args.max_words, args.train_rows, args.seed, strip
    )
    heldout = short_rows(
        dataset("gsm8k", "test.jsonl"), args.max_words, args.heldout, args.seed, strip
    )
    write_jsonl(work / "train.jsonl", train)
    write_jsonl(work / "heldout.jsonl", heldout)
    log(f"{len(train)} training and {len(heldout)} held-out rows of <= {args.max_words} words")

    # 2. the tiny model: tokenizer + LM on GSM8K texts and the fusion instruction
    from augtool.methods.lmmixup.schema import mixup_prompt, render_fields, wrap_answer
    from augtool.testing.tiny_llama import build_tiny_llama

    samples = [render_fields("qa", {"question": r["question"], "answer": r["answer"]})
               for r in train]  # fmt: skip
    instruction = mixup_prompt(["x"], "qa")
    texts = samples + [m["content"] for m in instruction] * 20
    base = work / "untrained"
    build_tiny_llama(
        base, texts, hidden_size=args.hidden, layers=args.layers, vocab_size=args.vocab,
        train_steps=args.lm_steps, seed=args.seed,
    )  # fmt: skip
    t = lap("tiny_lm_seconds", t)

    # 3. mixtures
    common = ["--degrade", args.degrade, "--group-size", args.group_size, "--seed", str(args.seed)]
    augtool("lmmixup", "build", str(work / "train.jsonl"), "-o", str(work / "mixture.jsonl"),
            *common, "--overwrite")  # fmt: skip
    augtool("lmmixup", "build", str(work / "heldout.jsonl"), "-o",
            str(work / "heldout-mixture.jsonl"), *common, "--overwrite")  # fmt: skip
    mixture = read_rows(work / "mixture.jsonl")
    groups = read_rows(work / "heldout-mixture.jsonl")
    t = lap("build_seconds", t)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    target_tokens = [
        len(tokenizer(wrap_answer(r["target"]))["input_ids"]) for r in mixture + groups
    ]
    completion_tokens = max(target_tokens) + 8
    prompt_tokens = [
        len(tokenizer(tokenizer.apply_chat_template(mixup_prompt(r["inputs"], "qa"),
            tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"])
        for r in mixture + groups
    ]  # fmt: skip
    max_length = max(p + c for p, c in zip(prompt_tokens, target_tokens, strict=True)) + 8
    log(
        f"targets: up to {max(target_tokens)} tokens (--max-completion-length "
        f"{completion_tokens}); prompts: median {int(np.median(prompt_tokens))}, max "
        f"{max(prompt_tokens)} tokens; --max-length {max_length}"
    )

    # 4. SFT
    sft_dir, grpo_dir = work / "sft", work / "grpo"
    train_common = ["--no-lora", "--device", "cpu", "--seed", str(args.seed), "--logging-steps",
                    "1", "--save-steps", "100000"]  # fmt: skip
    sft_options = ["--lr", str(args.sft_lr), "--batch-size", str(args.sft_batch),
                   "--max-length", str(max_length), "--epochs", str(args.sft_epochs)]  # fmt: skip
    if args.sft_max_steps:
        sft_options += ["--max-steps", str(args.sft_max_steps)]
    augtool("lmmixup", "sft", str(work / "mixture.jsonl"), "--model", f"hf:{base}", "-o",
            str(sft_dir), *train_common, *sft_options)  # fmt: skip
    t = lap("sft_seconds", t)

    # 5. GRPO
    grpo_options = [
        "--quality", "cosine", "--align-threshold", "auto", "--reward",
        ",".join(f"{k}={v}" for k, v in WEIGHTS.items()), "--group", str(args.group),
        "--batch-size", str(args.grpo_batch), "--max-completion-length", str(completion_tokens),
        "--temperature", "1.0", "--beta", str(args.beta), "--lr", str(args.grpo_lr),
        "--max-steps", str(args.grpo_steps),
    ]  # fmt: skip
    augtool("lmmixup", "grpo", str(work / "mixture.jsonl"), "--model", str(sft_dir), "-o",
            str(grpo_dir), *train_common, *grpo_options)  # fmt: skip
    t = lap("grpo_seconds", t)
    sft_meta, grpo_meta = meta_of(sft_dir), meta_of(grpo_dir)
    described = grpo_meta["rewards"]
    threshold = float(described["alignment"]["threshold"])
    calibration = described["alignment"]["calibration"]
    log(f"alignment threshold {threshold} (calibration: {json.dumps(calibration)})")

    # 6. evaluation with the training reward code
    from augtool.core.encoders import load_encoder
    from augtool.core.hub import DEFAULT_ENCODER
    from augtool.methods.lmmixup.rewards import AlignmentScorer, CosineQuality, score_completions

    encoder = load_encoder(DEFAULT_ENCODER, device="cpu")
    alignment = AlignmentScorer(encoder, threshold=threshold)
    quality = CosineQuality(encoder, k=16).fit([r["target"] for r in mixture])

    def score(completions: list[str], owners: list[int]) -> dict[str, list[float]]:
        return score_completions(
            completions, schema="qa", weights=WEIGHTS, alignment=alignment, quality=quality,
            references=[groups[i]["target"] for i in owners],
            inputs=[groups[i]["inputs"] for i in owners],
        )  # fmt: skip

    evaluation = {
        name: evaluate(folder, groups, score, args, completion_tokens)
        for name, folder in (("untrained", base), ("sft", sft_dir), ("grpo", grpo_dir))
    }
    t = lap("evaluation_seconds", t)

    from scipy.stats import wilcoxon

    paired: dict[str, Any] = {}
    for name in COMPONENTS:
        g = np.asarray(evaluation["grpo"]["per_group_sampled"][name])
        s = np.asarray(evaluation["sft"]["per_group_sampled"][name])
        diff = g - s
        p = float(wilcoxon(g, s).pvalue) if np.any(diff != 0) else 1.0
        paired[name] = {
            "mean_difference": round(float(diff.mean()), 4),
            "groups_better": int((diff > 0).sum()),
            "groups_worse": int((diff < 0).sum()),
            "wilcoxon_p": float(f"{p:.3g}"),
        }
    mean = {name: evaluation[name]["sampled"]["total"]["mean"] for name in MODELS}
    grpo_beats_sft = mean["grpo"] > mean["sft"]
    both_beat = mean["sft"] > mean["untrained"] and mean["grpo"] > mean["untrained"]
    log(f"GRPO - SFT (sampled total): {json.dumps(paired['total'])}")
    log(f"grpo_beats_sft={grpo_beats_sft}, both_beat_untrained={both_beat}")

    # 7. curves
    sft_curve, grpo_curve = curves(sft_meta, grpo_meta)
    plots = plot_curves(sft_curve, grpo_curve, args.window) if args.save else []
    timings["total_seconds"] = round(time.perf_counter() - started, 1)
    log(f"total: {timings['total_seconds']:.0f} s")

    parameters = sum(
        p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(
            base).parameters()
    )  # fmt: skip
    figures = {
        "models": evaluation,
        "paired_grpo_minus_sft": paired,
        "grpo_beats_sft": bool(grpo_beats_sft),
        "both_beat_untrained": bool(both_beat),
        "alignment_threshold": threshold,
        "calibration": calibration,
        "quality": described.get("quality"),
        "timings": timings,
        "sft_steps": sft_meta["counts"]["steps"],
        "grpo_steps": grpo_meta["counts"]["steps"],
        "parameters": int(parameters),
        "train_groups": len(mixture),
        "heldout_groups": len(groups),
        "target_tokens_max": max(target_tokens),
        "prompt_tokens_median": int(np.median(prompt_tokens)),
        "prompt_tokens_max": max(prompt_tokens),
        "curves": {"sft": sft_curve, "grpo": grpo_curve},
        "plots": plots,
    }
    settings = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": "GSM8K train/test (../shared/data/gsm8k), qa schema",
        "row_filter": f"len(question.split()) + len(answer.split()) <= {args.max_words}",
        "calculator_annotations": "kept" if args.keep_calculator else "removed (<<...>>)",
        "lm_texts": "the training rows as 'Q: ...\\nA: ...' plus the fusion instruction x20",
        "weights": WEIGHTS,
        "quality_scorer": "cosine (mean cosine to the 16 nearest training targets); no rated "
        "bank: no capable LLM judge offline",
        "align_threshold": "auto (quantile 0.5 of own-input cosines on the training mixture)",
        "encoder": DEFAULT_ENCODER,
        "max_completion_length": completion_tokens,
        "sft_max_length": max_length,
        "temperature": 1.0,
        "lora": False,
        "eval": f"{args.eval_samples} samples per group at temperature 1.0 (top_k 0, top_p 1) "
        "and 1 greedy; same prompt and chat template as training; max new tokens = "
        "--max-completion-length; per-group means; Wilcoxon signed-rank on per-group "
        "sampled means",
    }
    if args.save:
        save_result(args.save, figures, settings)
    else:
        print(json.dumps({k: v for k, v in figures.items() if k != "curves"}, indent=1)[:4000])


if __name__ == "__main__":
    main()
