"""Training the embedding decoder on ``(x, psi(x))`` pairs with the encoder frozen.

The generator is ``config.seq2seq`` (a T5-style model) or, without one, a seq2seq model
warm-started from the encoder's own BERT checkpoint (bert2bert).

``epochs`` train the inversion input (pseudo-tokens of ``e``); ``correction_epochs`` then
train the corrector on the model's own hypotheses: each correction step decodes its
batch greedily with the current weights (no dropout), embeds the hypotheses and trains on
them, adding the inversion loss so that the first pass is not forgotten. Decoding per
batch rather than for the whole corpus up front lets a time budget (``max_minutes``) stop
anywhere, and a resumed run decodes the same hypotheses from the same weights.

Memory stays flat in the corpus size: the texts come as a list or, from the CLI, as a
:class:`~augtool.data.corpus.CorpusIndex` (byte offsets; a batch's texts are read from
disk when it is drawn), and their embeddings are computed once, a chunk at a time, into
``<output>.partial/embeddings.npy`` (:mod:`augtool.data.vectors`), from which each batch
reads its rows. A rerun reuses that file when it holds the same texts embedded by the
same encoder (row count and fingerprint), and recomputes it otherwise.

Work goes to ``<output>.partial`` and is renamed at the end. Checkpoints (weights as
safetensors, optimizer state, a json with step, epoch, losses and the torch RNG state) are
written every ``save_every`` steps and at each epoch end; batch order is drawn from
``(seed, epoch)``, so rerunning the same job resumes and ends with the weights of an
uninterrupted run.

An optimizer step trains on ``batch_size x grad_accum`` texts, in micro-batches whose
token-mean losses are weighted by their target tokens. Under ``accelerate launch`` the
processes share each step's texts and sum their gradients
(:mod:`augtool.core.distributed`); rank 0 alone embeds the texts and writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import shutil
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from augtool.core.budget import STOPPED_BY_BUDGET, TimeBudget
from augtool.core.checkpoint import PROGRESS_FILE, Checkpoint
from augtool.core.distributed import data_parallel
from augtool.core.encoders import Encoder, load_encoder
from augtool.core.inversion.decoder import DECODER_FILE, EmbeddingDecoder
from augtool.core.inversion.decoder_config import DecoderConfig
from augtool.core.progress import SILENT, Reporter
from augtool.core.seed import set_seed
from augtool.data.corpus import CorpusIndex
from augtool.data.provenance import RunKey, config_dict, described_parts
from augtool.data.vectors import VectorFile, VectorReader
from augtool.data.writer import announce_stale, check_output_folder, publish_folder
from augtool.errors import AugtoolError

CHECKPOINT_DIR = "checkpoint"
TRAIN_LOG = "train_log.jsonl"
#: The training texts' embeddings (float32 .npy) and their record, in ``<output>.partial``.
EMBEDDINGS_FILE = "embeddings.npy"
_EMBEDDINGS_KEPT = (EMBEDDINGS_FILE, "embeddings.json")
#: Texts embedded (and rows of statistics summed) at a time: what bounds the memory used.
_CHUNK = 2048
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


class _Texts:
    """The training texts, by row: a list in memory, or a corpus index read from disk."""

    def __init__(self, texts: Sequence[str] | CorpusIndex, handle: BinaryIO | None) -> None:
        self.texts, self.handle = texts, handle

    def __len__(self) -> int:
        return len(self.texts)

    def read(self, rows: Sequence[int]) -> list[str]:
        if isinstance(self.texts, CorpusIndex):
            assert self.handle is not None
            return self.texts.read(self.handle, list(rows))
        return [self.texts[i] for i in rows]

    def chunks(self, first: int = 0) -> Iterator[tuple[int, list[str]]]:
        """``(first row, texts)`` in order from row ``first``, :data:`_CHUNK` at a time."""
        for start in range(first, len(self), _CHUNK):
            yield start, self.read(range(start, min(start + _CHUNK, len(self))))


def _subsample(texts: Sequence[str] | CorpusIndex, config: DecoderConfig) -> Any:
    """Non-blank texts, cut to a seeded random ``max_samples`` subset (in input order). An
    index holds non-blank rows only (its texts are validated), and is cut the same way."""
    kept = texts if isinstance(texts, CorpusIndex) else [t for t in texts if t and t.strip()]
    if config.max_samples is not None and len(kept) > config.max_samples:
        rng = np.random.default_rng(config.seed)
        chosen = np.sort(rng.choice(len(kept), size=config.max_samples, replace=False))
        if isinstance(kept, CorpusIndex):
            return kept.subset(chosen)
        kept = [kept[i] for i in chosen]
    return kept


def _keys(settings: dict[str, Any], encoder: Encoder, texts: _Texts) -> tuple[str, str]:
    """The run key, ``run_key("decoder", settings, encoder.fingerprint, texts)`` of the
    texts as a list (the same hash, streamed: nothing is held), and the fingerprint of the
    texts' embeddings (encoder, prompt prefix included, and texts), in one pass."""
    dumps = {"sort_keys": True, "default": str, "ensure_ascii": False}
    head = json.dumps(["decoder", settings, encoder.fingerprint], **dumps)
    run, embedded = hashlib.sha256(), hashlib.sha256()
    run.update((head[:-1] + ", [").encode("utf-8"))
    embedded.update(encoder.fingerprint.encode("utf-8"))
    for start, chunk in texts.chunks():
        blob = ", ".join(json.dumps(text, ensure_ascii=False) for text in chunk)
        piece = ((", " if start else "") + blob).encode("utf-8")
        run.update(piece)
        embedded.update(piece)
    run.update(b"]]")
    parts = described_parts(
        settings=settings, encoder=encoder.fingerprint, texts=embedded.hexdigest()
    )
    return RunKey(run.hexdigest()[:32], parts), embedded.hexdigest()[:32]


