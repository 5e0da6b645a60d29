"""Shared fixtures: tiny random models built once per session from real configs, copied
per test; an isolated embedding cache; paths to the example and shared datasets."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tiny_models import build_encoders, build_tiny_llama

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


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module of tiny models: more threads only add
    synchronisation, and OpenMP threads crawl on a busy machine. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_encoders(tmp_path_factory.mktemp("tiny-models"))


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


@pytest.fixture(scope="session")
def keyword_task_model(tmp_path_factory: pytest.TempPathFactory, tiny_model_store) -> Path:
    """A tiny task model (``augtool train``) trained a few seconds on the keyword task."""
    from cli_helpers import run_cli

    root = tmp_path_factory.mktemp("keyword-model")
    train = write_jsonl(root / "train.jsonl", keyword_rows(12, seed=1, prefix="tr"))
    model = root / "model"
    result = run_cli(
        "train", train, "-o", model, "--encoder", tiny_model_store["st"],
        "--epochs", 10, "--lr", 1e-3, "--head-lr", 1e-2, "--batch-size", 8,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return model


@pytest.fixture(scope="session")
def tiny_llama_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")


@pytest.fixture
def tiny_llama(tiny_llama_store: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny chat Llama."""
    return Path(shutil.copytree(tiny_llama_store, tmp_path / "tiny-llama"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def transformers_server(tiny_llama_store: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real `transformers serve` (OpenAI-compatible) on 127.0.0.1 over the tiny Llama."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    hub_cache = tmp_path_factory.mktemp("hf-hub-cache")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HOME": str(hub_cache.parent / "hf-home"),
    }
    log = (tmp_path_factory.mktemp("serve-log") / "serve.log").open("w")
    command = [
        sys.executable,
        "-m",
        "transformers.cli.transformers",
        "serve",
        str(tiny_llama_store),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            raise RuntimeError(f"transformers serve did not start; see {log.name}")
        time.sleep(0.5)
    yield {"base_url": f"{base}/v1", "model": str(tiny_llama_store)}
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MarianMT model (real MarianConfig, SentencePiece vocab built here)."""
    from tiny_models import example_texts

    from augtool.testing.tiny_marian import build_tiny_marian

    return build_tiny_marian(tmp_path_factory.mktemp("tiny-marian") / "marian", example_texts())
