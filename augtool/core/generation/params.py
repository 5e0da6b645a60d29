"""Generation parameters and per-request results shared by every LLM backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: A prompt is chat messages (``[{"role": "user", "content": ...}]``) or plain text.
Message = dict[str, str]
Prompt = list[Message] | str


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings. ``temperature=0`` means greedy decoding."""

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Failure:
    """A request that still failed after its retries (written to ``<out>.failed.jsonl``)."""

    error: str

    def __bool__(self) -> bool:  # a failure is never a usable reply
        return False


@dataclass(frozen=True)
class OptionScore:
    """Log-likelihood of one option as the continuation of a prompt."""

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        """Per-token log-likelihood (length-normalised)."""
        return self.logprob / max(1, self.tokens)


def as_messages(prompt: Prompt) -> list[Message]:
    """Chat messages for a prompt given as plain text or as messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(message) for message in prompt]


def as_text(prompt: Prompt) -> str:
    """Plain text for models without a chat template: the messages' contents, in order."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(message["content"] for message in prompt)
