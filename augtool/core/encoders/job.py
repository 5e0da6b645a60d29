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
from augtool.errors import OptionError


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


#: The one output format of ``augtool embed``.
NPY_SUFFIX = ".npy"


def check_output_name(output: str | Path, option: str = "--output") -> Path:
    """Refuse an output name that is not ``.npy``, before any work: embed writes a
    NumPy array, and a ``.jsonl`` (or any other) name would hide binary data behind it."""
    path = Path(output)
    if path.suffix.lower() != NPY_SUFFIX:
        raise OptionError(f"{option} {path}", "embed writes a NumPy array; use a .npy name")
    return path


class EmbedInterrupted(KeyboardInterrupt):
    """``embed_records`` was interrupted; says what is kept and how to resume.

    A ``KeyboardInterrupt``, so code that stops on Ctrl-C still stops.
    """

    def __init__(self, partial: Path, done: int, total: int, cached: bool) -> None:
        self.partial = partial
        self.done = done
        self.total = total
        self.cached = cached
        if cached:
            marker = f" ({partial} marks the unfinished run)" if partial.exists() else ""
            message = (
                f"interrupted after embedding {done} of {total} rows; they are kept in the "
                f"embedding cache{marker}: rerun the same command to resume"
            )
        else:
            message = (
                f"interrupted after embedding {done} of {total} rows; with the cache off "
                "(--no-cache) nothing is kept: rerunning the same command starts over"
            )
        super().__init__(message)


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

    Vectors land in the embedding cache batch by batch (memory stays flat) and are
    written into a memory-mapped ``<output>.partial``, renamed to ``output`` at the end.
    The cache is what makes an interrupted run resumable: a rerun takes the rows already
    embedded from it and embeds only the rest (``<output>.partial`` only marks the
    unfinished run; the rerun says how many rows it found). With ``config.cache`` off
    an interrupted run starts over. An interruption raises :class:`EmbedInterrupted`.
    Returns the encoder's description for provenance.
    """
    from augtool.core.encoders import load_encoder

    output = check_output_name(output)
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
    partial = sidecar(output, ".partial")
    if partial.exists():
        if config.cache:
            done = encoder.cached_count(texts)
            reporter.log(
                f"resuming an interrupted run ({partial}): {done} of {len(texts)} rows are "
                f"already embedded (in the embedding cache), {len(texts) - done} to go"
            )
        else:
            reporter.log(
                f"found {partial} from an interrupted run; with the cache off (--no-cache) "
                f"nothing was kept: embedding all {len(texts)} rows again"
            )
    embedded = [0]
    array = None
    try:
        # The first text loads the model (unless cached): a model that cannot load fails
        # here, before the progress bar starts.
        probe = encoder.encode(texts[:1])
        progress = reporter.task("embedding", len(texts))

        def advance(count: int) -> None:
            embedded[0] += count
            progress(count)

        array = np.lib.format.open_memmap(
            partial, mode="w+", dtype=np.float32, shape=(len(texts), probe.shape[1])
        )
        encoder.encode(texts, progress=advance, out=array)
        array.flush()
    except KeyboardInterrupt:
        del array
        if not config.cache:
            partial.unlink(missing_ok=True)  # nothing in it can be resumed
        raise EmbedInterrupted(partial, embedded[0], len(texts), config.cache) from None
    del array
    os.replace(partial, output)
    ids_path = sidecar(output, ".ids.json")
    ids_path.write_text(json.dumps([record.id for record in records]), encoding="utf-8")
    return encoder.describe()
