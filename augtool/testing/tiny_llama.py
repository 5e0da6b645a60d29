"""Build a small chat Llama from a real ``LlamaConfig`` with a byte-level BPE tokenizer
trained on the spot: for tests and benchmarks on machines without a model hub."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eos|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_llama(
    folder: str | Path,
    texts: Sequence[str],
    *,
    hidden_size: int = 32,
    layers: int = 2,
    vocab_size: int = 600,
    train_steps: int = 150,
    seed: int = 0,
) -> Path:
    """Save a Llama with a chat template to ``folder``.

    With ``train_steps`` > 0 it is trained for that many steps to echo ``texts`` in chat
    form, so that it writes ordinary tokens rather than random special ones.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from augtool.core.hub import quiet_transformers

    quiet_transformers()
    folder = Path(folder)
    tokenizer_model = Tokenizer(models.BPE())
    tokenizer_model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer_model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer_model.train_from_iterator(list(texts) * 3, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_model,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if train_steps > 0:
        chats = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": text}, {"role": "assistant", "content": text}],
                tokenize=False,
            )
            for text in texts
        ]
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        model.train()
        for step in range(train_steps):
            batch = tokenizer(
                chats[(step * 16) % len(chats) :][:16],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=128,
            )
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            loss = model(**batch, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m augtool.testing.tiny_llama OUT --texts data.jsonl``: a toy chat model for
    trying the ``hf:`` and ``openai:`` paths offline (it writes plausible gibberish)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output", type=Path, help="Folder to write the model to.")
    parser.add_argument(
        "--texts",
        type=Path,
        required=True,
        help="JSONL file whose 'text' fields train the tokenizer and model.",
    )
    parser.add_argument("--steps", type=int, default=150, help="Training steps.")
    args = parser.parse_args(argv)
    texts = [
        json.loads(line)["text"]
        for line in args.texts.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    build_tiny_llama(args.output, texts, train_steps=args.steps)
    print(f"wrote a tiny chat Llama to {args.output}")


if __name__ == "__main__":
    main()
