"""Training the adaptor: minimise L_GEN with the encoder and the LM frozen.

Batch order is drawn from ``(seed, epoch)``, so a run resumed from a checkpoint continues
exactly where the interrupted one stopped. Checkpoints (adaptor weights as safetensors,
optimizer state, progress) are written every ``save_every`` steps and at each epoch end.
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
) -> dict[str, Any]:
    """Train ``model.adaptor`` on ``(texts, embeddings)``; returns progress (losses).

    ``max_minutes`` stops training once that much time is spent (resumed runs included).
    """
    device = model.lm.device
    vectors = torch.as_tensor(embeddings, dtype=torch.float32, device=device)
    optimizer = torch.optim.Adam(model.adaptor.parameters(), lr=lr)
    checkpoint = Checkpoint(checkpoint_dir, run_key)
    progress: dict[str, Any] = {"step": 0, "epoch": 0, "index": 0, "history": [], "seconds": 0.0}
    saved = checkpoint.load()
    if saved is not None:
        checkpoint.restore({"adaptor": model.adaptor}, optimizer, device=str(model.lm.device))
        progress = {name: saved.get(name, default) for name, default in progress.items()}
        reporter.log(f"resuming adaptor training at step {progress['step']}")
    steps_per_epoch = math.ceil(len(texts) / batch_size)
    advance = reporter.task(
        "training adaptor", steps_per_epoch * epochs, completed=progress["step"]
    )
    budget = TimeBudget(max_minutes, progress["seconds"])

    def save_checkpoint() -> None:
        progress["seconds"] = budget.spent
        checkpoint.save({"adaptor": model.adaptor}, optimizer, progress)

    running, count = 0.0, 0
    model.adaptor.train()
    stopped = budget.exhausted()
    for epoch in range(progress["epoch"], epochs):
        if stopped:
            break
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(texts), generator=generator).tolist()
        start_index = progress["index"] if epoch == progress["epoch"] else 0
        for batch_index in range(start_index, steps_per_epoch):
            if stopped:
                break
            rows = order[batch_index * batch_size : (batch_index + 1) * batch_size]
            soft = model.adaptor(vectors[rows])
            loss = model.lm.loss(soft, [texts[i] for i in rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.adaptor.parameters(), 1.0)
            optimizer.step()
            value = float(loss.detach())
            running, count = running + value, count + 1
            progress.update(step=progress["step"] + 1, epoch=epoch, index=batch_index + 1)
            advance(1)
            if on_step is not None:
                on_step(progress["step"], value)
            if save_every and progress["step"] % save_every == 0:
                save_checkpoint()
            stopped = budget.exhausted()
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
