"""LLM backends behind ``scheme:model`` specs, the papers' prompts, and a response cache.

``load_llm("openai:gpt-4o-mini", base_url=...)`` or ``load_llm("hf:./my-model")``.
Third-party backends register with ``LLMS.register("name", MyBackend)``.
"""

from __future__ import annotations

from typing import Any

from augtool.core.generation.base import LLM, RequestBudget, RequestBudgetExhausted, ScoringLLM
from augtool.core.generation.params import Failure, GenerationParams, OptionScore, Prompt
from augtool.core.registry import Registry, UnknownNameError
from augtool.errors import OptionError

LLMS: Registry[type[LLM]] = Registry("LLM backend")
LLMS.register("openai", "augtool.core.generation.openai_backend:OpenAIBackend")
LLMS.register("hf", "augtool.core.generation.hf_backend:HFBackend", aliases=("transformers",))


def parse_llm_spec(spec: str) -> tuple[str, str]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; the scheme is required."""
    scheme, sep, model = spec.partition(":")
    if not sep or not model.strip():
        raise OptionError(
            "llm", f"{spec!r} needs a backend prefix: hf:<model id or path> or openai:<model>"
        )
    try:
        return LLMS.canonical(scheme), model
    except UnknownNameError as exc:
        raise OptionError("llm", f"{spec}: {exc}") from exc


#: Config fields that configure a backend (each config has the ones that apply to it).
BACKEND_OPTIONS = (
    "base_url",
    "api_key_env",
    "concurrency",
    "rpm",
    "timeout",
    "max_retries",
    "device",
    "dtype",
    "device_map",
    "load_in_4bit",
    "batch_size",
    "cache",
)


#: Options that change how an LLM job runs, not what it produces: left out of run keys.
OPERATIONAL_OPTIONS = frozenset(
    {
        "concurrency",
        "rpm",
        "timeout",
        "max_retries",
        "batch_size",
        "cache",
        "max_requests",
        "api_key_env",
        "device",
        "device_map",
    }
)


def backend_options(config: Any) -> dict[str, Any]:
    """The backend keyword arguments of a command's config (for :func:`load_llm`)."""
    return {name: getattr(config, name) for name in BACKEND_OPTIONS if hasattr(config, name)}


def load_llm(spec: str, **options: Any) -> LLM:
    """Build a backend from its spec; options a backend does not use are ignored."""
    scheme, model = parse_llm_spec(spec)
    return LLMS.get(scheme)(model, **options)


__all__ = [
    "BACKEND_OPTIONS",
    "OPERATIONAL_OPTIONS",
    "backend_options",
    "LLM",
    "LLMS",
    "Failure",
    "GenerationParams",
    "OptionScore",
    "Prompt",
    "RequestBudget",
    "RequestBudgetExhausted",
    "ScoringLLM",
    "load_llm",
    "parse_llm_spec",
]
