"""A small real causal LM for invmix, offline: a BERT encoder's weights continued as a
causal LM (``augtool invmix warm-lm``).

The paper's frozen LM is LLaMA-3-8B-Instruct; offline, the only pretrained transformer at
hand is the sentence encoder, a BERT. Pretrained encoder checkpoints warm-start generators
well (Rothe et al., 2020), so this builds a ``BertLMHeadModel`` (``is_decoder=True``:
causal self-attention) through ``from_pretrained`` on the encoder's own checkpoint, with
the LM head tied to the word embeddings, and continues training it as a causal LM on a
corpus (every weight trains). Weights the encoder checkpoint lacks (the MLM head's
transform and output bias, absent from sentence-transformers checkpoints) are initialised
by BERT's initialiser and listed in the log and in ``warm_lm.json``.

The output is a normal transformers folder (config with ``is_decoder: true``, safetensors
weights, generation config, tokenizer) that every invmix stage takes as ``--llm hf:DIR``.
Its tokenizer behaves like a causal LM's: ``[CLS]`` is the beginning of sequence (the only
token added to a text), ``[SEP]`` the end of sequence (appended to every training
sentence, so generation stops there) and ``[PAD]`` the padding.

The corpus is indexed once (byte offset of each row, validated; :mod:`augtool.data.corpus`)
and read back from disk a batch at a time, so memory stays flat in the corpus size. Work
goes to ``<out>.partial`` and is published at the end; checkpoints (safetensors weights,
optimizer, progress) are written every ``save_every`` steps and at each epoch end. Batch
order is drawn from ``(seed, epoch)`` and dropout from ``(seed, step)``, so rerunning an
interrupted job resumes and ends with the weights of an uninterrupted run.

An optimizer step trains on ``batch_size x grad_accum`` sentences, in micro-batches whose
token-mean losses are weighted by their predicted tokens; under ``accelerate launch`` the
processes share each step's sentences and sum their gradients
(:mod:`augtool.core.distributed`), and rank 0 alone writes.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from augtool.core.budget import STOPPED_BY_BUDGET, TimeBudget
from augtool.core.checkpoint import PROGRESS_FILE, Checkpoint
from augtool.core.progress import SILENT, Reporter
from augtool.data.corpus import index_corpus
from augtool.data.jsonl import Rejected
from augtool.data.provenance import config_dict, environment, file_fingerprint, run_key, utc_now
from augtool.data.writer import check_output_folder, publish_folder, reset_staging
from augtool.errors import ModelError, OptionError
from augtool.methods.invmix.config import WarmLMConfig

WARM_LM_FILE = "warm_lm.json"
CHECKPOINT_DIR = "checkpoint"
TRAIN_LOG = "train_log.jsonl"
FORMAT_VERSION = 1
#: Encoder families whose checkpoint loads into ``BertLMHeadModel``.
BERT_TYPES = ("bert",)
# Fields that do not change the trained weights: a rerun with other values still resumes.
_NOT_IN_RUN_KEY = ("device", "save_every", "max_minutes")


@dataclass
class WarmLMResult:
    """What :func:`train_warm_lm` produced."""

    output: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    sentences: int = 0
    resumed_step: int = 0
    initialised: list[str] = field(default_factory=list)
    encoder: dict[str, Any] = field(default_factory=dict)


def bert_source(spec: str) -> str:
    """The folder (or hub id) of the BERT under an encoder spec: a sentence-transformers
    folder's transformer module, or a plain transformers folder. Anything but a BERT is a
    one-line :class:`OptionError` naming the route to take instead; nothing is loaded."""
    from augtool.core.encoders import parse_encoder_spec
    from augtool.core.hub import loading, resolve_model_source

    _, name = parse_encoder_spec(spec)
    source = resolve_model_source(name, "encoder")
    folder = Path(source)
    if folder.is_dir():
        from augtool.core.inversion.warm_start import transformer_folder

        module_folder = transformer_folder(folder)
        if module_folder is None:
            raise OptionError(
                "encoder",
                f"{spec!r} has no transformer module; warm-lm starts from BERT weights "
                "only: give invmix a causal LM with --llm hf:<model> instead",
            )
        folder = module_folder
        config_path = folder / "config.json"
        try:
            model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError) as exc:
            raise ModelError(f"encoder {spec!r}: no readable {config_path} ({exc})") from exc
        source = str(folder)
    else:
        from transformers import AutoConfig

        with loading("encoder", name):
            model_type = AutoConfig.from_pretrained(source).model_type
    if model_type not in BERT_TYPES:
        raise OptionError(
            "encoder",
            f"{spec!r} is a {model_type!r} model; warm-lm starts a causal LM from BERT "
            "weights only (model_type 'bert'): give invmix a causal LM with "
            "--llm hf:<model> instead",
        )
    return source


def causal_tokenizer(source: str) -> Any:
    """The encoder's tokenizer as a causal LM's: adds only ``[CLS]`` (beginning of
    sequence) to a text; ``[SEP]`` is the end of sequence, ``[PAD]`` the padding. Same
    vocabulary, normalisation and decoding as the encoder's."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from augtool.core.hub import loading

    with loading("encoder tokenizer", source):
        original = AutoTokenizer.from_pretrained(source)
    if not getattr(original, "is_fast", False):
        raise ModelError(f"encoder {source!r}: warm-lm needs a fast (tokenizers) tokenizer")
    tokens = {name: getattr(original, f"{name}_token", None) for name in ("cls", "sep", "pad")}
    missing = [f"[{name.upper()}]" for name, token in tokens.items() if token is None]
    if missing:
        raise ModelError(f"encoder {source!r}: its tokenizer has no {', '.join(missing)} token")
    backend = Tokenizer.from_str(original.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    cls = tokens["cls"]
    backend.post_processor = TemplateProcessing(
        single=f"{cls} $A", pair=f"{cls} $A $B", special_tokens=[(cls, original.cls_token_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=cls,
        eos_token=tokens["sep"],
        pad_token=tokens["pad"],
        unk_token=original.unk_token,
        cls_token=cls,
        sep_token=tokens["sep"],
        mask_token=original.mask_token,
        model_max_length=original.model_max_length,
    )


def build_causal_lm(source: str, tokenizer: Any, seed: int = 0) -> tuple[Any, list[str]]:
    """``BertLMHeadModel`` (causal, LM head tied to the word embeddings) loaded through
    ``from_pretrained`` from the encoder's checkpoint; returns it and the names of the
    weights the checkpoint lacked (initialised by BERT's initialiser, seeded)."""
    from transformers import BertLMHeadModel

    from augtool.core.hub import loading, quiet_transformers

    quiet_transformers()
    torch.manual_seed(seed)
    with loading("encoder", source):
        model, info = BertLMHeadModel.from_pretrained(
            source,
            is_decoder=True,
            add_cross_attention=False,
            tie_word_embeddings=True,
            output_loading_info=True,
            dtype=torch.float32,  # trained in full precision, whatever the checkpoint holds
        )
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        model.tie_weights()
    for holder in (model.config, model.generation_config):
        holder.bos_token_id = tokenizer.bos_token_id
        holder.eos_token_id = tokenizer.eos_token_id
        holder.pad_token_id = tokenizer.pad_token_id
    # the decoder's weight is the word embeddings and its bias is cls.predictions.bias:
    # tied, never new
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    initialised = sorted(set(info.get("missing_keys", ())) - tied)
    return model, initialised


def lm_batch(
    tokenizer: Any, texts: list[str], max_length: int, device: str
) -> dict[str, torch.Tensor]:
    """``[CLS] text [SEP]`` per sentence (truncated to ``max_length`` tokens), right-padded;
    labels are the ids with -100 on padding (the model shifts them)."""
    ids = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length - 1)
    sequences = [seq + [tokenizer.eos_token_id] for seq in ids["input_ids"]]
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    labels = input_ids.masked_fill(mask == 0, -100)
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": mask.to(device),
        "labels": labels.to(device),
    }


def train_warm_lm(
    corpus: str | Path,
    config: WarmLMConfig,
    output: str | Path,
    *,
    overwrite: bool = False,
    rejects: list[Rejected] | None = None,
    reporter: Reporter = SILENT,
) -> WarmLMResult:
    """Build the causal LM from ``config.encoder`` and train it on ``corpus``; save it at
    ``output``. Rerunning the same job after an interruption resumes from the last
    checkpoint in ``<output>.partial``. Encoder and corpus are checked before any model
    loads."""
    from augtool.core.device import resolve_device
    from augtool.core.distributed import data_parallel
    from augtool.core.encoders import load_encoder
    from augtool.core.seed import set_seed

    output = check_output_folder(output, overwrite=overwrite, marker=WARM_LM_FILE, kind="warm LM")
    source = bert_source(config.encoder)
    dp = data_parallel(config.device)
    if not dp.main:
        reporter = SILENT  # rank 0 reports
    device = resolve_device(dp.device_for(config.device))
    index = index_corpus(corpus, config.text_field, limit=config.max_samples, rejects=rejects)
    encoder_info = load_encoder(config.encoder).describe()
    corpus_info = file_fingerprint(index.path)
    settings = {k: v for k, v in config_dict(config).items() if k not in _NOT_IN_RUN_KEY}
    key = run_key(
        "invmix-warm-lm",
        settings=settings,
        corpus={"sha256": corpus_info["sha256"], "bytes": corpus_info["bytes"]},
        encoder=encoder_info["fingerprint"],
    )
    staging = output.with_name(output.name + ".partial")
    checkpoint = Checkpoint(staging / CHECKPOINT_DIR, key)
    saved = checkpoint.load()
    if dp.main:
        state_file = staging / CHECKPOINT_DIR / PROGRESS_FILE
        reset_staging(staging, state_file, key, resuming=saved is not None)
    dp.barrier()

    set_seed(config.seed)
    tokenizer = causal_tokenizer(source)
    model, initialised = build_causal_lm(source, tokenizer, config.seed)
    positions = int(model.config.max_position_embeddings)
    if config.max_length > positions:
        raise OptionError("max_length", f"must be at most {positions} (the encoder's positions)")
    if initialised:
        reporter.log(
            "not in the encoder checkpoint, initialised (normal std "
            f"{model.config.initializer_range}, LayerNorm 1/0, biases 0): " + ", ".join(initialised)
        )
    model.to(device)
    parameters = list(model.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.lr)
    modules = {"model": model}
    progress: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "index": 0,
        "loss_sum": 0.0,
        "loss_count": 0,
        "history": [],
        "seconds": 0.0,
    }
    if saved is not None:
        checkpoint.restore(modules, optimizer, device=device)
        progress = {name: saved.get(name, default) for name, default in progress.items()}
        reporter.log(f"resuming warm-LM training at step {progress['step']}")
    resumed_step = progress["step"]
    dp.broadcast_parameters(parameters)  # every rank starts from rank 0's weights

    step_rows = config.batch_size * config.grad_accum  # sentences per optimizer step
    steps_per_epoch = math.ceil(len(index) / step_rows)
    dp.announce(reporter, step_rows, "sentences")
    advance = reporter.task(
        "training warm LM", steps_per_epoch * config.epochs, completed=progress["step"]
    )
    budget = TimeBudget(config.max_minutes, progress["seconds"])

    def save_checkpoint() -> None:
        progress["seconds"] = budget.spent
        if dp.main:
            checkpoint.save(modules, optimizer, progress)

    stopped = dp.from_main(budget.exhausted())
    with index.open() as handle:
        for epoch in range(progress["epoch"], config.epochs):
            if stopped:
                break
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            order = torch.randperm(len(index), generator=generator).tolist()
            model.train()
            start = progress["index"] if epoch == progress["epoch"] else 0
            size = config.batch_size
            for batch_index in range(start, steps_per_epoch):
                if stopped:
                    break
                rows = order[batch_index * step_rows : (batch_index + 1) * step_rows]
                batches = [
                    lm_batch(tokenizer, index.read(handle, micro), config.max_length, device)
                    for micro in dp.micro_batches(rows, size)
                ]
                # Predicted tokens (labels after the shift) per micro-batch and in the whole
                # step: the weights that make the gradients those of the step's token mean.
                if len(batches) == 1 and not dp.active:
                    tokens, total = [1], 1  # one micro-batch: the loss as it is
                else:
                    tokens = [int((b["labels"][:, 1:] != -100).sum()) for b in batches]
                    total = max(dp.sum_int(sum(tokens)), 1)
                torch.manual_seed(
                    config.seed * 1_000_003 + 7_919 * (progress["step"] + 1) + dp.seed_offset()
                )
                optimizer.zero_grad(set_to_none=True)
                value = 0.0
                for batch, count in zip(batches, tokens, strict=True):
                    loss = model(**batch).loss
                    (loss * (count / total)).backward()
                    value += float(loss.detach()) * (count / total)
                dp.sum_gradients(parameters)
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                value, out_of_time = dp.step_sync(value, budget.exhausted())
                progress["step"] += 1
                progress["index"] = batch_index + 1
                progress["epoch"] = epoch
                progress["loss_sum"] += value
                progress["loss_count"] += 1
                last_of_epoch = batch_index + 1 == steps_per_epoch
                if progress["step"] % config.save_every == 0 and not last_of_epoch:
                    save_checkpoint()
                advance(1)
                stopped = out_of_time if dp.active else budget.exhausted()
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "loss": round(progress["loss_sum"] / max(progress["loss_count"], 1), 6),
                "step": progress["step"],
            }
            if stopped and (progress["index"] < steps_per_epoch or epoch + 1 < config.epochs):
                record["stopped"] = STOPPED_BY_BUDGET
            if progress["loss_count"]:
                progress["history"].append(record)
                reporter.log(
                    f"warm LM epoch {epoch + 1}/{config.epochs}  loss {record['loss']:.4f}"
                    + (f"  (stopped: {STOPPED_BY_BUDGET})" if "stopped" in record else "")
                )
            elif stopped and progress["history"]:  # the last recorded epoch was the last
                progress["history"][-1]["stopped"] = STOPPED_BY_BUDGET
            progress.update(
                epoch=config.epochs if stopped else epoch + 1, index=0, loss_sum=0.0, loss_count=0
            )
            save_checkpoint()

    model.eval()
    result = WarmLMResult(
        output=output,
        history=progress["history"],
        sentences=len(index),
        resumed_step=resumed_step,
        initialised=initialised,
        encoder={**encoder_info, "bert": source},
    )
    if not dp.main:  # rank 0 writes the output
        dp.barrier()
        return result
    shutil.rmtree(staging / CHECKPOINT_DIR, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    _portable_tokenizer_class(staging)
    with (staging / TRAIN_LOG).open("w", encoding="utf-8") as log:
        for record in progress["history"]:
            log.write(json.dumps(record) + "\n")
    provenance = {
        "format": FORMAT_VERSION,
        "command": "invmix warm-lm",
        "created_at": utc_now(),
        "config": config_dict(config),
        "encoder": result.encoder,
        "corpus": {**corpus_info, "sentences": len(index)},
        "initialised": initialised,
        "tokens": {
            "bos": tokenizer.bos_token,
            "eos": tokenizer.eos_token,
            "pad": tokenizer.pad_token,
        },
        "steps": progress["step"],
        "seconds": round(progress["seconds"], 1),
        "history": progress["history"],
        "environment": environment(),
    }
    (staging / WARM_LM_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    publish_folder(staging, output)
    dp.barrier()
    return result


def _portable_tokenizer_class(folder: Path) -> None:
    """Name the tokenizer class ``PreTrainedTokenizerFast`` (a tokenizer.json as is), which
    transformers 4 and 5 both load, rather than the class the library writes."""
    path = folder / "tokenizer_config.json"
    settings = json.loads(path.read_text(encoding="utf-8"))
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
