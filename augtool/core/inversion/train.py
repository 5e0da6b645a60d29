"""Training the adaptor: minimise L_GEN with the encoder and the LM frozen.

Batch order is drawn from ``(seed, epoch)``, so a run resumed from a checkpoint continues
exactly where the interrupted one stopped. Checkpoints (adaptor weights as safetensors,
optimizer state, progress) are written every ``save_every`` steps and at each epoch end.

An optimizer step trains on ``batch_size x grad_accum`` sentences, in micro-batches of at
most ``batch_size`` whose token-mean losses are weighted by their target tokens, so the
step's gradient is that of the token mean over all its sentences. Under ``accelerate
launch`` the processes share each step's sentences and sum their gradients
(:mod:`augtool.core.distributed`); rank 0 alone writes checkpoints. The corpus
embeddings stay on the host; each micro-batch's rows move to the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augtool.core.budget import STOPPED_BY_BUDGET, TimeBudget
from augtool.core.checkpoint import Checkpoint
from augtool.core.distributed import data_parallel
from augtool.core.inversion.model import InversionModel
from augtool.core.progress import SILENT, Reporter

StepHook = Callable[[int, float], None]


def train_adaptor(
    model: InversionModel,
    texts: list[str],
    embeddings: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    checkpoint_dir: Path,
    run_key: str,
    save_every: int = 500,
    reporter: Reporter = SILENT,
    on_step: StepHook | None = None,
    max_minutes: float | None = None,
    grad_accum: int = 1,
) -> dict[str, Any]:
    """Train ``model.adaptor`` on ``(texts, embeddings)``; returns progress (losses).

    ``max_minutes`` stops training once that much time is spent (resumed runs included).
    Each optimizer step trains on ``batch_size x grad_accum`` sentences.
    """
    device = model.lm.device
    dp = data_parallel(str(device))
    if not dp.main:
        reporter = SILENT
    parameters = list(model.adaptor.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    checkpoint = Checkpoint(checkpoint_dir, run_key)
    progress: dict[str, Any] = {"step": 0, "epoch": 0, "index": 0, "history": [], "seconds": 0.0}
    saved = checkpoint.load()
    if saved is not None:
        checkpoint.restore({"adaptor": model.adaptor}, optimizer, device=str(model.lm.device))
        progress = {name: saved.get(name, default) for name, default in progress.items()}
        reporter.log(f"resuming adaptor training at step {progress['step']}")
    dp.broadcast_parameters(parameters)  # every rank starts from rank 0's weights
    step_rows = batch_size * grad_accum  # sentences per optimizer step
    steps_per_epoch = math.ceil(len(texts) / step_rows)
    dp.announce(reporter, step_rows, "sentences")
    advance = reporter.task(
        "training adaptor", steps_per_epoch * epochs, completed=progress["step"]
    )
    budget = TimeBudget(max_minutes, progress["seconds"])

    def save_checkpoint() -> None:
        progress["seconds"] = budget.spent
        if dp.main:
            checkpoint.save({"adaptor": model.adaptor}, optimizer, progress)

    running, count = 0.0, 0
    model.adaptor.train()
    stopped = dp.from_main(budget.exhausted())
    for epoch in range(progress["epoch"], epochs):
        if stopped:
            break
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(texts), generator=generator).tolist()
        start_index = progress["index"] if epoch == progress["epoch"] else 0
        for batch_index in range(start_index, steps_per_epoch):
            if stopped:
                break
            rows = order[batch_index * step_rows : (batch_index + 1) * step_rows]
            micros = dp.micro_batches(rows, batch_size)
            # Target tokens per micro-batch and in the whole step (every rank's): the
            # weights that make the summed gradients those of the step's token mean.
            if len(micros) == 1 and not dp.active:
                tokens, total = [1], 1  # one micro-batch: the loss as it is
            else:
                tokens = [sum(map(len, model.lm.target_ids([texts[i] for i in m]))) for m in micros]
                total = max(dp.sum_int(sum(tokens)), 1)
            optimizer.zero_grad(set_to_none=True)
            value = 0.0
            for micro, count_tokens in zip(micros, tokens, strict=True):
                batch = np.asarray(embeddings[micro], dtype=np.float32)
                soft = model.adaptor(torch.as_tensor(batch, device=device))
                loss = model.lm.loss(soft, [texts[i] for i in micro])
                weight = count_tokens / total
                (loss * weight).backward()
                value += float(loss.detach()) * weight
            dp.sum_gradients(parameters)
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            value, out_of_time = dp.step_sync(value, budget.exhausted())
            running, count = running + value, count + 1
            progress.update(step=progress["step"] + 1, epoch=epoch, index=batch_index + 1)
            advance(1)
            if on_step is not None:
                on_step(progress["step"], value)
            if save_every and progress["step"] % save_every == 0:
                save_checkpoint()
            stopped = out_of_time if dp.active else budget.exhausted()
        average = running / max(count, 1)
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": round(average, 6)}
        if stopped and (progress["index"] < steps_per_epoch or epoch + 1 < epochs):
            record["stopped"] = STOPPED_BY_BUDGET
        if count:
            progress["history"].append(record)
            reporter.log(
                f"adaptor epoch {epoch + 1}/{epochs}  loss {average:.4f}"
                + (f"  (stopped: {STOPPED_BY_BUDGET})" if "stopped" in record else "")
            )
        elif stopped and progress["history"]:  # the last recorded epoch was the last
            progress["history"][-1]["stopped"] = STOPPED_BY_BUDGET
        running, count = 0.0, 0
        progress.update(epoch=epochs if stopped else epoch + 1, index=0)
        save_checkpoint()
    model.adaptor.eval()
    return progress