def _embed(texts: _Texts, encoder: Encoder, store: VectorFile, reporter: Reporter) -> None:
    """Fill ``store`` with the texts' embeddings, a chunk at a time, from the first row it
    lacks (a complete file for these texts and this encoder is reused as it is)."""
    done = store.done
    advance = reporter.task("embedding training texts", len(texts), completed=done)
    if done:
        reporter.log(f"reusing {done} embedded training text(s) from {store.path}")
    for start, chunk in texts.chunks(done):
        store.write(start, encoder.encode(chunk, progress=advance))


def _input_stats(vectors: VectorReader) -> tuple[np.ndarray, float]:
    """Mean and root mean square of the centred values (all dimensions) of the stored
    embeddings, streamed in float64 in two passes; the decoder's input scaling."""
    total = np.zeros(vectors.dim, dtype=np.float64)
    for block in vectors.blocks(_CHUNK):
        total += block.sum(axis=0, dtype=np.float64)
    center = total / len(vectors)
    squares = 0.0
    for block in vectors.blocks(_CHUNK):
        squares += float(np.square(block - center).sum())
    return center.astype(np.float32), math.sqrt(squares / (len(vectors) * vectors.dim))


def train_decoder(
    texts: Sequence[str] | CorpusIndex,
    config: DecoderConfig,
    output: str | Path,
    *,
    overwrite: bool = False,
    reporter: Reporter = SILENT,
) -> DecoderTrainResult:
    """Train a decoder for ``config.encoder`` on ``texts`` and save it at ``output``.

    ``texts`` is a list, or a :class:`~augtool.data.corpus.CorpusIndex` whose rows are read
    from disk a batch at a time. Rerunning the same job (same texts and config) after an
    interruption resumes from the last checkpoint in ``<output>.partial``.
    """
    output = Path(output)
    check_output_folder(output, overwrite=overwrite, marker=DECODER_FILE, kind="decoder")
    if isinstance(texts, CorpusIndex):
        blank = 0  # an index holds validated, non-blank rows only
    else:
        texts = list(texts)
        blank = sum(1 for text in texts if not (text and text.strip()))
    texts = _subsample(texts, config)
    if not len(texts):
        raise AugtoolError("training the decoder needs at least one non-empty text")
    if blank:
        reporter.log(f"skipping {blank} empty text(s)")

    with ExitStack() as stack:
        handle = stack.enter_context(texts.open()) if isinstance(texts, CorpusIndex) else None
        return _train(_Texts(texts, handle), config, output, stack, reporter)


