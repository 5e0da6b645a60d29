"""Peak memory of `hf:` option scoring (log-likelihood labelling) against the naive way.

Issue 18, "scoring that fits": scoring 14 labels after a batch of ~200-token prompts with a
Llama-3-sized vocabulary (128,256 tokens) must not hold prompt length x vocabulary logits
per (prompt, label) pair. Three arms, each in a fresh process that loads the model, resets
its peak resident set (``/proc/self/clear_refs``), scores, and reports ``ru_maxrss`` minus
its resident set after loading:

- ``cached``: ``HFBackend.score_batch`` now: each prompt run once (vocabulary logits at its
  last position only), its KV cache repeated per label, the labels' tokens run on top;
- ``previous``: the full-sequence path it replaced (now the fallback for models without a
  cache): one ``prompt + label`` sequence per pair, logits only at the labels' positions;
- ``naive`` (the peer): one ``prompt + label`` sequence per pair, full logits and a
  float32 ``log_softmax`` over every position (:func:`naive_scores`).

The model is a random Llama (2 layers, hidden size 64, 128,256-token vocabulary) with a
byte-level BPE tokenizer trained on the example data, so it runs on a CPU in seconds; the
labels are DBpedia's 14 classes. All arms score the same prompts, and their scores must
agree (max difference below 1e-3). ``cached`` is also run at ``--large-batch`` prompts
(the backend's default batch size), where the naive arm would need tens of GB.

    python benchmarks/scoring_memory.py [--batch 2] [--prompt-tokens 200] [--large-batch 16]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, offline, save_result, texts_of

VOCAB = 128_256  # Llama 3's vocabulary
LABELS = [
    "Company",
    "Educational Institution",
    "Artist",
    "Athlete",
    "Office Holder",
    "Mean Of Transportation",
    "Building",
    "Natural Place",
    "Village",
    "Animal",
    "Plant",
    "Album",
    "Film",
    "Written Work",
]
TOLERANCE = 1e-3


def build_model(folder: Path) -> Path:
    """A random Llama with a 128,256-token vocabulary and the tiny chat tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from augtool.testing.tiny_llama import build_tiny_llama

    examples = ROOT / "examples" / "data"
    texts = [
        t
        for name in ("intents-train", "intents-unlabeled")
        for t in texts_of(examples / f"{name}.jsonl")
    ]
    build_tiny_llama(folder, texts, train_steps=0)
    config = LlamaConfig.from_pretrained(folder)
    config.update(
        {"vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def make_prompts(backend: Any, count: int, target: int) -> list[list[dict[str, str]]]:
    """``count`` labelling prompts of about ``target`` tokens (90% to 110%, so rows pad).
    Prompt ``i`` depends only on ``i``: a larger batch starts with the same prompts."""
    examples = ROOT / "examples" / "data"
    pool = texts_of(examples / "intents-test.jsonl") + texts_of(examples / "intents-train.jsonl")
    head = "Classify the text into one of these categories: " + ", ".join(LABELS) + ".\nText: "
    prompts = []
    for i in range(count):
        want = int(target * (0.9 + 0.05 * (i % 5)))
        text, cursor = "", 7 * i
        while True:
            prompt = [{"role": "user", "content": head + text + "\nCategory:"}]
            if backend.count_tokens(prompt) >= want:
                break
            text += pool[cursor % len(pool)] + " "
            cursor += 1
        prompts.append(prompt)
    return prompts


def naive_scores(model: Any, prefixes: list[list[int]], options: list[list[int]], pad: int) -> Any:
    """The peer: every ``prompt + option`` as its own left-padded sequence, the full logits,
    a float32 log_softmax over every position, then the options' tokens gathered."""
    import torch

    sequences = [prefix + ids for prefix in prefixes for ids in options]
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
    totals = []
    for row, (_, ids) in enumerate((p, o) for p in prefixes for o in options):
        picked = log_probs[row, width - len(ids) - 1 : width - 1].gather(
            -1, torch.tensor(ids).unsqueeze(-1)
        )
        totals.append(float(picked.sum()))
    return torch.tensor(totals).view(len(prefixes), len(options))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> bool:
    """Reset the peak resident set (Linux), so loading's transient peak is not counted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(arm: str, folder: Path, batch: int, prompt_tokens: int) -> dict[str, Any]:
    """One arm, in this (fresh) process."""
    import torch
    from transformers import AutoModelForCausalLM

    from augtool.core.generation.hf_backend import HFBackend

    backend = HFBackend(str(folder), cache=False)
    tokenizer = backend.tokenizer
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    backend = HFBackend.from_loaded(str(folder), model, tokenizer, "cpu", cache=False)
    prompts = make_prompts(backend, batch, prompt_tokens)
    prefixes = [backend._encode(backend.render(p)) for p in prompts]
    options = [tokenizer(label, add_special_tokens=False)["input_ids"] for label in LABELS]
    gc.collect()
    reset = reset_peak()
    loaded = rss_kib()
    start = time.perf_counter()
    if arm == "cached":
        scores = backend.score_batch(prompts, LABELS)
        totals = [[s.logprob for s in row] for row in scores]
    elif arm == "previous":
        totals = backend._score_full_sequences(prefixes, options).tolist()
    else:
        totals = naive_scores(model, prefixes, options, tokenizer.pad_token_id).tolist()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_mib": round(max(peak - loaded, 0) / 1024, 1),
        "loaded_mib": round(loaded / 1024, 1),
        "seconds": round(seconds, 3),
        "peak_reset": reset,
        "prompt_tokens": [len(p) for p in prefixes],
        "label_tokens": [len(o) for o in options],
        "scores": totals,
    }


def run_arm(arm: str, folder: Path, batch: int, prompt_tokens: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--arm", arm, "--model", str(folder)]
    command += ["--batch", str(batch), "--prompt-tokens", str(prompt_tokens)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{arm:9s} batch {batch:2d}: +{result['peak_mib']:8.1f} MiB, {result['seconds']:.2f} s")
    return result


def max_difference(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="prompts per batch, all arms")
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--large-batch", type=int, default=16, help="cached arm only")
    parser.add_argument("--arm", choices=("cached", "previous", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    offline()
    if args.arm:
        print(json.dumps(measure(args.arm, args.model, args.batch, args.prompt_tokens)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = build_model(Path(scratch) / "llama-128k")
        runs = {
            arm: run_arm(arm, folder, args.batch, args.prompt_tokens)
            for arm in ("cached", "previous", "naive")
        }
        large = run_arm("cached", folder, args.large_batch, args.prompt_tokens)
    cached, previous, naive = runs["cached"], runs["previous"], runs["naive"]
    differences = {
        "cached_vs_naive": max_difference(cached["scores"], naive["scores"]),
        "previous_vs_naive": max_difference(previous["scores"], naive["scores"]),
        "large_batch_vs_cached": max_difference(large["scores"][: args.batch], cached["scores"]),
    }
    print("max score differences:", differences)
    assert all(d < TOLERANCE for d in differences.values()), differences
    assert all(run["peak_reset"] for run in (*runs.values(), large))

    def arm_figures(run: dict[str, Any]) -> dict[str, float]:
        return {"peak_mib": run["peak_mib"], "seconds": run["seconds"]}

    figures: dict[str, object] = {
        "cached": arm_figures(cached),
        "previous": arm_figures(previous),
        "naive": arm_figures(naive),
        "cached_large_batch": arm_figures(large),
        "memory_ratio_naive_vs_cached": round(naive["peak_mib"] / cached["peak_mib"], 1),
        "speedup_vs_previous": round(previous["seconds"] / cached["seconds"], 1),
        "max_score_difference": float(f"{max(differences.values()):.2e}"),
        "scores_agree": True,
    }
    settings = {
        "labels": len(LABELS),
        "label_tokens": cached["label_tokens"],
        "vocab": VOCAB,
        "hidden_size": 64,
        "layers": 2,
        "batch": args.batch,
        "large_batch": args.large_batch,
        "prompt_tokens": cached["prompt_tokens"],
        "large_batch_prompt_tokens": large["prompt_tokens"],
        "loaded_mib": cached["loaded_mib"],
        "tolerance": TOLERANCE,
    }
    save_result("scoring_memory", figures, settings)


if __name__ == "__main__":
    main()
