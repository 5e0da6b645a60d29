"""Sentence encoder base classes.

A backend implements one method, :meth:`Encoder.encode_batch`; batching (length-sorted),
de-duplication, caching and progress live once in :meth:`Encoder.encode`. Backends that
can be fine-tuned (the task model does) derive from :class:`TorchEncoder` and expose
``tokenize`` and a differentiable ``forward``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from augtool.core.hub import (
    cache_root,
    folder_fingerprint,
    hub_snapshot,
    resolve_model_source,
)
from augtool.core.model_errors import model_load_errors

if TYPE_CHECKING:
    import torch

    from augtool.core.encoders.cache import EmbeddingCache

Progress = Callable[[int], None]


class Encoder(ABC):
    """Turns texts into fixed-size vectors."""

    backend: ClassVar[str] = ""
    #: What the model is called in error messages.
    kind: ClassVar[str] = "encoder"

    def __init__(
        self,
        name: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        max_length: int | None = None,
        cache: bool = True,
        cache_dir: str | Path | None = None,
        prefix: str = "",
    ) -> None:
        self.name = name
        #: Task prompt put before every text that :meth:`encode` embeds (psi(x) =
        #: encoder(prefix + x)); part of the fingerprint, so vectors and caches of
        #: different prefixes never mix.
        self.prefix = prefix
        self.source = resolve_model_source(name, self.kind)
        self.device_spec = device
        self.dtype_spec = dtype
        self.batch_size = batch_size
        self.max_length = max_length
        self.cache_enabled = cache
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "embeddings"
        self._fingerprint: str | None = None

    @abstractmethod
    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """Embed one batch; returns a float32 array of shape ``(len(texts), dim)``."""

    def settings(self) -> dict[str, Any]:
        """Everything besides the weights that changes the vectors (part of the fingerprint)."""
        found: dict[str, Any] = {"backend": self.backend, "max_length": self.max_length}
        if self.prefix:  # absent when empty: fingerprints without a prefix stay as they were
            found["prefix"] = self.prefix
        return found

    def local_folder(self) -> Path | None:
        """The folder the weights are read from, once known."""
        if Path(self.source).is_dir():
            return Path(self.source)
        return hub_snapshot(self.source)

    @property
    def fingerprint(self) -> str:
        """A hash of the model's files and settings: the embedding cache key."""
        if self._fingerprint is None:
            folder = self.local_folder()
            if folder is None:
                self.load()
                folder = self.local_folder()
            content = folder_fingerprint(folder) if folder is not None else f"hub:{self.source}"
            blob = json.dumps({"content": content, **self.settings()}, sort_keys=True)
            self._fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:24]
        return self._fingerprint

    def load(self) -> None:  # noqa: B027 - optional hook; API backends have nothing to load
        """Load the model now (backends load lazily, on first use)."""

    def describe(self) -> dict[str, Any]:
        """Provenance: name, resolved source and fingerprint."""
        return {
            "name": self.name,
            "source": self.source,
            "fingerprint": self.fingerprint,
            **self.settings(),
        }

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        progress: Progress | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` in their order.

        Identical texts are embedded once; cached vectors are reused; the rest are
        embedded longest-first in batches of ``batch_size`` and stored in the cache as
        they finish, so an interrupted run loses at most one batch. ``out`` may be a
        preallocated (e.g. memory-mapped) array to fill. The encoder's :attr:`prefix`, if
        any, is put before every text.
        """
        batch_size = batch_size or self.batch_size
        if self.prefix:
            texts = [self.prefix + text for text in texts]
        keys = [hashlib.sha256(text.encode("utf-8")).digest() for text in texts]
        multiplicity = Counter(keys)
        first_index: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            first_index.setdefault(key, index)
        cache = self._open_cache()
        try:
            vectors: dict[bytes, np.ndarray] = cache.get_many(list(multiplicity)) if cache else {}
            if progress is not None and vectors:
                progress(sum(multiplicity[key] for key in vectors))
            todo = [key for key in multiplicity if key not in vectors]
            todo.sort(key=lambda key: -len(texts[first_index[key]]))
            for start in range(0, len(todo), batch_size):
                batch_keys = todo[start : start + batch_size]
                batch = self.encode_batch([texts[first_index[key]] for key in batch_keys])
                batch = np.asarray(batch, dtype=np.float32)
                if cache is not None:
                    cache.put_many(batch_keys, batch)
                vectors.update(zip(batch_keys, batch, strict=True))
                if progress is not None:
                    progress(sum(multiplicity[key] for key in batch_keys))
        finally:
            if cache is not None:
                cache.close()
        if not texts:
            return out if out is not None else np.zeros((0, 0), dtype=np.float32)
        dim = len(next(iter(vectors.values())))
        if out is None:
            out = np.empty((len(texts), dim), dtype=np.float32)
        elif out.shape != (len(texts), dim):
            raise ValueError(f"output array has shape {out.shape}, expected {(len(texts), dim)}")
        for index, key in enumerate(keys):
            out[index] = vectors[key]
        return out

    def cached_count(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` (counting repeats) :meth:`encode` would take from the
        embedding cache rather than embed; 0 with the cache off. Reads no vectors."""
        cache = self._open_cache() if texts else None
        if cache is None:
            return 0
        keys = [hashlib.sha256((self.prefix + text).encode("utf-8")).digest() for text in texts]
        try:
            found = cache.cached_keys(keys)
        finally:
            cache.close()
        return sum(1 for key in keys if key in found)

    def _open_cache(self) -> EmbeddingCache | None:
        if not self.cache_enabled:
            return None
        from augtool.core.encoders.cache import EmbeddingCache

        return EmbeddingCache(self.cache_dir, self.fingerprint)


class TorchEncoder(Encoder):
    """An encoder backed by a torch module that the task model can fine-tune."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._module: torch.nn.Module | None = None
        self.device = ""

    @property
    def module(self) -> torch.nn.Module:
        """The underlying torch module (loaded on first access)."""
        self.load()
        assert self._module is not None
        return self._module

    def load(self) -> None:
        if self._module is not None:
            return
        from augtool.core.device import resolve_device, resolve_dtype
        from augtool.core.hub import quiet_transformers

        quiet_transformers()
        self.device = resolve_device(self.device_spec)
        dtype = resolve_dtype(self.dtype_spec, self.device)
        with model_load_errors(self.name, "encoder"):
            module = self._load_module()
        module.to(device=self.device, dtype=dtype)
        module.eval()
        self._module = module

    @abstractmethod
    def _load_module(self) -> torch.nn.Module:
        """Build the torch module from :attr:`source` (on CPU, float32)."""

    @abstractmethod
    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        """Model inputs for a batch of texts, on the encoder's device."""

    @abstractmethod
    def forward(self, features: dict[str, Any]) -> torch.Tensor:
        """Pooled sentence embeddings, differentiable (used for fine-tuning)."""

    @abstractmethod
    def save(self, folder: str | Path) -> None:
        """Save weights (safetensors) and tokenizer so the folder reloads with this backend."""

    @property
    @abstractmethod
    def dimension(self) -> int:
        """Size of the sentence embedding."""

    @abstractmethod
    def token_states(self, features: dict[str, Any]) -> torch.Tensor:
        """Contextual token embeddings, ``(batch, tokens, dim)``, before pooling."""

    @property
    @abstractmethod
    def special_token_ids(self) -> list[int]:
        """Token ids of the tokenizer's special tokens ([CLS], [SEP], padding...)."""

    def token_embeddings(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's contextual token embeddings (special tokens dropped), in batches.

        Used where tokens are aligned across texts (CTC preservation in TopEx).
        """
        import torch

        module = self.module
        was_training = module.training
        module.eval()
        out: list[np.ndarray] = []
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), self.batch_size):
                    features = self.tokenize(texts[start : start + self.batch_size])
                    states = self.token_states(features).float()
                    ids = features["input_ids"]
                    special = torch.tensor(self.special_token_ids, device=ids.device)
                    keep = features["attention_mask"].bool() & ~torch.isin(ids, special)
                    out.extend(states[i][keep[i]].cpu().numpy() for i in range(len(states)))
        finally:
            module.train(was_training)
        return out

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        module = self.module
        was_training = module.training
        module.eval()
        try:
            with torch.inference_mode():
                embeddings = self.forward(self.tokenize(texts))
        finally:
            module.train(was_training)
        return embeddings.float().cpu().numpy()


def move_to(features: dict[str, Any], device: str) -> dict[str, Any]:
    """Move the tensors of a feature dict to ``device``, leaving other values alone."""
    return {
        key: value.to(device) if hasattr(value, "to") else value for key, value in features.items()
    }
