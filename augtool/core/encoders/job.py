"""``augtool embed`` as a function: embed a dataset into ``.npy`` + ids for other tools."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from augtool.core.config import check
from augtool.core.device import DTYPES
from augtool.core.hub import DEFAULT_ENCODER, ENCODER_HELP, POOLING_HELP
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import Record
from augtool.data.writer import prepare_output, sidecar


@dataclass
class EmbedConfig:
    """Which encoder embeds the texts, and how."""

    encoder: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": ENCODER_HELP},
    )
    pooling: str | None = field(default=None, metadata={"help": POOLING_HELP})
    max_length: int | None = field(
        default=None, metadata={"help": "Truncate texts to this many tokens (model default)."}
    )
    batch_size: int = field(default=64, metadata={"help": "Texts per forward pass."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    dtype: str = field(
        default="auto", metadata={"help": "auto (bfloat16 on CUDA), float32, bfloat16, float16."}
    )
    cache: bool = field(
        default=True,
        metadata={"help": "Reuse and store vectors in the on-disk embedding cache."},
    )
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})

    def __post_init__(self) -> None:
        check(bool(self.encoder.strip()), "encoder", "must not be empty")
        check(self.batch_size >= 1, "batch_size", f"must be at least 1 (got {self.batch_size})")
        check(
            self.max_length is None or self.max_length >= 1,
            "max_length",
            f"must be at least 1 (got {self.max_length})",
        )
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")


def embed_records(
    records: list[Record],
    output: str | Path,
    config: EmbedConfig,
    *,
    overwrite: bool = False,
    inputs: list[Path] | None = None,
    reporter: Reporter = SILENT,
) -> dict[str, Any]:
    """Write ``output`` (float32 ``.npy``, rows in input order) and ``<output>.ids.json``.

    Vectors stream into a memory-mapped ``<output>.partial`` and land in the embedding
    cache batch by batch, so memory stays flat and an interrupted run resumes from the
    cache. Returns the encoder's description for provenance.
    """
    from augtool.core.encoders import load_encoder

    output = prepare_output(output, overwrite=overwrite, inputs=inputs or [])
    encoder = load_encoder(
        config.encoder,
        device=config.device,
        dtype=config.dtype,
        batch_size=config.batch_size,
        max_length=config.max_length,
        pooling=config.pooling,
        cache=config.cache,
    )
    texts = [record.text or "" for record in records]
    advance = reporter.task("embedding", len(texts))
    probe = encoder.encode(texts[:1])
    partial = sidecar(output, ".partial")
    array = np.lib.format.open_memmap(
        partial, mode="w+", dtype=np.float32, shape=(len(texts), probe.shape[1])
    )
    encoder.encode(texts, progress=advance, out=array)
    array.flush()
    del array
    os.replace(partial, output)
    ids_path = sidecar(output, ".ids.json")
    ids_path.write_text(json.dumps([record.id for record in records]), encoding="utf-8")
    return encoder.describe()
