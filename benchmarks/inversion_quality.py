"""Reconstruction quality of augtool's inverters at a fixed CPU budget, on held-out text.

Three inverters of the default encoder psi = all-MiniLM-L6-v2, each trained by the real
command for the same CPU time (core-minutes) on the same sentences:

- ``warm``: `pinr train-decoder` with the generator warm-started from psi's own BERT
  (bert2bert, the default), inversion then correction epochs;
- ``t5``: `pinr train-decoder --seq2seq` on a T5 built here from scratch (random weights,
  a real T5Config, BPE vocabulary trained on the training sentences): what an offline
  user had before the warm start;
- ``invmix``: `invmix warm-lm` (psi's BERT continued as a causal LM) then
  `invmix train-adaptor` on it (the LM frozen, as in the paper), half the budget each.

The two decoders train side by side with one thread each; the invmix stages then run one
after the other with two threads for a quarter of the budget each, so every arm gets
``--minutes`` core-minutes. Sentences: WikiText/WikiQA sentences, AG News and TREC train
(3 to 40 words, de-duplicated); ``--held-out`` of them are drawn first and never trained
on. Scored on those: corpus sacreBLEU (lower-cased), token F1, exact match and
cos(psi(x_hat), psi(x)), one-step and with ``--correction-steps`` corrector steps, all
decoded greedily with ``--no-repeat-ngram`` 3-gram blocking (0 turns it off).
Goal (issue 16): cosine >= 0.80 and BLEU >= 25 within 60 minutes of 2-core training.

    python benchmarks/inversion_quality.py [--minutes 30] [--train 20000] [--held-out 200]
        [--correction-steps 2] [--arms warm t5 invmix] [--save inversion_quality]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dataset, offline, save_result, texts_of

ARMS = ("warm", "t5", "invmix")
EXAMPLES_PER_ARM = 6


def sentences(train: int, held_out: int, seed: int) -> tuple[list[str], list[str]]:
    """Held-out and training sentences, disjoint, from the shared corpora."""
    pool: list[str] = []
    for parts in (("unlabeled", "wiki_sentences.jsonl"), ("ag_news", "train.jsonl")):
        pool.extend(texts_of(dataset(*parts)))
    pool.extend(texts_of(dataset("trec", "train.jsonl")))
    seen: set[str] = set()
    kept = []
    for text in pool:
        text = " ".join(text.split())
        if 3 <= len(text.split()) <= 40 and text.lower() not in seen:
            seen.add(text.lower())
            kept.append(text)
    random.Random(seed).shuffle(kept)
    if len(kept) < held_out + train:
        raise SystemExit(f"only {len(kept)} sentences for {held_out} + {train}")
    return kept[:held_out], kept[held_out : held_out + train]


def write_jsonl(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index, text in enumerate(texts):
            handle.write(json.dumps({"id": f"s{index}", "text": text}) + "\n")
    return path


def start(args: list[object], threads: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "augtool", *[str(a) for a in args]]
    print("$ augtool " + " ".join(str(a) for a in args), flush=True)
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait(process: subprocess.Popen, log: Path) -> None:
    if process.wait() != 0:
        raise SystemExit(f"{process.args[3:]} failed:\n{log.read_text()[-3000:]}")


def build_t5(folder: Path, texts: list[str], d_model: int, layers: int, vocab: int) -> Path:
    from augtool.testing.tiny_t5 import build_tiny_t5

    heads = max(d_model // 64, 1)
    return build_tiny_t5(
        folder, texts, d_model=d_model, layers=layers, heads=heads, vocab_size=vocab
    )


def decoder_args(corpus: Path, out: Path, args: argparse.Namespace) -> list[object]:
    return [
        "pinr", "train-decoder", corpus, "-o", out, "--overwrite",
        "--max-minutes", args.minutes, "--epochs", args.epochs,
        "--correction-epochs", args.correction_epochs, "--batch-size", args.batch_size,
        "--max-length", args.max_length, "--num-tokens", args.num_tokens,
        "--save-every", 200, "--device", "cpu",
    ]  # fmt: skip


def score(name: str, originals: list[str], decoded: list[str], encoder, target) -> dict:
    from augtool.core.inversion.quality import reconstruction_scores

    scores = reconstruction_scores(originals, decoded, target, encoder.encode(decoded))
    print(f"{name:22s} " + "  ".join(f"{k} {v}" for k, v in scores.items()), flush=True)
    return scores


def examples(originals: list[str], decoded: dict[str, list[str]]) -> list[dict[str, str]]:
    return [
        {"original": originals[i], **{k: v[i] for k, v in decoded.items()}}
        for i in range(min(EXAMPLES_PER_ARM, len(originals)))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="Core-minutes per arm.")
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--held-out", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3, help="Decoder inversion epochs.")
    parser.add_argument("--correction-epochs", type=int, default=1)
    parser.add_argument("--correction-steps", type=int, default=2)
    parser.add_argument(
        "--no-repeat-ngram", type=int, default=3, help="Decoding: n-gram blocking (0: off)."
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=40)
    parser.add_argument("--num-tokens", type=int, default=16)
    parser.add_argument("--warm-lr", type=float, default=2e-4)
    parser.add_argument("--t5-lr", type=float, default=1e-3)
    parser.add_argument("--t5-d-model", type=int, default=256)
    parser.add_argument("--t5-layers", type=int, default=4)
    parser.add_argument("--t5-vocab", type=int, default=8000)
    parser.add_argument("--lm-lr", type=float, default=1e-4)
    parser.add_argument("--adaptor-lr", type=float, default=5e-4)
    parser.add_argument("--soft-tokens", type=int, default=16)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="Keep the models here.")
    parser.add_argument("--save", default=None, help="Save figures as results/NAME.json.")
    args = parser.parse_args()
    offline()
    work = args.work or Path(tempfile.mkdtemp(prefix="inversion-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    held_out, train = sentences(args.train, args.held_out, args.seed)
    corpus = write_jsonl(work / "train.jsonl", train)
    write_jsonl(work / "held_out.jsonl", held_out)
    print(f"{len(train)} training sentences, {len(held_out)} held out; work in {work}")

    from augtool.core.inversion.decoder import EmbeddingDecoder
    from augtool.core.inversion.model import InversionModel

    timings: dict[str, float] = {}
    decoders = [arm for arm in ("warm", "t5") if arm in args.arms]
    running = {}
    begun = time.perf_counter()
    if "t5" in decoders:
        t5 = build_t5(work / "t5-scratch", train, args.t5_d_model, args.t5_layers, args.t5_vocab)
        log = work / "t5.log"
        extra = ["--seq2seq", t5, "--lr", args.t5_lr]
        running["t5"] = (start(decoder_args(corpus, work / "t5", args) + extra, 1, log), log)
    if "warm" in decoders:
        log = work / "warm.log"
        extra = ["--lr", args.warm_lr]
        running["warm"] = (start(decoder_args(corpus, work / "warm", args) + extra, 1, log), log)
    for arm, (process, log) in running.items():
        wait(process, log)
        timings[arm] = round(time.perf_counter() - begun, 1)
    if "invmix" in args.arms:
        begun = time.perf_counter()
        lm_log, inv_log = work / "warm-lm.log", work / "invmix.log"
        lm_args = [
            "invmix", "warm-lm", corpus, "-o", work / "warm-lm", "--overwrite",
            "--max-minutes", args.minutes / 4, "--batch-size", args.batch_size,
            "--max-length", args.max_length, "--lr", args.lm_lr, "--device", "cpu",
        ]  # fmt: skip
        wait(start(lm_args, 2, lm_log), lm_log)
        adaptor_args = [
            "invmix", "train-adaptor", corpus, "-o", work / "invmix", "--overwrite",
            "--llm", f"hf:{work / 'warm-lm'}", "--max-minutes", args.minutes / 4,
            "--soft-tokens", args.soft_tokens, "--lr", args.adaptor_lr,
            "--batch-size", args.batch_size, "--max-target-tokens", args.max_length,
            "--epochs", 3, "--device", "cpu",
        ]  # fmt: skip
        wait(start(adaptor_args, 2, inv_log), inv_log)
        timings["invmix"] = round(time.perf_counter() - begun, 1)

    from augtool.core.encoders import load_encoder

    encoder = load_encoder("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
    target = encoder.encode(held_out)
    figures: dict[str, dict] = {}
    decoded: dict[str, list[str]] = {}
    for arm in decoders:
        decoder = EmbeddingDecoder.load(work / arm, device="cpu", encoder=encoder)
        info = json.loads((work / arm / "augtool_decoder.json").read_text())
        for steps in sorted({0, args.correction_steps}):
            texts = decoder.generate(
                target,
                max_new_tokens=args.max_length,
                correction_steps=steps,
                encoder=encoder,
                no_repeat_ngram_size=args.no_repeat_ngram,
            )
            name = f"{arm}" if steps == 0 else f"{arm}+corrected"
            decoded[name] = texts
            figures[name] = {
                **score(name, held_out, texts, encoder, target),
                "correction_steps": steps,
            }
        meta = json.loads((work / arm / "meta.json").read_text())
        for name in [n for n in figures if n.split("+")[0] == arm]:
            figures[name]["training"] = {
                "history": meta["history"],
                "seconds": meta.get("training_seconds"),
                "core_minutes": args.minutes,
                "wall_seconds": timings[arm],
                "init_from_encoder": info.get("init_from_encoder") is not None,
            }
    if "invmix" in args.arms:
        model = InversionModel.load(work / "invmix", device="cpu")
        texts = model.invert(
            target, max_new_tokens=args.max_length, no_repeat_ngram_size=args.no_repeat_ngram
        )
        decoded["invmix"] = texts
        lm_info = json.loads((work / "warm-lm" / "warm_lm.json").read_text())
        figures["invmix"] = {
            **score("invmix", held_out, texts, encoder, target),
            "correction_steps": 0,
            "training": {
                "warm_lm": {"history": lm_info["history"], "seconds": lm_info["seconds"]},
                "adaptor": [
                    json.loads(line)
                    for line in (work / "invmix" / "train_log.jsonl").read_text().splitlines()
                ],
                "core_minutes": args.minutes,
                "wall_seconds": timings["invmix"],
            },
        }
    goal = {"cosine": 0.80, "bleu": 25.0, "core_minutes": 120}
    for row in figures.values():
        row["goal_met"] = row["cosine"] >= goal["cosine"] and row["bleu"] >= goal["bleu"]
    print(json.dumps(examples(held_out, decoded), indent=2))
    if args.save:
        settings = {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
            if key not in ("work", "save")
        }
        settings["sentences"] = {"train": len(train), "held_out": len(held_out)}
        save_result(
            args.save,
            {"arms": figures, "goal": goal, "examples": examples(held_out, decoded)},
            settings,
        )


if __name__ == "__main__":
    main()
