"""Device and dtype selection shared by every model-running path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from augtool.errors import OptionError

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(spec: str = "auto") -> str:
    """``auto`` picks cuda, then mps, then cpu; explicit choices are checked."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionError("device", f"{spec} requested but CUDA is not available here")
        if ":" in spec:
            index = spec.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise OptionError("device", f"{spec}: no such CUDA device")
        return spec
    if spec == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise OptionError("device", "mps requested but it is not available here")
        return spec
    if spec == "cpu":
        return spec
    raise OptionError("device", f"unknown device {spec!r} (use auto, cpu, cuda, cuda:N or mps)")


def resolve_dtype(spec: str, device: str) -> torch.dtype:
    """``auto`` is bfloat16 on CUDA devices that support it, float32 elsewhere."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec not in DTYPES:
        raise OptionError("dtype", f"unknown dtype {spec!r} (choose from {', '.join(DTYPES)})")
    if spec == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, spec)
