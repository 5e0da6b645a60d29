"""The task model: encoder + MLP head, trained with (soft) cross-entropy and optional Mixup.

Import the pieces from their modules (``augtool.core.taskmodel.train`` etc.); this package
stays import-light so that ``augtool --help`` does not load torch.
"""

from __future__ import annotations

from augtool.core.taskmodel.config import TrainConfig

__all__ = ["TrainConfig"]
