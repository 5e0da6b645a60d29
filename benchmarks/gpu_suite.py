"""The GPU suite (issue 18): invmix, log-likelihood labelling and ``hf:`` generation on a
Llama-3-8B-shaped LM in bfloat16, with peak GPU memory per stage.

Stages, each with its own time budget so that the whole run fits in 8 minutes on one
H200 (a stage that runs out is stopped and says so; the figures so far are kept):

- ``setup``: tokenizers trained here on seeded synthetic text, a MiniLM-shaped encoder
  and the LM built with random weights at their real shapes, saved as model folders;
- ``train_adaptor``: one invmix adaptor epoch on 1,000 sentences (``run_train_adaptor``);
- ``refine``: one invmix refinement epoch on TREC 5-shot's size (6 labels x 5 rows),
  against the paper's A100 figure (about 100 s);
- ``mix_invert``: one Mixup + inversion epoch on the same rows (``run_generate``),
  against the paper's A100 figure (about 40 s);
- ``loglik``: labelling with 14 labels through ``HFBackend.score_batch`` (rows/s);
- ``generation``: ``HFBackend.generate_batch`` at batch 64 (tokens/s);
- ``train_adaptor_checkpointed``: adaptor steps with ``--gradient-checkpointing`` on the
  longest sentences, for its peak memory.

Nothing is downloaded and nothing is read from outside the repository: throughput and
memory depend on the shapes, not the weights, so random weights measure them (the
machine that runs this has no network). LM load times are reported apart from the
stages' own times. ``--size tiny --device cpu`` runs the same code on a tiny shape (a
smoke test, seconds); only an ``8b`` run writes ``benchmarks/results/gpu_suite.json``
by default, and the figures are written after every stage.

    python benchmarks/gpu_suite.py                          # 8b, cuda
    python benchmarks/gpu_suite.py --size tiny --device cpu --out /tmp/gpu_suite.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # a bare copy of the tree, augtool not installed
    sys.path.insert(0, str(ROOT))

from _common import RESULTS, save_result  # noqa: E402

NAME = "gpu_suite"

#: Llama-3-8B's configuration (meta-llama/Meta-Llama-3-8B config.json): what sets speed
#: and memory. The tokenizer built here is smaller; ids past it are never produced by
#: the data, only sampled by the random LM (and decode to nothing).
LLAMA3_8B: dict[str, Any] = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
TINY_LM: dict[str, Any] = {
    **LLAMA3_8B,
    "vocab_size": 4096,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
#: all-MiniLM-L6-v2's shape (the default encoder), random weights.
MINILM: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
}
TINY_ENCODER: dict[str, Any] = {
    **MINILM,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "8b": {"lm": LLAMA3_8B, "encoder": MINILM},
    "tiny": {"lm": TINY_LM, "encoder": TINY_ENCODER},
}

# The workload (benchmarks/gpu_memory_estimate.py estimates memory for the same one).
SENTENCES = {"8b": 1000, "tiny": 200}  # the adaptor epoch's corpus
ADAPTOR_BATCH = 16
MAX_TARGET_TOKENS = 64
SHOTS = 5
TREC_LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
#: DBpedia-14's classes: a 14-label labelling job.
LOGLIK_LABELS = [
    "Company",
    "Educational institution",
    "Artist",
    "Athlete",
    "Office holder",
    "Mean of transportation",
    "Building",
    "Natural place",
    "Village",
    "Animal",
    "Plant",
    "Album",
    "Film",
    "Written work",
]
LOGLIK_BATCH = 16  # prompts per score_batch call (the hf: default --batch-size)
LOGLIK_PROMPT_TOKENS = 120  # the rendered labelling prompt (A.3), sentence included
LOGLIK_MAX_ROWS = {"8b": 2048, "tiny": 64}
GEN_BATCH = 64
GEN_PROMPT_TOKENS = 64
GEN_NEW_TOKENS = 128
GEN_MAX_BATCHES = {"8b": 4, "tiny": 2}
#: The inversedMixup paper's A100 times per epoch at 5-shot (seconds).
PAPER_A100_S = {"refine": 100.0, "mix_invert": 40.0}
#: Seconds each stage may take (LM loads included); the whole run also stops at TOTAL_S.
BUDGETS_S = {
    "setup": 120.0,
    "train_adaptor": 120.0,
    "refine": 90.0,
    "mix_invert": 60.0,
    "loglik": 45.0,
    "generation": 60.0,
    "train_adaptor_checkpointed": 45.0,
}
TOTAL_S = 450.0
#: Steps of the --gradient-checkpointing adaptor run (its longest sentences).
CHECKPOINTED_STEPS = 8

# --- synthetic text ---------------------------------------------------------------------

_WORDS = {
    "det": "the a this that every one another some each".split(),
    "adj": (
        "old new small large early late red green quiet loud bright dark local national "
        "public private famous rare common simple modern ancient northern southern strong "
        "young wooden stone narrow wide main"
    ).split(),
    "noun": (
        "city river company school team album film village bridge station museum church "
        "island mountain lake forest road railway player singer writer painter director "
        "festival season league party council river valley harbour castle tower library "
        "market factory garden species plant animal bird ship engine book novel song"
    ).split(),
    "verb": (
        "built opened founded joined won recorded released wrote painted crossed visited "
        "named described moved played reached replaced covered produced designed owned"
    ).split(),
    "prep": "in near across along behind beyond under over through around beside".split(),
    "name": (
        "Adams Baker Carter Dalton Evans Fischer Garcia Hughes Ivanov Jensen Kato Larsen "
        "Moreau Novak Okafor Perez Quinn Rossi Silva Tanaka Ueda Varga Weber Young Zhou"
    ).split(),
    "year": [str(year) for year in range(1850, 2021, 7)],
}
_QUESTION_STARTS = {
    "ABBR": "What does the abbreviation for the",
    "DESC": "Why is the",
    "ENTY": "Which kind of",
    "HUM": "Who",
    "LOC": "Where is the",
    "NUM": "How many",
}


def _clause(rng: random.Random) -> str:
    w = _WORDS
    pick = rng.choice
    forms = [
        f"{pick(w['det'])} {pick(w['adj'])} {pick(w['noun'])} {pick(w['verb'])} "
        f"{pick(w['det'])} {pick(w['noun'])} {pick(w['prep'])} {pick(w['det'])} {pick(w['noun'])}",
        f"{pick(w['name'])} {pick(w['verb'])} {pick(w['det'])} {pick(w['adj'])} "
        f"{pick(w['noun'])} in {pick(w['year'])}",
        f"{pick(w['det'])} {pick(w['noun'])} {pick(w['prep'])} {pick(w['det'])} "
        f"{pick(w['adj'])} {pick(w['noun'])} was {pick(w['verb'])} by {pick(w['name'])}",
    ]
    return pick(forms)


def sentence(rng: random.Random, clauses: int | None = None) -> str:
    """One seeded synthetic sentence of 1-6 clauses (about 8-60 words)."""
    count = clauses if clauses is not None else rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 5, 6])
    text = ", and ".join(_clause(rng) for _ in range(count))
    return text[0].upper() + text[1:] + "."


def corpus(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [sentence(rng) for _ in range(count)]


def labelled_rows(seed: int = 1) -> list[tuple[str, str]]:
    """TREC 5-shot's size: five synthetic questions for each of its six labels."""
    rng = random.Random(seed)
    rows = []
    for label in TREC_LABELS:
        for _ in range(SHOTS):
            body = _clause(rng)
            rows.append((f"{_QUESTION_STARTS[label]} {body}?", label))
    return rows


