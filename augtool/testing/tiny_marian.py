"""Build a small MarianMT translation model from a real ``MarianConfig`` with SentencePiece
vocabularies trained on the spot: for tests and benchmarks without a model hub."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path


def build_tiny_marian(
    folder: str | Path,
    texts: Sequence[str],
    *,
    d_model: int = 32,
    layers: int = 1,
    vocab_size: int = 300,
    seed: int = 0,
) -> Path:
    """Save a random Marian model and its tokenizer (``source.spm``, ``target.spm``,
    ``vocab.json``) to ``folder``. Its translations are random; its plumbing is real."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    from augtool.core.hub import quiet_transformers

    quiet_transformers()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        prefix = Path(scratch) / "spm"
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            hard_vocab_limit=False,
            unk_id=1,
            bos_id=-1,
            eos_id=0,
            pad_id=-1,
            minloglevel=2,
        )
        processor = spm.SentencePieceProcessor(model_file=f"{prefix}.model")
        pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        vocab = {"</s>": 0, "<unk>": 1}
        for piece in pieces:
            vocab.setdefault(piece, len(vocab))
        vocab["<pad>"] = len(vocab)
        (Path(scratch) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        tokenizer = MarianTokenizer(
            source_spm=f"{prefix}.model",
            target_spm=f"{prefix}.model",
            vocab=str(Path(scratch) / "vocab.json"),
        )
        tokenizer.save_pretrained(folder)
    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_position_embeddings=512,
        pad_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        decoder_start_token_id=pad,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    model.generation_config.max_length = 64
    model.save_pretrained(folder)
    return folder


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m augtool.testing.tiny_marian OUT --texts data.jsonl``: a random Marian
    model for trying ``augtool bt --engine marian`` offline (its translations are noise)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output", type=Path, help="Folder to write the model to.")
    parser.add_argument(
        "--texts",
        type=Path,
        required=True,
        help="JSONL file whose 'text' fields train the SentencePiece vocab.",
    )
    args = parser.parse_args(argv)
    texts = [
        json.loads(line)["text"]
        for line in args.texts.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    build_tiny_marian(args.output, texts)
    print(f"wrote a tiny random Marian model to {args.output}")


if __name__ == "__main__":
    main()
