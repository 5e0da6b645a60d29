"""A training checkpoint folder: module weights (safetensors), optimizer state and a
progress record, replaced atomically and tied to one job by its run key."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from augtool.data.writer import key_state

PROGRESS_FILE = "progress.json"
OPTIMIZER_FILE = "optimizer.pt"


class Checkpoint:
    """The newest checkpoint of a job in ``folder``; one of another job is ignored."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key

    def load(self) -> dict[str, Any] | None:
        """The saved progress record, or None when there is none for this job."""
        try:
            state = json.loads((self.folder / PROGRESS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if state.get("run_key") == self.key else None

    def save(
        self,
        modules: Mapping[str, torch.nn.Module],
        optimizer: torch.optim.Optimizer,
        progress: dict[str, Any],
    ) -> None:
        """Write ``<name>.safetensors`` per module, the optimizer and ``progress``."""
        from safetensors.torch import save_model

        staging = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name, module in modules.items():
            save_model(module, str(staging / f"{name}.safetensors"))
        torch.save(optimizer.state_dict(), staging / OPTIMIZER_FILE)
        (staging / PROGRESS_FILE).write_text(
            json.dumps({**progress, **key_state(self.key)}), encoding="utf-8"
        )
        shutil.rmtree(self.folder, ignore_errors=True)
        os.replace(staging, self.folder)

    def restore(
        self,
        modules: Mapping[str, torch.nn.Module],
        optimizer: torch.optim.Optimizer,
        device: str = "cpu",
    ) -> None:
        """Load the saved weights into ``modules`` and the optimizer state.

        A damaged checkpoint is one :class:`~augtool.errors.ModelError` line that says
        how to start over.
        """
        from safetensors.torch import load_model

        from augtool.core.model_errors import model_load_errors

        with model_load_errors(self.folder, "checkpoint", hint="delete it to start over"):
            for name, module in modules.items():
                weights = self.folder / f"{name}.safetensors"
                with model_load_errors(weights, "weights"):
                    load_model(module, str(weights), device=device)
            with model_load_errors(self.folder / OPTIMIZER_FILE, "optimizer state"):
                optimizer.load_state_dict(
                    torch.load(self.folder / OPTIMIZER_FILE, weights_only=True)
                )
