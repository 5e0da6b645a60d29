"""Training the task model: cross-entropy on hard or soft labels, optional embedding Mixup,
early stopping on a dev set, checkpoints that make an interrupted run resumable.

Randomness is derived from ``(seed, epoch)`` at the start of every epoch (batch order,
Mixup lambdas, dropout). A checkpoint taken mid-epoch also holds the position in the
epoch (steps done, loss so far) and the RNG states at that step; a resumed run redraws the
epoch's batch order, restores those states, skips the batches already done and so
continues exactly as an uninterrupted one.

An optimizer step trains on ``batch_size x grad_accum`` rows, in micro-batches of at most
``batch_size``; under ``accelerate launch`` the processes share each step's rows and sum
their gradients (:mod:`augtool.core.distributed`), and rank 0 alone writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augtool.core.distributed import DataParallel, data_parallel
from augtool.core.encoders import TorchEncoder, load_encoder
from augtool.core.model_errors import ModelLoadError, model_load_errors
from augtool.core.progress import SILENT, Reporter
from augtool.core.seed import set_seed
from augtool.core.taskmodel.config import TrainConfig
from augtool.core.taskmodel.evaluate import classification_metrics
from augtool.core.taskmodel.model import MODEL_FILE, InitModel, TaskModel, resolve_init_model
from augtool.data.provenance import config_dict, run_key
from augtool.data.records import Record, labels_of
from augtool.data.sampling import train_dev_split
from augtool.data.writer import (
    check_output_folder,
    key_state,
    publish_folder,
    reset_staging,
)
from augtool.errors import AugtoolError, OptionError

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FORMAT = 2
PROGRESS_FILE = "progress.json"
STATE_FILE = "state.pt"
EpochHook = Callable[[int, dict[str, Any]], None]
StepHook = Callable[[int, int], None]


@dataclass
class TrainResult:
    """What :func:`train_task_model` produced."""

    model: TaskModel
    output: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    resumed_epochs: int = 0
    resumed_steps: int = 0
    train_size: int = 0
    dev_size: int = 0
    init_from: dict[str, Any] | None = None


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against target distributions (one-hot, soft or mixed labels)."""
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def mixup(
    embeddings: torch.Tensor, targets: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``lam * x + (1 - lam) * x[perm]`` for embeddings and label distributions alike."""
    mixed = lam * embeddings + (1.0 - lam) * embeddings[perm]
    mixed_targets = lam * targets + (1.0 - lam) * targets[perm]
    return mixed, mixed_targets


def _dataset_key(
    train: list[Record], dev: list[Record] | None, config: TrainConfig, init: str | None = None
) -> str:
    """The job's identity: settings, the encoder's content (not its path), the rows."""
    from augtool.core.hub import model_key

    def rows(records: list[Record] | None) -> list[Any]:
        return [(r.id, r.text, r.label, r.label_dist) for r in records or []]

    settings = {k: v for k, v in config_dict(config).items() if k not in ("encoder", "device")}
    return run_key(
        "train",
        settings=settings,
        encoder=model_key(config.encoder) if init is None else None,
        data=rows(train),
        dev=rows(dev),
        init=init,
    )


def build_task_model(
    config: TrainConfig, labels: list[str], init: InitModel | None = None
) -> tuple[TaskModel, bool]:
    """The model training starts from, and whether its folder must copy the encoder.

    Without ``init`` it is ``config.encoder`` with a fresh head over ``labels``. With it
    (``--init-from``), the saved model's encoder and head weights, its head shape and its
    label order (a superset of ``labels``); ``--encoder``, ``--pooling``, ``--max-length``,
    ``--head-hidden`` and ``--dropout`` then do not apply.
    """
    if init is not None:
        try:
            model = TaskModel.load(
                init.folder, device=config.device, batch_size=max(config.batch_size, 32)
            )
        except ModelLoadError as exc:  # damaged files: the message names the folder
            raise OptionError("init_from", str(exc)) from exc
        except AugtoolError as exc:
            raise OptionError("init_from", f"{init.given}: {exc}") from exc
        model.encoder_spec = {
            k: v for k, v in model.encoder_spec.items() if k not in ("path", "fingerprint")
        }
        model.train_config = config_dict(config)
        # A fine-tuned encoder lives in the init folder: copy it even when frozen now.
        return model, init.encoder_saved or not config.freeze_encoder
    encoder = load_encoder(
        config.encoder,
        device=config.device,
        dtype="float32",
        batch_size=max(config.batch_size, 32),
        max_length=config.max_length,
        pooling=config.pooling,
    )
    if not isinstance(encoder, TorchEncoder):
        raise AugtoolError(
            f"--encoder {config.encoder}: backend {encoder.backend!r} cannot be trained"
        )
    encoder.load()
    encoder_spec = {
        "name": encoder.name,
        "backend": encoder.backend,
        "max_length": config.max_length,
    }
    if getattr(encoder, "pooling", None):
        encoder_spec["pooling"] = encoder.pooling
    model = TaskModel(
        encoder,
        labels,
        head_hidden=config.head_hidden,
        dropout=config.dropout,
        encoder_spec=encoder_spec,
        train_config=config_dict(config),
    )
    return model, not config.freeze_encoder


class _Checkpointer:
    """Resume checkpoints in ``<out>.partial/checkpoint``; the newest complete one wins.

    A checkpoint is a folder ``step-<global step>``: the trained modules as safetensors and
    ``state.pt`` (optimizer, scheduler and RNG states: tensors and numbers only, loaded with
    ``weights_only=True``). It is written under a ``.tmp`` name, synced and renamed; only
    then does ``progress.json`` (replaced atomically) point to it, and only after that are
    older folders removed. A run killed at any moment, mid-write included, therefore leaves
    the previous checkpoint intact. The best dev epoch's weights go to ``best-<epoch>`` the
    same way; the folder the on-disk progress names is kept until a newer one replaces it.
    """

    def __init__(self, staging: Path, key: str) -> None:
        self.root = staging / CHECKPOINT_DIR
        self.key = key
        self.kept: set[str] = set()  # folders the progress.json on disk refers to

    def load_progress(self) -> dict[str, Any] | None:
        try:
            progress = json.loads((self.root / PROGRESS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if progress.get("run_key") != self.key or progress.get("format") != CHECKPOINT_FORMAT:
            return None
        needed = self._needed(progress)
        if not all((self.root / name).is_dir() for name in needed):
            return None
        self.kept = needed
        return progress

    @staticmethod
    def _needed(progress: dict[str, Any]) -> set[str]:
        needed = {progress["folder"]}
        if progress["best"].get("epoch") is not None:
            needed.add(_best_folder(progress["best"]["epoch"]))
        return needed

    def save(
        self,
        modules: dict[str, nn.Module],
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        progress: dict[str, Any],
        rng: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """A checkpoint at ``progress['epoch']`` after ``progress['step']`` of its steps."""
        name = f"step-{progress['global_step']}"
        if name in self.kept:  # this very position is already saved
            return
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng or {},
        }
        self._write(name, modules, state)
        progress = {**progress, "format": CHECKPOINT_FORMAT, **key_state(self.key), "folder": name}
        tmp = self.root / (PROGRESS_FILE + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(progress))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / PROGRESS_FILE)
        _fsync_dir(self.root)
        self.kept = self._needed(progress)
        self._clean()

    def restore(
        self,
        progress: dict[str, Any],
        modules: dict[str, nn.Module],
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
    ) -> dict[str, torch.Tensor]:
        """Load weights, optimizer and scheduler state; returns the saved RNG states."""
        from safetensors.torch import load_model

        folder = self.root / progress["folder"]
        with model_load_errors(folder, "checkpoint", hint="delete it to start over"):
            for name, module in modules.items():
                load_model(module, str(folder / f"{name}.safetensors"))
            state = torch.load(folder / STATE_FILE, weights_only=True)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        return state.get("rng") or {}

    def save_best(self, epoch: int, modules: dict[str, nn.Module]) -> None:
        name = _best_folder(epoch)
        if name not in self.kept:
            self._write(name, modules)
        self._clean(keep=name)

    def restore_best(self, epoch: int, modules: dict[str, nn.Module]) -> None:
        from safetensors.torch import load_model

        folder = self.root / _best_folder(epoch)
        with model_load_errors(folder, "checkpoint", hint="delete it to start over"):
            for name, module in modules.items():
                load_model(module, str(folder / f"{name}.safetensors"))

    def _write(
        self, name: str, modules: dict[str, nn.Module], state: dict[str, Any] | None = None
    ) -> None:
        from safetensors.torch import save_model

        final = self.root / name
        tmp = self.root / (name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for module_name, module in modules.items():
            save_model(module, str(tmp / f"{module_name}.safetensors"))
        if state is not None:
            torch.save(state, tmp / STATE_FILE)
        for path in tmp.iterdir():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(self.root)

    def _clean(self, keep: str | None = None) -> None:
        """Remove every folder but the ones on-disk progress needs and ``keep``."""
        for path in self.root.iterdir():
            if path.name == PROGRESS_FILE or path.name in self.kept or path.name == keep:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _best_folder(epoch: int) -> str:
    return f"best-{epoch}"


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _rng_states(device: str, order_gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The torch RNG states a step consumes: dropout (CPU and accelerator), batch order."""
    states = {"torch": torch.get_rng_state(), "order": order_gen.get_state()}
    if device.startswith("cuda"):
        states["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    elif device.startswith("mps"):
        states["mps"] = torch.mps.get_rng_state()
    return states


def _set_rng_states(
    states: dict[str, torch.Tensor], device: str, order_gen: torch.Generator
) -> None:
    torch.set_rng_state(states["torch"])
    order_gen.set_state(states["order"])
    if "cuda" in states and device.startswith("cuda"):
        torch.cuda.set_rng_state(states["cuda"], torch.device(device))
    elif "mps" in states and device.startswith("mps"):
        torch.mps.set_rng_state(states["mps"])


def train_task_model(
    train: list[Record],
    config: TrainConfig,
    output: str | Path,
    *,
    dev: list[Record] | None = None,
    overwrite: bool = False,
    reporter: Reporter = SILENT,
    on_epoch_end: EpochHook | None = None,
    on_step_end: StepHook | None = None,
    checkpoint_seconds: float = 60.0,
) -> TrainResult:
    """Train on ``train`` and save the model folder at ``output``.

    Work goes to ``<output>.partial`` and is renamed at the end. With
    ``checkpoint_seconds`` > 0, a checkpoint is written after the first optimizer step (or
    epoch end) at which that many seconds have passed since the last one, mid-epoch
    included; with 0, after every epoch and never mid-epoch. Rerunning the same job on the
    same data resumes from the newest checkpoint, mid-epoch included, and ends with the
    model an uninterrupted run gives. ``on_step_end(epoch, step)`` is called after every
    optimizer step (``step`` counts from 1 within the epoch), once any checkpoint due at
    that step is written; ``on_epoch_end(epoch, record)`` after every epoch.
    """
    if not checkpoint_seconds >= 0:  # the CLI checks it first; this guards the Python API
        raise OptionError("checkpoint_every", f"must be at least 0 (got {checkpoint_seconds:g})")
    output = Path(output)
    check_output_folder(output, overwrite=overwrite, marker=MODEL_FILE)
    if dev is None and config.dev_fraction > 0:
        train, dev = train_dev_split(train, config.dev_fraction, config.seed)
    labels = labels_of(train)
    init = resolve_init_model(config.init_from) if config.init_from else None
    if init is not None:
        init.require_labels(labels)
    if len(init.labels if init else labels) < 2:
        raise AugtoolError(
            f"training needs at least two labels, found {len(labels)}: "
            f"{', '.join(labels) or 'none'}"
        )
    unlabelled = [r.id for r in train if r.label is None and not r.label_dist]
    if unlabelled:
        raise AugtoolError(f'record "{unlabelled[0]}" has no label; training needs labels')

    dp = data_parallel(config.device)
    if not dp.main:
        reporter = SILENT  # rank 0 reports
    run_config = replace(config, device=dp.device_for(config.device)) if dp.active else config
    staging = output.with_name(output.name + ".partial")
    key = _dataset_key(train, dev, config, init.fingerprint if init else None)
    checkpointer = _Checkpointer(staging, key)
    progress_state = checkpointer.load_progress()
    set_seed(config.seed)
    model, save_encoder = build_task_model(run_config, labels, init)  # may fail: before output
    if dp.active:
        model.train_config = config_dict(config)  # as given, not this rank's device
    if dp.main:
        state_file = staging / CHECKPOINT_DIR / PROGRESS_FILE
        reset_staging(staging, state_file, key, resuming=progress_state is not None)
    dp.barrier()
    encoder = model.encoder
    device = encoder.device
    labels = model.labels
    trainable = not config.freeze_encoder
    modules: dict[str, nn.Module] = {"head": model.head}
    if trainable:
        modules["encoder"] = encoder.module
    else:
        encoder.module.requires_grad_(False)

    texts = [r.text or "" for r in train]
    # Targets and frozen embeddings stay on the host; each micro-batch's rows move over.
    targets = torch.tensor([r.target(labels) for r in train], dtype=torch.float32)
    frozen_embeddings = None
    if not trainable:
        advance = reporter.task("embedding training texts", len(texts))
        with dp.main_first():  # rank 0 fills the embedding cache, the others read it
            frozen_embeddings = torch.as_tensor(encoder.encode(texts, progress=advance))

    param_groups = [{"params": list(model.head.parameters()), "lr": config.head_lr}]
    if trainable:
        param_groups.append({"params": list(encoder.module.parameters()), "lr": config.lr})
    optimizer = torch.optim.AdamW(param_groups, weight_decay=config.weight_decay)
    step_rows = config.batch_size * config.grad_accum  # rows per optimizer step
    steps_per_epoch = math.ceil(len(texts) / step_rows)
    dp.announce(reporter, step_rows)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_ratio * total_steps)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": None, "epoch": None}
    bad_epochs = 0
    start_epoch, start_step, start_loss = 1, 0, 0.0
    saved_rng: dict[str, Any] | None = None
    if progress_state is not None:
        rng_tensors = checkpointer.restore(progress_state, modules, optimizer, scheduler)
        history = progress_state["history"]
        best = progress_state["best"]
        bad_epochs = progress_state["bad_epochs"]
        start_epoch, start_step = progress_state["epoch"], progress_state["step"]
        if start_step >= steps_per_epoch:
            reporter.log(f"resuming from epoch {start_epoch} of {config.epochs}")
            start_epoch, start_step = start_epoch + 1, 0
        else:
            start_loss = progress_state["epoch_loss"]
            saved_rng = _rank_rng(dp, rng_tensors, progress_state)
            reporter.log(
                f"resuming in epoch {start_epoch} of {config.epochs} "
                f"after step {start_step} of {steps_per_epoch}"
            )
    resumed_epochs = start_epoch - 1
    parameters = [p for group in param_groups for p in group["params"]]
    dp.broadcast_parameters(parameters)  # every rank starts from rank 0's weights

    use_amp = device.startswith("cuda") and config.dtype in ("auto", "bfloat16", "float16")
    amp_dtype = torch.float16 if config.dtype == "float16" else torch.bfloat16
    done_steps = resumed_steps = resumed_epochs * steps_per_epoch + start_step
    advance = reporter.task("training", total_steps, completed=done_steps)
    last_checkpoint = time.monotonic()
    stopped_early = False

    for epoch in range(start_epoch, config.epochs + 1):
        torch.manual_seed(config.seed * 1000 + epoch + dp.seed_offset())
        order_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        lambda_rng = np.random.default_rng([config.seed, epoch])
        order = torch.randperm(len(texts), generator=order_gen)
        first_step, epoch_loss = 0, 0.0
        if epoch == start_epoch and saved_rng is not None:
            # Mid-epoch resume: the same order, then the RNGs exactly where the checkpoint
            # left them; the batches already done are skipped.
            _set_rng_states(saved_rng, device, order_gen)
            lambda_rng.bit_generator.state = saved_rng["lambda"]
            first_step, epoch_loss = start_step, start_loss
        model.head.train()
        if trainable:
            encoder.module.train()
        for step in range(first_step + 1, steps_per_epoch + 1):
            index = order[(step - 1) * step_rows : step * step_rows]
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            # This rank's micro-batches; each loss is weighted by its share of the step's
            # rows, so the summed gradients are those of the mean over all of them.
            for micro in dp.micro_batches(index.tolist(), config.batch_size):
                batch_targets = targets[micro].to(device)
                amp = (
                    torch.autocast("cuda", dtype=amp_dtype) if use_amp else contextlib.nullcontext()
                )
                with amp:
                    if frozen_embeddings is not None:
                        embeddings = frozen_embeddings[micro].to(device)
                    else:
                        embeddings = encoder.forward(encoder.tokenize([texts[i] for i in micro]))
                    if config.mixup and len(micro) > 1:
                        lam = float(lambda_rng.beta(config.alpha, config.alpha))
                        perm = torch.randperm(len(micro), generator=order_gen).to(device)
                        embeddings, batch_targets = mixup(embeddings, batch_targets, lam, perm)
                    logits = model.head(embeddings.float())
                loss = soft_cross_entropy(logits, batch_targets)
                (loss * (len(micro) / len(index))).backward()
                step_loss += float(loss.detach()) * len(micro)
            dp.sum_gradients(parameters)
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            due = (
                checkpoint_seconds > 0
                and step < steps_per_epoch  # the epoch end writes its own checkpoint
                and time.monotonic() - last_checkpoint >= checkpoint_seconds
            )
            step_loss, due = dp.step_sync(step_loss, due)  # rank 0 decides for all
            epoch_loss += step_loss
            advance(1)
            done_steps += 1
            if due:
                ranks = dp.gather((_rng_states(device, order_gen), lambda_rng.bit_generator.state))
                if dp.main:
                    checkpointer.save(
                        modules,
                        optimizer,
                        scheduler,
                        {
                            "epoch": epoch,
                            "step": step,
                            "global_step": done_steps,
                            "epoch_loss": epoch_loss,
                            "lambda_rng": lambda_rng.bit_generator.state,
                            **_ranks_lambda(ranks),
                            "history": history,
                            "best": best,
                            "bad_epochs": bad_epochs,
                        },
                        _ranks_rng(ranks),
                    )
                last_checkpoint = time.monotonic()
            if on_step_end is not None:
                on_step_end(epoch, step)

        record: dict[str, Any] = {"epoch": epoch, "train_loss": round(epoch_loss / len(texts), 6)}
        if dev and dp.main:  # rank 0 scores the dev set; every rank follows its decision
            dev_metrics = _evaluate_dev(model, dev, trainable)
            record.update({f"dev_{k}": v for k, v in dev_metrics.items()})
            score = (dev_metrics["accuracy"], -dev_metrics["loss"])
            if best["score"] is None or tuple(score) > tuple(best["score"]):
                best = {"score": list(score), "epoch": epoch}
                bad_epochs = 0
                checkpointer.save_best(epoch, modules)
            else:
                bad_epochs += 1
        if dev:
            record, best, bad_epochs = dp.from_main((record, best, bad_epochs))
        history.append(record)
        reporter.log(_format_epoch(record, config.epochs))
        stopped_early = bool(dev) and config.patience > 0 and bad_epochs >= config.patience
        last_epoch = epoch == config.epochs or stopped_early
        if dp.main and not last_epoch and time.monotonic() - last_checkpoint >= checkpoint_seconds:
            checkpointer.save(
                modules,
                optimizer,
                scheduler,
                {
                    "epoch": epoch,
                    "step": steps_per_epoch,
                    "global_step": done_steps,
                    "history": history,
                    "best": best,
                    "bad_epochs": bad_epochs,
                },
            )
            last_checkpoint = time.monotonic()
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if stopped_early:
            reporter.log(f"early stopping: no dev improvement for {config.patience} epochs")
            break

    model.head.eval()
    encoder.module.eval()
    if dp.main:
        if dev and best["epoch"] is not None:
            checkpointer.restore_best(best["epoch"], modules)
        shutil.rmtree(staging / CHECKPOINT_DIR, ignore_errors=True)
        model.save(staging, encoder_trained=save_encoder)
        with (staging / "train_log.jsonl").open("w", encoding="utf-8") as handle:
            for record in history:
                handle.write(json.dumps(record) + "\n")
        publish_folder(staging, output)
    dp.barrier()  # the published model is there for every rank to load
    del model, optimizer, scheduler, frozen_embeddings
    trained = TaskModel.load(output, device=run_config.device)
    return TrainResult(
        model=trained,
        output=output,
        history=history,
        best_epoch=best["epoch"],
        resumed_epochs=resumed_epochs,
        resumed_steps=resumed_steps,
        train_size=len(train),
        dev_size=len(dev or []),
        init_from=init.describe() if init else None,
    )


def _ranks_rng(ranks: list[tuple[dict[str, torch.Tensor], Any]]) -> dict[str, torch.Tensor]:
    """Rank 0's RNG states as one process saves them, then rank r's as ``rank<r>.<name>``."""
    states = dict(ranks[0][0])
    for rank, (tensors, _) in enumerate(ranks[1:], start=1):
        states.update({f"rank{rank}.{name}": value for name, value in tensors.items()})
    return states


def _ranks_lambda(ranks: list[tuple[Any, dict[str, Any]]]) -> dict[str, Any]:
    """The other ranks' Mixup generator states (nothing in one process)."""
    return {"rank_lambda_rng": [state for _, state in ranks[1:]]} if len(ranks) > 1 else {}


def _rank_rng(
    dp: DataParallel, tensors: dict[str, torch.Tensor], progress: dict[str, Any]
) -> dict[str, Any]:
    """The RNG states this rank resumes from: its own when the checkpoint has them (saved
    by as many processes), rank 0's otherwise."""
    own = {
        name.split(".", 1)[1]: value
        for name, value in tensors.items()
        if name.startswith(f"rank{dp.rank}.")
    }
    lambdas = progress.get("rank_lambda_rng") or []
    if dp.rank and own and len(lambdas) >= dp.rank:
        return {**own, "lambda": lambdas[dp.rank - 1]}
    base = {name: value for name, value in tensors.items() if not name.startswith("rank")}
    return {**base, "lambda": progress["lambda_rng"]}


def _evaluate_dev(model: TaskModel, dev: list[Record], trainable: bool) -> dict[str, float]:
    texts = [r.text or "" for r in dev]
    if trainable:
        embeddings = np.concatenate(
            [model.encoder.encode_batch(texts[i : i + 64]) for i in range(0, len(texts), 64)]
        )
    else:
        embeddings = model.encoder.encode(texts)
    logits = model.logits_from_embeddings(embeddings)
    targets = np.asarray([r.target(model.labels) for r in dev], dtype=np.float64)
    log_probs = logits - logits.max(axis=1, keepdims=True)
    log_probs = log_probs - np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    loss = float(-(targets * log_probs).sum(axis=1).mean())
    gold = [model.labels[int(np.argmax(t))] for t in targets]
    predicted = [model.labels[int(i)] for i in logits.argmax(axis=1)]
    metrics = classification_metrics(gold, predicted, model.labels)
    return {
        "loss": round(loss, 6),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
    }


def _format_epoch(record: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['train_loss']:.4f}"]
    if "dev_accuracy" in record:
        parts.append(f"dev acc {record['dev_accuracy']:.4f}")
        parts.append(f"dev loss {record['dev_loss']:.4f}")
    return "  ".join(parts)
