"""A tiny T5 for trying ``augtool pinr train-decoder`` offline (and for the tests).

python -m augtool.testing.tiny_t5 runs/tiny-t5 --texts examples/data/intents-train.jsonl
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def build_tiny_t5(
    folder: str | Path,
    texts: Sequence[str],
    *,
    d_model: int = 32,
    layers: int = 2,
    heads: int = 2,
    vocab_size: int = 800,
) -> Path:
    """A tiny random T5ForConditionalGeneration (a real ``T5Config``, shrunk) with a
    byte-level BPE tokenizer trained on ``texts``, saved to ``folder``: a seq2seq model
    for the embedding-to-text decoder, built without hub access."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    from augtool.core.hub import quiet_transformers

    quiet_transformers()
    folder = Path(folder)
    tokenizer_model = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer_model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer_model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer_model.train_from_iterator(list(texts) * 3, trainer)
    # Like T5's own tokenizer: "</s>" closes every encoded text.
    tokenizer_model.post_processor = processors.TemplateProcessing(
        single="$A </s>",
        pair="$A </s> $B </s>",
        special_tokens=[("</s>", tokenizer_model.token_to_id("</s>"))],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_model, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_ff=2 * d_model,
        d_kv=max(16, d_model // heads),
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.decoder_start_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m augtool.testing.tiny_t5 OUT --texts data.jsonl``: a tiny random T5 whose
    tokenizer is trained on the texts; ``pinr train-decoder --seq2seq OUT`` trains it."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output", type=Path, help="Folder to write the model to.")
    parser.add_argument("--texts", type=Path, required=True, help="JSONL with a 'text' field.")
    args = parser.parse_args(argv)
    texts = [
        json.loads(line)["text"]
        for line in args.texts.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    build_tiny_t5(args.output, texts)
    print(f"wrote a tiny T5 to {args.output}")


if __name__ == "__main__":
    main()
