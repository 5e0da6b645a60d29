"""Training the embedding decoder on ``(x, psi(x))`` pairs with the encoder frozen.

The generator is ``config.seq2seq`` (a T5-style model) or, without one, a seq2seq model
warm-started from the encoder's own BERT checkpoint (bert2bert).

``epochs`` train the inversion input (pseudo-tokens of ``e``); ``correction_epochs`` then
train the corrector on the model's own hypotheses: each correction step decodes its
batch greedily with the current weights (no dropout), embeds the hypotheses and trains on
them, adding the inversion loss so that the first pass is not forgotten. Decoding per
batch rather than for the whole corpus up front lets a time budget (``max_minutes``) stop
anywhere, and a resumed run decodes the same hypotheses from the same weights.

Work goes to ``<output>.partial`` and is renamed at the end. Checkpoints (weights as
safetensors, optimizer state, a json with step, epoch, losses and the torch RNG state) are
written every ``save_every`` steps and at each epoch end; batch order is drawn from
``(seed, epoch)``, so rerunning the same job resumes and ends with the weights of an
uninterrupted run.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augtool.core.budget import STOPPED_BY_BUDGET, TimeBudget
from augtool.core.checkpoint import Checkpoint
from augtool.core.encoders import Encoder, load_encoder
from augtool.core.inversion.decoder import DECODER_FILE, EmbeddingDecoder
from augtool.core.inversion.decoder_config import DecoderConfig
from augtool.core.progress import SILENT, Reporter
from augtool.core.seed import set_seed
from augtool.data.provenance import config_dict, run_key
from augtool.data.writer import check_output_folder, publish_folder
from augtool.errors import AugtoolError

CHECKPOINT_DIR = "checkpoint"
TRAIN_LOG = "train_log.jsonl"
# Fields that do not change the trained weights: a rerun with other values still resumes.
_NOT_IN_RUN_KEY = ("device", "save_every", "text_field", "max_minutes")


@dataclass
class DecoderTrainResult:
    """What :func:`train_decoder` produced."""

    decoder: EmbeddingDecoder
    history: list[dict[str, Any]] = field(default_factory=list)
    output: Path | None = None
    resumed_step: int = 0
    seconds: float = 0.0  # time spent in the training loop, resumed runs included


def _rng_state() -> dict[str, Any]:
    state = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [
            base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()
        ]
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    def tensor(blob: str) -> torch.Tensor:
        return torch.from_numpy(np.frombuffer(base64.b64decode(blob), dtype=np.uint8).copy())

    torch.set_rng_state(tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensor(s) for s in state["cuda"]])


def _modules(decoder: EmbeddingDecoder) -> dict[str, torch.nn.Module]:
    """What a decoder checkpoint holds (file names as before the shared Checkpoint)."""
    return {"projection": decoder.projection, "seq2seq": decoder.model}


def _hypotheses(
    decoder: EmbeddingDecoder, encoder: Encoder, vectors: torch.Tensor, config: DecoderConfig
) -> tuple[list[str], torch.Tensor]:
    """The model's current greedy decodings of ``vectors`` and their embeddings."""
    texts = decoder.generate(vectors, max_new_tokens=config.max_length, batch_size=len(vectors))
    embeddings = torch.as_tensor(encoder.encode(texts), dtype=torch.float32)
    return texts, embeddings.to(decoder.device)


def _subsample(texts: list[str], config: DecoderConfig) -> list[str]:
    """Non-blank texts, cut to a seeded random ``max_samples`` subset (in input order)."""
    kept = [text for text in texts if text and text.strip()]
    if config.max_samples is not None and len(kept) > config.max_samples:
        rng = np.random.default_rng(config.seed)
        chosen = np.sort(rng.choice(len(kept), size=config.max_samples, replace=False))
        kept = [kept[i] for i in chosen]
    return kept