def _train(
    texts: _Texts, config: DecoderConfig, output: Path, stack: ExitStack, reporter: Reporter
) -> DecoderTrainResult:
    """:func:`train_decoder` once its texts are chosen (and their file is open)."""
    dp = data_parallel(config.device)
    if not dp.main:
        reporter = SILENT  # rank 0 reports
    device = dp.device_for(config.device)
    set_seed(config.seed)
    encoder = load_encoder(
        config.encoder,
        device=device,
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
    key, embeddings_key = _keys(settings, encoder, texts)
    staging = output.with_name(output.name + ".partial")
    checkpoint = Checkpoint(staging / CHECKPOINT_DIR, key)
    saved = checkpoint.load()
    if dp.main:
        if saved is None and staging.exists():  # another job's work; its embeddings may serve
            announce_stale(staging, staging / CHECKPOINT_DIR / PROGRESS_FILE, key)
            for item in staging.iterdir():
                if item.is_dir():
                    shutil.rmtree(item)
                elif item.name not in _EMBEDDINGS_KEPT:
                    item.unlink()
        staging.mkdir(parents=True, exist_ok=True)
    dp.barrier()

    # Loaded here whether or not the embeddings are on disk: loading may draw on the RNG,
    # and the decoder below must start from the same state either way.
    encoder.load()
    store = VectorFile(staging / EMBEDDINGS_FILE, len(texts), embeddings_key)
    with dp.main_first():  # rank 0 fills the file; the others find it complete
        _embed(texts, encoder, store, reporter)
    vectors = stack.enter_context(store.reader())
    decoder = EmbeddingDecoder.create(
        config.seq2seq,
        encoder,
        num_tokens=config.num_tokens,
        device=device,
        max_length=config.max_length,
        seed=config.seed,
    )
    if dp.rank:  # other dropout masks than rank 0's (one process draws as it always did)
        torch.manual_seed(config.seed + dp.seed_offset())
    center, spread = _input_stats(vectors)
    decoder.projection.set_input_stats(center, spread, len(vectors))

    def batch_vectors(rows: list[int]) -> torch.Tensor:
        return torch.from_numpy(vectors.take(rows)).to(decoder.device)

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
        others = saved.get("rank_rng") or []  # saved by as many processes: this rank's own
        _set_rng_state(others[dp.rank - 1] if 0 < dp.rank <= len(others) else saved["rng"])
        reporter.log(f"resuming decoder training at step {progress['step']}")
    resumed_step = progress["step"]
    dp.broadcast_parameters(parameters)  # every rank starts from rank 0's weights

    total_epochs = config.epochs + config.correction_epochs
    step_rows = config.batch_size * config.grad_accum  # texts per optimizer step
    steps_per_epoch = math.ceil(len(texts) / step_rows)
    dp.announce(reporter, step_rows, "texts")
    advance = reporter.task(
        "training decoder", steps_per_epoch * total_epochs, completed=progress["step"]
    )
    # The inversion epochs get their share of --max-minutes, the correction epochs the rest.
    budget = TimeBudget(config.max_minutes, progress["seconds"])
    inversion_limit = budget.share(config.epochs / total_epochs)

    def save_checkpoint() -> None:  # every rank calls it at the same steps
        progress["seconds"] = budget.spent
        states = dp.gather(_rng_state())
        if dp.main:
            ranks = {"rank_rng": states[1:]} if dp.active else {}
            checkpoint.save(_modules(decoder), optimizer, {**progress, "rng": states[0], **ranks})

    epoch = progress["epoch"]
    while epoch < total_epochs:
        correcting = epoch >= config.epochs
        limit = budget.limit if correcting else inversion_limit
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(texts), generator=generator).tolist()
        decoder.train()
        start = progress["index"] if epoch == progress["epoch"] else 0
        stopped = dp.from_main(budget.exhausted(limit))
        for batch_index in range(start, steps_per_epoch):
            if stopped:
                break
            rows = order[batch_index * step_rows : (batch_index + 1) * step_rows]
            micros = [(m, texts.read(m)) for m in dp.micro_batches(rows, config.batch_size)]
            # Target tokens per micro-batch and in the whole step (every rank's): the
            # weights that make the summed gradients those of the step's token mean.
            if len(micros) == 1 and not dp.active:
                tokens, total = [1], 1  # one micro-batch: the loss as it is
            else:
                tokens = [sum(map(len, decoder.token_ids(part))) for _, part in micros]
                total = max(dp.sum_int(sum(tokens)), 1)
            optimizer.zero_grad(set_to_none=True)
            value = 0.0
            for (micro, batch_texts), count in zip(micros, tokens, strict=True):
                batch = batch_vectors(micro)
                if correcting:  # decoded before the graph of this step's losses is built
                    hypotheses, hypothesis_vectors = _hypotheses(decoder, encoder, batch, config)
                loss = decoder.loss(batch, batch_texts)
                if correcting:
                    correction = decoder.loss(batch, batch_texts, hypotheses, hypothesis_vectors)
                    loss = (loss + correction) / 2
                (loss * (count / total)).backward()
                value += float(loss.detach()) * (count / total)
            dp.sum_gradients(parameters)
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            value, out_of_time = dp.step_sync(value, budget.exhausted(limit))
            progress["step"] += 1
            progress["index"] = batch_index + 1
            progress["epoch"] = epoch
            progress["loss_sum"] += value
            progress["loss_count"] += 1
            last_of_epoch = batch_index + 1 == steps_per_epoch
            if (
                config.save_every
                and progress["step"] % config.save_every == 0
                and not last_of_epoch
            ):
                save_checkpoint()
            advance(1)
            stopped = out_of_time if dp.active else budget.exhausted(limit)
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
    dp.barrier()  # every rank is done with the embeddings file
    result = DecoderTrainResult(
        decoder=decoder,
        history=progress["history"],
        output=output,
        resumed_step=resumed_step,
        seconds=round(progress["seconds"], 1),
    )
    if not dp.main:  # rank 0 writes the output
        return result
    shutil.rmtree(staging / CHECKPOINT_DIR, ignore_errors=True)
    stack.close()  # the embeddings file is no part of the decoder
    store.remove()
    decoder.save(staging)
    with (staging / TRAIN_LOG).open("w", encoding="utf-8") as handle:
        for record in progress["history"]:
            handle.write(json.dumps(record) + "\n")
    publish_folder(staging, output)
    decoder.folder = output
    return result
