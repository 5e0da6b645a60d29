"""Sentence encoders, looked up by backend name.

``load_encoder("sentence-transformers/all-MiniLM-L6-v2")`` picks a backend automatically;
``load_encoder("hf:bert-base-uncased", pooling="cls")`` names one. Third-party backends
register with ``ENCODERS.register("name", MyEncoder)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from augtool.core.encoders.base import Encoder, TorchEncoder
from augtool.core.hub import DEFAULT_ENCODER
from augtool.core.registry import Registry

ENCODERS: Registry[type[Encoder]] = Registry("encoder backend")
ENCODERS.register(
    "sentence-transformers",
    "augtool.core.encoders.sentence_transformers:SentenceTransformerEncoder",
    aliases=("st",),
)
ENCODERS.register("hf", "augtool.core.encoders.huggingface:HFEncoder", aliases=("transformers",))


def parse_encoder_spec(spec: str) -> tuple[str | None, str]:
    """Split ``backend:name`` into its parts; a plain name has backend ``None``.

    The prefix counts as a backend only when it names one (``C:/models`` stays a path).
    """
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in ENCODERS:
        return ENCODERS.canonical(prefix), rest
    return None, spec


def detect_backend(source: str) -> str:
    """``sentence-transformers`` for ST folders and hub ids, ``hf`` for plain HF folders."""
    folder = Path(source)
    if folder.is_dir() and not (folder / "modules.json").is_file():
        return "hf"
    return "sentence-transformers"


def load_encoder(spec: str = DEFAULT_ENCODER, *, backend: str = "auto", **kwargs: Any) -> Encoder:
    """Build an encoder from a ``[backend:]name-or-path`` spec; loading is lazy."""
    prefixed, name = parse_encoder_spec(spec)
    chosen = prefixed or (None if backend == "auto" else ENCODERS.canonical(backend))
    if chosen is None:
        from augtool.core.hub import resolve_model_source

        chosen = detect_backend(resolve_model_source(name, "encoder"))
    cls = ENCODERS.get(chosen)
    if chosen != "hf":
        kwargs.pop("pooling", None)
        kwargs.pop("normalize", None)
    return cls(name, **kwargs)


__all__ = [
    "DEFAULT_ENCODER",
    "ENCODERS",
    "Encoder",
    "TorchEncoder",
    "detect_backend",
    "load_encoder",
    "parse_encoder_spec",
]