# --- models -----------------------------------------------------------------------------


def _tokenizer_corpus(sentences: int) -> list[str]:
    from augtool.core.generation.prompts import LLM_LABEL
    from augtool.core.inversion.soft_prompt import DEFAULT_PREFIX, DEFAULT_SUFFIX

    extra = [DEFAULT_PREFIX + DEFAULT_SUFFIX, LLM_LABEL.user, " ".join(LOGLIK_LABELS)]
    extra += ["Rewrite this sentence in other words: " + s for s in corpus(50, seed=7)]
    return corpus(sentences, seed=99) + [q for q, _ in labelled_rows(seed=98)] + extra * 5


def build_lm_tokenizer(texts: list[str]) -> Any:
    """A byte-level BPE chat tokenizer (augtool.testing.tiny_llama's special tokens and
    chat template), trained on the synthetic corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from augtool.testing.tiny_llama import CHAT_TEMPLATE, SPECIAL_TOKENS

    model = Tokenizer(models.BPE())
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4000,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    model.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=model, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_encoder(folder: Path, shape: dict[str, Any], texts: list[str]) -> Path:
    """A sentence-transformers BERT (mean pooling) with a WordPiece tokenizer trained here."""
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    wordpiece.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=3000, special_tokens=specials)
    )
    cls, sep = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = BertConfig(**{**shape, "vocab_size": max(shape["vocab_size"], len(tokenizer))})
    torch.manual_seed(0)
    bert = folder / "bert"
    BertModel(config).save_pretrained(bert)
    tokenizer.save_pretrained(bert)
    try:  # where newer sentence-transformers keep them
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    word = Transformer(str(bert), max_seq_length=128)
    dimension = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pooling = Pooling(dimension(), "mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(folder / "st"))
    return folder / "st"


def build_lm(folder: Path, shape: dict[str, Any], tokenizer: Any, device: str, dtype: Any) -> int:
    """A random Llama of ``shape`` made directly on ``device`` in ``dtype``, saved with
    its tokenizer; returns its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **{**shape, "vocab_size": max(shape["vocab_size"], len(tokenizer))},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # no float32 copy of the weights on the way
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return parameters


