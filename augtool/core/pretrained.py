"""Loading transformers models the way a large model needs: in its dtype, on its device.

``from_pretrained`` without a dtype materialises the weights in float32 under
transformers 4.x (an 8B model is ~32 GB of host memory) and, without a device map, whole
on the host before ``.to(device)``. Every language-model and seq2seq load in augtool goes
through :func:`load_pretrained` instead, which passes

- ``dtype``: bfloat16 on CUDA devices that support it, float32 elsewhere, ``--dtype`` wins;
- ``low_cpu_mem_usage=True`` (4.x; it is the only behaviour in 5.x);
- ``device_map``: ``{"": device}`` on an accelerator, so weights go straight to it;
  ``--device-map auto`` to spread a model larger than one GPU over all of them;
- ``quantization_config`` for ``--load-in-4bit`` (bitsandbytes NF4, CUDA only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from augtool.errors import OptionError

if TYPE_CHECKING:
    import torch

DEVICE_MAPS = ("auto",)
#: Config fields that choose where a model runs, not what it computes: left out of run keys.
RUNTIME_ONLY = ("device", "device_map")


@dataclass(frozen=True)
class LoadPlan:
    """How one model is loaded: resolved device and dtype, device map, quantisation."""

    device: str
    dtype: torch.dtype
    device_map: str | None = None
    load_in_4bit: bool = False

    @property
    def places_itself(self) -> bool:
        """True when ``from_pretrained`` puts the weights on their device(s) itself, so the
        model must not be moved afterwards (a device map or quantised weights)."""
        return self.device_map is not None or self.load_in_4bit or self.device != "cpu"


def check_device_map(device_map: str | None) -> str | None:
    """``None`` (one device) or ``"auto"``; anything else is an option error."""
    if device_map is None or device_map == "":
        return None
    value = device_map.strip().lower()
    if value not in DEVICE_MAPS:
        raise OptionError(
            "device-map", f"unknown device map {device_map!r} (use auto, or leave it unset)"
        )
    return value


def plan_load(
    device: str = "auto",
    dtype: str = "auto",
    *,
    device_map: str | None = None,
    load_in_4bit: bool = False,
) -> LoadPlan:
    """Resolve the user's ``--device``/``--dtype``/``--device-map``/``--load-in-4bit``."""
    import torch

    from augtool.core.device import resolve_device, resolve_dtype

    resolved = resolve_device(device)
    local_rank = os.environ.get("LOCAL_RANK")
    if resolved == "cuda" and local_rank is not None and local_rank.isdigit():
        resolved = f"cuda:{local_rank}"  # one process per GPU (accelerate launch, torchrun)
    device_map = check_device_map(device_map)
    if (device_map or load_in_4bit) and not resolved.startswith("cuda"):
        option = "load-in-4bit" if load_in_4bit else "device-map"
        raise OptionError(option, f"needs a CUDA device (this run uses {resolved})")
    if load_in_4bit:
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise OptionError("load-in-4bit", "needs bitsandbytes: pip install 'augtool[gpu]'")
    chosen = resolve_dtype(dtype, resolved)
    if load_in_4bit and chosen == torch.float32:
        chosen = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return LoadPlan(resolved, chosen, device_map, load_in_4bit)


def _dtype_keyword() -> str:
    """``dtype`` from transformers 4.56 on, ``torch_dtype`` before."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def pretrained_kwargs(plan: LoadPlan) -> dict[str, Any]:
    """The keyword arguments of ``from_pretrained`` that carry out ``plan``."""
    kwargs: dict[str, Any] = {_dtype_keyword(): plan.dtype, "low_cpu_mem_usage": True}
    if plan.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=plan.dtype,
            bnb_4bit_use_double_quant=True,
        )
    if plan.device_map is not None:
        kwargs["device_map"] = plan.device_map
    elif plan.device != "cpu":
        kwargs["device_map"] = {"": plan.device}
    return kwargs


def load_pretrained(auto_class: Any, source: str, plan: LoadPlan, **extra: Any) -> Any:
    """``auto_class.from_pretrained(source)`` per ``plan``, in eval mode, on its device."""
    model = auto_class.from_pretrained(source, **pretrained_kwargs(plan), **extra)
    if not plan.places_itself:
        model.to(device=plan.device, dtype=plan.dtype)
    model.eval()
    return model


def input_device(model: Any) -> str:
    """Where a (possibly device-mapped) model takes its inputs: its embeddings' device."""
    return str(model.get_input_embeddings().weight.device)


def lm_load_options(config: Any) -> dict[str, Any]:
    """``device_map`` and ``load_in_4bit`` of a command's config (absent ones off)."""
    return {
        "device_map": getattr(config, "device_map", None),
        "load_in_4bit": bool(getattr(config, "load_in_4bit", False)),
    }


def plan_record(plan: LoadPlan) -> dict[str, Any]:
    """The load plan as provenance (dtype by name)."""
    return {
        "device": plan.device,
        "dtype": str(plan.dtype).removeprefix("torch."),
        "device_map": plan.device_map,
        "load_in_4bit": plan.load_in_4bit,
    }


def device_map_field() -> Any:
    """The ``--device-map`` config field (one definition for every config that loads an LM)."""
    from dataclasses import field

    return field(
        default=None,
        metadata={
            "help": "hf: 'auto' spreads an LM larger than one GPU over every visible GPU "
            "(accelerate's device map); unset loads it whole on --device."
        },
    )


def load_in_4bit_field() -> Any:
    """The ``--load-in-4bit`` config field."""
    from dataclasses import field

    return field(
        default=False,
        metadata={
            "help": "hf: load the LM's weights in 4-bit NF4 (bitsandbytes, CUDA only; "
            "pip install 'augtool[gpu]')."
        },
    )
