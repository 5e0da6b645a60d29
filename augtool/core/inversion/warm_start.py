"""A decoder generator warm-started from the sentence encoder's own weights (bert2bert).

Rothe et al. (2020, "Leveraging Pre-trained Checkpoints for Sequence Generation Tasks")
build a seq2seq model from a BERT checkpoint: the encoder is the BERT, the decoder is the
same BERT made causal (``is_decoder``) with new cross-attention layers, its LM head tied
to its word embeddings. Built from the frozen sentence encoder's checkpoint, the
embedding decoder's generator starts from real language knowledge without any download:
the default encoder (all-MiniLM-L6-v2) is a 6-layer BERT.

The encoder's HF checkpoint is found without loading any weights: an ``hf:`` encoder's
folder is the checkpoint; a sentence-transformers folder names the folder of its
``Transformer`` module in ``modules.json`` (the root for most models).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augtool.core.encoders import Encoder
from augtool.errors import ModelError, OptionError

#: Encoder ``model_type`` values whose checkpoints transformers' ``EncoderDecoderModel``
#: can turn into a causal decoder with cross-attention (a ``*ForCausalLM`` that takes
#: ``add_cross_attention``).
WARM_START_TYPES = ("bert", "roberta", "xlm-roberta", "electra", "camembert")

_SEQ2SEQ_ROUTE = "pass --seq2seq MODEL (a T5-style seq2seq such as google-t5/t5-base) instead"


@dataclass(frozen=True)
class WarmStartSource:
    """The HF checkpoint inside an encoder that a warm-started generator is built from."""

    folder: Path
    model_type: str
    max_positions: int

    def describe(self, encoder: Encoder) -> dict[str, Any]:
        """How a decoder was initialised (kept in ``augtool_decoder.json``)."""
        return {
            "encoder": encoder.name,
            "source": str(self.folder),
            "fingerprint": encoder.fingerprint,
            "model_type": self.model_type,
        }


def transformer_folder(root: Path) -> Path | None:
    """The folder of a sentence-transformers model's ``Transformer`` module: ``root`` for
    a plain transformers folder, None for a sentence-transformers model without one."""
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return root
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        paths = [
            str(module.get("path", ""))
            for module in modules
            if str(module.get("type", "")).rsplit(".", 1)[-1] == "Transformer"
        ]
    except (ValueError, AttributeError, TypeError) as exc:
        raise ModelError(f"{modules_file}: unreadable ({exc})") from exc
    return root / paths[0] if paths else None


def warm_start_source(encoder: Encoder) -> WarmStartSource:
    """Find the encoder's HF checkpoint and check that it can warm-start a decoder.

    Reads only ``modules.json`` and ``config.json``: called before any weights load, so a
    wrong encoder fails in one line at once. An encoder known only by a hub id (not yet
    downloaded) is found after it has loaded.
    """
    name = encoder.name
    root = encoder.local_folder()
    if root is None:
        load = getattr(encoder, "load", None)
        if callable(load):
            load()  # downloads it into the hub cache, where local_folder() finds it
            root = encoder.local_folder()
    if root is None:
        raise OptionError(
            "init_from_encoder",
            f"encoder {name!r} has no local checkpoint to warm-start the decoder from; "
            + _SEQ2SEQ_ROUTE,
        )
    folder = transformer_folder(Path(root)) or Path(root)
    config_file = folder / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        model_type = str(config.get("model_type", ""))
    except (OSError, ValueError, AttributeError) as exc:
        raise OptionError(
            "init_from_encoder",
            f"encoder {name!r}: no readable transformers config.json in {folder} "
            f"({type(exc).__name__}); " + _SEQ2SEQ_ROUTE,
        ) from exc
    if model_type not in WARM_START_TYPES:
        raise OptionError(
            "init_from_encoder",
            f"encoder {name!r} is a {model_type or 'non-transformers'} model; the decoder "
            f"warm-starts only from BERT-family encoders ({', '.join(WARM_START_TYPES)}): "
            + _SEQ2SEQ_ROUTE,
        )
    return WarmStartSource(
        folder=folder,
        model_type=model_type,
        max_positions=int(config.get("max_position_embeddings", 512)),
    )


def build_warm_seq2seq(source: WarmStartSource, *, what: str = "encoder checkpoint") -> tuple:
    """``(model, tokenizer)``: an ``EncoderDecoderModel`` whose encoder and decoder are both
    loaded from ``source`` through ``from_pretrained`` (bert2bert, weights not shared), the
    decoder causal with new cross-attention and its LM head tied to its word embeddings.

    Generation starts at the tokenizer's ``[CLS]`` and ends at ``[SEP]`` (the tokenizer's
    ``eos_token`` is set to it, so that training targets end there too); ``[PAD]`` pads.
    Seed torch beforehand: the cross-attention weights are drawn at random.
    """
    from transformers import AutoTokenizer, EncoderDecoderModel

    from augtool.core.hub import loading, quiet_transformers

    quiet_transformers()
    path = str(source.folder)
    with loading(what, path):
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(
            path, path, decoder_tie_word_embeddings=True
        )
    start = tokenizer.cls_token_id
    end = tokenizer.sep_token_id
    pad = tokenizer.pad_token_id
    if start is None or end is None or pad is None:
        raise ModelError(
            f"{what} {path!r}: its tokenizer lacks a [CLS], [SEP] or [PAD] token; " + _SEQ2SEQ_ROUTE
        )
    if tokenizer.eos_token_id is None:
        tokenizer.eos_token = tokenizer.sep_token
    end = tokenizer.eos_token_id
    model.config.decoder_start_token_id = start
    model.config.pad_token_id = pad
    model.config.eos_token_id = end
    # Decoding reuses the self-attention keys and values of earlier steps (KV cache).
    model.config.decoder.use_cache = True
    model.decoder.config.use_cache = True
    generation = model.generation_config
    generation.use_cache = True
    generation.decoder_start_token_id = start
    generation.pad_token_id = pad
    generation.eos_token_id = end
    return model, tokenizer