def train_decoder(
    texts: list[str],
    config: DecoderConfig,
    output: str | Path,
    *,
    overwrite: bool = False,
    reporter: Reporter = SILENT,
) -> DecoderTrainResult:
    """Train a decoder for ``config.encoder`` on ``texts`` and save it at ``output``.

    Rerunning the same job (same texts and config) after an interruption resumes from the
    last checkpoint in ``<output>.partial``.
    """
    output = Path(output)
    check_output_folder(output, overwrite=overwrite, marker=DECODER_FILE, kind="decoder")
    texts = list(texts)
    blank = sum(1 for text in texts if not (text and text.strip()))
    texts = _subsample(texts, config)
    if not texts:
        raise AugtoolError("training the decoder needs at least one non-empty text")
    if blank:
        reporter.log(f"skipping {blank} empty text(s)")

    set_seed(config.seed)
    encoder = load_encoder(
        config.encoder,
        device=config.device,
        dtype="float32",
        batch_size=max(config.batch_size, 32),
        prefix=config.prefix,
    )
    if config.warm_start:  # a non-BERT encoder fails here, before any weights load
        from augtool.core.inversion.decoder import check_warm_lengths
        from augtool.core.inversion.warm_start import warm_start_source

        source = warm_start_source(encoder)
        check_warm_lengths(source.max_positions, config.num_tokens, config.max_length)
    settings = {k: v for k, v in config_dict(config).items() if k not in _NOT_IN_RUN_KEY}
    key = run_key("decoder", settings, encoder.fingerprint, texts)
    staging = output.with_name(output.name + ".partial")
    checkpoint = Checkpoint(staging / CHECKPOINT_DIR, key)
    saved = checkpoint.load()
    if saved is None and staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)

    advance_embed = reporter.task("embedding training texts", len(texts))
    vectors_np = encoder.encode(texts, progress=advance_embed)
    decoder = EmbeddingDecoder.create(
        config.seq2seq,
        encoder,
        num_tokens=config.num_tokens,
        device=config.device,
        max_length=config.max_length,
        seed=config.seed,
    )
    vectors = torch.as_tensor(vectors_np, dtype=torch.float32, device=decoder.device)
    decoder.projection.fit_inputs(vectors)
    parameters = decoder.parameters()
    optimizer = torch.optim.AdamW(parameters, lr=config.lr)

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
        checkpoint.restore(_modules(decoder), optimizer, device=str(decoder.device))
        progress = {name: saved.get(name, default) for name, default in progress.items()}
        _set_rng_state(saved["rng"])
        reporter.log(f"resuming decoder training at step {progress['step']}")
    resumed_step = progress["step"]

    total_epochs = config.epochs + config.correction_epochs
    steps_per_epoch = math.ceil(len(texts) / config.batch_size)
    advance = reporter.task(
        "training decoder", steps_per_epoch * total_epochs, completed=progress["step"]
    )
    # The inversion epochs get their share of --max-minutes, the correction epochs the rest.
    budget = TimeBudget(config.max_minutes, progress["seconds"])
    inversion_limit = budget.share(config.epochs / total_epochs)

    def save_checkpoint() -> None:
        progress["seconds"] = budget.spent
        checkpoint.save(_modules(decoder), optimizer, {**progress, "rng": _rng_state()})

    epoch = progress["epoch"]
    while epoch < total_epochs:
        correcting = epoch >= config.epochs
        limit = budget.limit if correcting else inversion_limit
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(texts), generator=generator).tolist()
        decoder.train()
        start = progress["index"] if epoch == progress["epoch"] else 0
        stopped = budget.exhausted(limit)
        for batch_index in range(start, steps_per_epoch):
            if stopped:
                break
            rows = order[batch_index * config.batch_size : (batch_index + 1) * config.batch_size]
            batch_texts = [texts[i] for i in rows]
            if correcting:  # decoded before the graph of this step's losses is built
                hypotheses, hypothesis_vectors = _hypotheses(
                    decoder, encoder, vectors[rows], config
                )
            loss = decoder.loss(vectors[rows], batch_texts)
            if correcting:
                correction = decoder.loss(
                    vectors[rows], batch_texts, hypotheses, hypothesis_vectors
                )
                loss = (loss + correction) / 2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            progress["step"] += 1
            progress["index"] = batch_index + 1
            progress["epoch"] = epoch
            progress["loss_sum"] += float(loss.detach())
            progress["loss_count"] += 1
            last_of_epoch = batch_index + 1 == steps_per_epoch
            if (
                config.save_every
                and progress["step"] % config.save_every == 0
                and not last_of_epoch
            ):
                save_checkpoint()
            advance(1)
            stopped = budget.exhausted(limit)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "phase": "correction" if correcting else "inversion",
            "loss": round(progress["loss_sum"] / max(progress["loss_count"], 1), 6),
            "step": progress["step"],
        }
        phase_end = total_epochs if correcting else config.epochs
        if stopped and (progress["index"] < steps_per_epoch or epoch + 1 < phase_end):
            record["stopped"] = STOPPED_BY_BUDGET  # the phase was cut short
        if progress["loss_count"]:
            progress["history"].append(record)
            reporter.log(
                f"decoder epoch {record['epoch']}/{total_epochs} ({record['phase']})  "
                f"loss {record['loss']:.4f}"
                + (f"  (stopped: {STOPPED_BY_BUDGET})" if "stopped" in record else "")
            )
        elif stopped:  # no step left in this epoch: the phase's last epoch was its last
            earlier = [r for r in progress["history"] if r["phase"] == record["phase"]]
            if earlier:
                earlier[-1]["stopped"] = STOPPED_BY_BUDGET
        # Out of time: skip to the correction epochs (or to the end).
        epoch = (total_epochs if correcting else config.epochs) if stopped else epoch + 1
        progress.update(epoch=epoch, index=0, loss_sum=0.0, loss_count=0)
        save_checkpoint()

    decoder.eval()
    decoder.training = config_dict(config)
    shutil.rmtree(staging / CHECKPOINT_DIR, ignore_errors=True)
    decoder.save(staging)
    with (staging / TRAIN_LOG).open("w", encoding="utf-8") as handle:
        for record in progress["history"]:
            handle.write(json.dumps(record) + "\n")
    publish_folder(staging, output)
    decoder.folder = output
    return DecoderTrainResult(
        decoder=decoder,
        history=progress["history"],
        output=output,
        resumed_step=resumed_step,
        seconds=round(progress["seconds"], 1),
    )