# --- measuring --------------------------------------------------------------------------


class StageTimeout(Exception):
    """A stage ran past its budget (raised by the alarm between Python operations)."""


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise :class:`StageTimeout` in the main thread after ``seconds`` (POSIX)."""

    def fire(signum: int, frame: Any) -> None:
        raise StageTimeout

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def gib(count: float) -> float:
    return round(count / 2**30, 2)


class Suite:
    """Runs the stages in order, each under its budget, and writes the figures after each."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        import torch

        from augtool.core.device import resolve_device, resolve_dtype

        self.args = args
        self.size = args.size
        self.device = resolve_device(args.device)
        self.dtype = resolve_dtype(args.dtype, self.device)
        self.dtype_name = str(self.dtype).removeprefix("torch.")
        self.cuda = self.device.startswith("cuda")
        self.torch = torch
        if self.size == "tiny":
            # Tiny matrices gain nothing from threads, and on a busy machine's few cores
            # oversubscribed threads make them 20x slower.
            torch.set_num_threads(1)
        self.work = work
        self.started = time.perf_counter()
        self.figures: dict[str, dict[str, Any]] = {}
        self.shared: dict[str, Any] = {}
        self.texts = corpus(SENTENCES[self.size])
        self.sample = labelled_rows()

    # bookkeeping ------------------------------------------------------------------------

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def memory(self) -> float | None:
        return gib(self.torch.cuda.memory_allocated()) if self.cuda else None

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def left(self) -> float:
        return TOTAL_S - (time.perf_counter() - self.started)

    def run(self, name: str, body: Callable[[dict[str, Any], float], None]) -> None:
        """``body(out, budget)`` fills ``out``; its time, peak memory and status are added."""
        budget = min(BUDGETS_S[name], self.left())
        out: dict[str, Any] = {"budget_s": round(budget, 1)}
        if budget < 5:
            out["status"] = "skipped: the suite's time ran out"
            self.figures[name] = out
            self.save()
            return
        self.free()
        print(f"[{name}] up to {budget:.0f} s", flush=True)
        start = time.perf_counter()
        try:
            with alarm(budget + 15):  # the body stops itself at `budget`; this is a backstop
                body(out, budget)
            out["status"] = "ok"
        except StageTimeout:
            out["status"] = f"stopped at its time budget ({budget:.0f} s)"
        except Exception as exc:  # noqa: BLE001 - a failed stage must not lose the others
            traceback.print_exc()
            out["status"] = f"failed: {type(exc).__name__}: {exc}"
        self.sync()
        out["seconds"] = round(time.perf_counter() - start, 2)
        if self.cuda:
            out["peak_gpu_gib"] = gib(self.torch.cuda.max_memory_allocated())
        self.figures[name] = out
        print(f"[{name}] {json.dumps(out)}", flush=True)
        self.save()

    @contextlib.contextmanager
    def timed_loads(self, out: dict[str, Any]) -> Iterator[None]:
        """Time the LM loads of the invmix stages (``load_causal_lm``) so that a stage's
        own time can be told apart from loading 16 GB of weights; measures only."""
        import augtool.core.inversion.model as inversion_model

        original = inversion_model.load_causal_lm

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = original(*args, **kwargs)
            self.sync()
            out["lm_load_s"] = round(out.get("lm_load_s", 0.0) + time.perf_counter() - start, 2)
            if self.cuda:
                out["weights_gpu_gib"] = self.memory()
            return result

        inversion_model.load_causal_lm = timed
        try:
            yield
        finally:
            inversion_model.load_causal_lm = original

    def settings(self) -> dict[str, Any]:
        from importlib import metadata

        versions = {}
        for package in (
            "torch",
            "transformers",
            "tokenizers",
            "sentence-transformers",
            "safetensors",
            "accelerate",
            "peft",
            "bitsandbytes",
        ):
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                continue
        gpu: dict[str, Any] = {}
        if self.cuda:
            props = self.torch.cuda.get_device_properties(self.device)
            gpu = {
                "name": props.name,
                "memory_gib": gib(props.total_memory),
                "capability": f"{props.major}.{props.minor}",
                "cuda": self.torch.version.cuda,
            }
        return {
            "size": self.size,
            "device": self.device,
            "dtype": self.dtype_name,
            "gpu": gpu,
            "versions": versions,
            "lm_shape": SIZES[self.size]["lm"],
            "encoder_shape": SIZES[self.size]["encoder"],
            "sentences": SENTENCES[self.size],
            "adaptor_batch": ADAPTOR_BATCH,
            "max_target_tokens": MAX_TARGET_TOKENS,
            "labelled_rows": len(self.sample),
            "loglik_labels": len(LOGLIK_LABELS),
            "loglik_batch": LOGLIK_BATCH,
            "loglik_prompt_tokens": LOGLIK_PROMPT_TOKENS,
            "generation_batch": GEN_BATCH,
            "generation_prompt_tokens": GEN_PROMPT_TOKENS,
            "generation_new_tokens": GEN_NEW_TOKENS,
            "paper_a100_s": PAPER_A100_S,
            "budgets_s": BUDGETS_S,
            "total_budget_s": TOTAL_S,
            "complete": all(self.figures.get(name, {}).get("status") == "ok" for name in BUDGETS_S),
        }

    def save(self) -> None:
        write_result(self.args.out, self.figures, self.settings())

    # stages -----------------------------------------------------------------------------

    def setup(self, out: dict[str, Any], budget: float) -> None:
        texts = _tokenizer_corpus(3 * SENTENCES[self.size])
        start = time.perf_counter()
        self.encoder = build_encoder(self.work / "encoder", SIZES[self.size]["encoder"], texts)
        tokenizer = build_lm_tokenizer(texts)
        out["tokenizers_and_encoder_s"] = round(time.perf_counter() - start, 2)
        self.tokenizer = tokenizer
        self.llm = self.work / "llm"
        start = time.perf_counter()
        out["parameters"] = build_lm(
            self.llm, SIZES[self.size]["lm"], tokenizer, self.device, self.dtype
        )
        self.sync()
        out["build_and_save_lm_s"] = round(time.perf_counter() - start, 2)
        out["lm_disk_gib"] = gib(sum(p.stat().st_size for p in self.llm.glob("*.safetensors")))
        out["tokenizer_vocabulary"] = len(tokenizer)

    def train_adaptor(self, out: dict[str, Any], budget: float) -> None:
        lengths = [len(ids) for ids in self.tokenizer(self.texts)["input_ids"]]
        out.update(
            target_tokens_mean=round(sum(lengths) / len(lengths), 1),
            targets_truncated=sum(n > MAX_TARGET_TOKENS for n in lengths),
        )
        self._adaptor_epoch(out, budget, self.texts, "adaptor", checkpointing=False)

    def train_adaptor_checkpointed(self, out: dict[str, Any], budget: float) -> None:
        """Adaptor training with ``--gradient-checkpointing`` on the longest sentences
        (every batch at the widest shape, the memory table's case)."""
        lengths = self.tokenizer(self.texts)["input_ids"]
        order = sorted(range(len(self.texts)), key=lambda i: -len(lengths[i]))
        longest = [self.texts[i] for i in order[: CHECKPOINTED_STEPS * ADAPTOR_BATCH]]
        self._adaptor_epoch(out, budget, longest, "adaptor-checkpointed", checkpointing=True)

    def _adaptor_epoch(
        self, out: dict[str, Any], budget: float, texts: list[str], folder: str, checkpointing: bool
    ) -> None:
        from augtool.data.records import Record
        from augtool.methods.invmix.config import AdaptorConfig
        from augtool.methods.invmix.stages import run_train_adaptor

        records = [Record(id=f"s{i}", text=t) for i, t in enumerate(texts)]
        steps = math.ceil(len(records) / ADAPTOR_BATCH)
        out.update(sentences=len(records), steps_per_epoch=steps)
        done = {"steps": 0}
        config = AdaptorConfig(
            encoder=str(self.encoder),
            llm=f"hf:{self.llm}",
            epochs=1,
            batch_size=ADAPTOR_BATCH,
            max_target_tokens=MAX_TARGET_TOKENS,
            max_minutes=0.6 * budget / 60,  # training alone; the load comes before it
            save_every=10**6,
            gradient_checkpointing=checkpointing,
            device=self.device,
            dtype=self.dtype_name,
        )
        start = time.perf_counter()
        with self.timed_loads(out):
            run_train_adaptor(
                records,
                config,
                self.work / folder,
                on_step=lambda step, loss: done.update(steps=step),
            )
        self.sync()
        epoch = time.perf_counter() - start - out.get("lm_load_s", 0.0)
        out["steps_done"] = done["steps"]
        out["epoch_complete"] = done["steps"] == steps
        out["epoch_s"] = round(epoch * steps / max(done["steps"], 1), 2)
        sentences = min(done["steps"] * ADAPTOR_BATCH, len(records))
        out["sentences_per_s"] = round(sentences / epoch, 1)
        if not out["epoch_complete"]:
            out["epoch_s_note"] = "extrapolated from the steps done within the budget"

    def refine(self, out: dict[str, Any], budget: float) -> None:
        from augtool.data.records import Record
        from augtool.methods.invmix.config import RefineConfig
        from augtool.methods.invmix.stages import run_refine

        records = [Record(id=f"q{i}", text=t, label=y) for i, (t, y) in enumerate(self.sample)]
        config = RefineConfig(
            rounds=1,
            task_epochs=1,
            adaptor_epochs=1,
            device=self.device,
            dtype=self.dtype_name,
        )
        start = time.perf_counter()
        with self.timed_loads(out):
            run_refine(records, config, self.work / "adaptor", self.work / "refined")
        self.sync()
        epoch = time.perf_counter() - start - out.get("lm_load_s", 0.0)
        out["rows"] = len(records)
        out["epoch_s"] = round(epoch, 2)
        out["paper_a100_s"] = PAPER_A100_S["refine"]
        out["speedup_vs_paper"] = round(PAPER_A100_S["refine"] / epoch, 2)

    def mix_invert(self, out: dict[str, Any], budget: float) -> None:
        from augtool.core.inversion.model import InversionModel
        from augtool.data.records import Record
        from augtool.data.writer import JsonlWriter
        from augtool.methods.invmix.config import InvmixGenerateConfig
        from augtool.methods.invmix.generate import run_generate

        records = [Record(id=f"q{i}", text=t, label=y) for i, (t, y) in enumerate(self.sample)]
        common = {"device": self.device, "dtype": self.dtype_name}
        with self.timed_loads(out):
            model = InversionModel.load(self.work / "refined", **common)
        config = InvmixGenerateConfig(n=len(records), keep_duplicates=True, **common)
        start = time.perf_counter()
        writer = JsonlWriter(self.work / "mixed.jsonl", run_key="gpu-suite")
        with writer:
            run_generate(records, model, config, writer)
            writer.commit()
        self.sync()
        epoch = time.perf_counter() - start
        out.update(
            rows=len(records),
            max_new_tokens=config.max_new_tokens,
            epoch_s=round(epoch, 2),
            rows_per_s=round(len(records) / epoch, 2),
            paper_a100_s=PAPER_A100_S["mix_invert"],
            speedup_vs_paper=round(PAPER_A100_S["mix_invert"] / epoch, 2),
        )
        # The loaded LM serves the next two stages (hf: around it, no second load).
        self.shared["lm"] = (model.lm.model, model.lm.tokenizer)

    def backend(self, out: dict[str, Any]) -> Any:
        """The ``hf:`` backend over the LM the last stage loaded, or loaded now."""
        from augtool.core.generation.hf_backend import HFBackend

        if "backend" in self.shared:
            return self.shared["backend"]
        if "lm" in self.shared:
            model, tokenizer = self.shared.pop("lm")
            backend = HFBackend.from_loaded(
                str(self.llm), model, tokenizer, str(model.device), cache=False
            )
        else:
            backend = HFBackend(str(self.llm), device=self.device, dtype=self.dtype_name)
            start = time.perf_counter()
            backend.load()
            self.sync()
            out["lm_load_s"] = round(time.perf_counter() - start, 2)
        self.shared["backend"] = backend
        return backend

    def _sized(self, backend: Any, make: Callable[[str], Any], tokens: int, seed: int) -> Any:
        """``make(text)`` with a synthetic text cut so the rendered prompt has about
        ``tokens`` tokens."""
        rng = random.Random(seed)
        base = backend.count_tokens(make(""))
        words = " ".join(sentence(rng, 6) for _ in range(3)).split()
        ids = backend.tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
        text = backend.tokenizer.decode(ids[: max(tokens - base, 1)]).strip()
        return make(text)

    def loglik(self, out: dict[str, Any], budget: float) -> None:
        from augtool.core.generation.prompts import LLM_LABEL

        start = time.perf_counter()
        backend = self.backend(out)
        label_list = ", ".join(LOGLIK_LABELS)

        def make(text: str) -> Any:
            return LLM_LABEL.render(text=text, label_list=label_list)

        rows = LOGLIK_MAX_ROWS[self.size]
        prompts = [self._sized(backend, make, LOGLIK_PROMPT_TOKENS, seed) for seed in range(rows)]
        counts = [backend.count_tokens(p) for p in prompts]
        option_tokens = [
            len(backend.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in LOGLIK_LABELS
        ]
        out.update(
            labels=len(LOGLIK_LABELS),
            batch_prompts=LOGLIK_BATCH,
            prompt_tokens_mean=round(sum(counts) / len(counts), 1),
            option_tokens_max=max(option_tokens),
        )
        if self.cuda:
            out["weights_gpu_gib"] = self.memory()
        backend.score_batch(prompts[:LOGLIK_BATCH], LOGLIK_LABELS)  # warm-up, not timed
        self.sync()
        stop = start + 0.8 * budget
        done, timed = 0, time.perf_counter()
        while done < rows and time.perf_counter() < stop:
            scores = backend.score_batch(prompts[done : done + LOGLIK_BATCH], LOGLIK_LABELS)
            assert all(len(row) == len(LOGLIK_LABELS) for row in scores)
            done += LOGLIK_BATCH
            out["rows"] = done
        self.sync()
        elapsed = time.perf_counter() - timed
        out["scoring_s"] = round(elapsed, 2)
        out["rows_per_s"] = round(done / elapsed, 1)

    def generation(self, out: dict[str, Any], budget: float) -> None:
        from augtool.core.generation.params import GenerationParams

        start = time.perf_counter()
        backend = self.backend(out)

        def make(text: str) -> Any:
            return [{"role": "user", "content": f"Rewrite this sentence in other words: {text}"}]

        prompts = [
            self._sized(backend, make, GEN_PROMPT_TOKENS, 1000 + seed) for seed in range(GEN_BATCH)
        ]
        counts = [backend.count_tokens(p) for p in prompts]
        params = GenerationParams(max_new_tokens=GEN_NEW_TOKENS, temperature=1.0, top_p=1.0)
        out.update(
            batch=GEN_BATCH,
            prompt_tokens_mean=round(sum(counts) / len(counts), 1),
            new_tokens=GEN_NEW_TOKENS,
        )
        if self.cuda:
            out["weights_gpu_gib"] = self.memory()
        warm = GenerationParams(max_new_tokens=4, temperature=1.0, top_p=1.0)
        backend.generate_batch(prompts, warm, list(range(GEN_BATCH)))  # warm-up, not timed
        self.sync()
        stop = start + 0.6 * budget
        batches, timed = 0, time.perf_counter()
        while batches < GEN_MAX_BATCHES[self.size] and (batches == 0 or time.perf_counter() < stop):
            seeds = [batches * GEN_BATCH + i for i in range(GEN_BATCH)]
            replies = backend.generate_batch(prompts, params, seeds)
            assert len(replies) == GEN_BATCH
            batches += 1
            out["batches"] = batches
        self.sync()
        elapsed = time.perf_counter() - timed
        tokens = batches * GEN_BATCH * GEN_NEW_TOKENS
        out.update(
            generated_tokens=tokens,
            generation_s=round(elapsed, 2),
            tokens_per_s=round(tokens / elapsed, 1),
        )

    def main(self) -> None:
        self.run("setup", self.setup)
        if self.figures["setup"]["status"] != "ok":
            raise SystemExit("setup failed: no models to measure")
        self.run("train_adaptor", self.train_adaptor)
        self.run("refine", self.refine)
        self.run("mix_invert", self.mix_invert)
        self.run("loglik", self.loglik)
        self.run("generation", self.generation)
        self.shared.clear()
        self.run("train_adaptor_checkpointed", self.train_adaptor_checkpointed)
        total = round(time.perf_counter() - self.started, 1)
        print(f"whole suite: {total} s (budget {TOTAL_S:.0f} s)")


def write_result(out: Path, figures: dict[str, Any], settings: dict[str, Any]) -> Path:
    """``benchmarks/results/gpu_suite.json`` through ``save_result``; any other path gets
    the same record (so a smoke run never overwrites the kept figures)."""
    if out.resolve() == (RESULTS / f"{NAME}.json").resolve():
        return save_result(NAME, figures, settings)
    from augtool.data.provenance import environment, machine, utc_now

    record = {
        "benchmark": NAME,
        "date": utc_now(),
        "machine": machine(),
        "environment": environment(),
        "settings": settings,
        "figures": figures,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="8b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--dtype", default="auto", help="auto: bfloat16 on CUDA, float32 on the CPU"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"JSON to write (default: benchmarks/results/{NAME}.json for --size 8b, "
        "a temporary file otherwise)",
    )
    parser.add_argument("--work-dir", help="Where the models are written (default: TMPDIR).")
    parser.add_argument("--keep", action="store_true", help="Keep the models afterwards.")
    args = parser.parse_args(argv)
    if args.out is None:
        if args.size == "8b":
            args.out = RESULTS / f"{NAME}.json"
        else:
            args.out = Path(tempfile.gettempdir()) / f"{NAME}-{args.size}.json"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(tempfile.mkdtemp(prefix="augtool-gpu-suite-", dir=args.work_dir))
    os.environ.setdefault("AUGTOOL_CACHE_DIR", str(work / "cache"))
    from augtool.core.hub import quiet_transformers

    quiet_transformers()
    try:
        Suite(args, work).main()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
