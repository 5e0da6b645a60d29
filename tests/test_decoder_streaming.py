"""Decoder training streams its corpus: texts indexed by byte offset and read a batch at a
time, embeddings computed once into a file in ``<output>.partial`` and reused on a rerun,
the same run key and the same weights as training from a list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_jsonl
from test_decoder import TEXTS, StopAt, config, weights
from tiny_models import build_tiny_t5

from augtool.core.inversion.decoder_train import EMBEDDINGS_FILE, _keys, _Texts, train_decoder
from augtool.data.corpus import index_corpus
from augtool.data.jsonl import RecordSpec, read_records
from augtool.data.provenance import run_key
from augtool.data.records import FieldMap
from augtool.data.vectors import VectorFile
from augtool.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny-t5") / "t5")


# --- the corpus index ---------------------------------------------------------------------


def test_duplicate_ids_are_rejected_as_read_records_rejects_them(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": "one"},
        {"text": "two"},  # id c-2 by its line
        {"id": "a", "text": "three"},
        {"id": "b", "text": ""},
        {"id": "c-2", "text": "five"},  # the id line 2 was given
        {"id": "b", "text": "six"},
        {"id": "a", "text": "seven"},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", rows)
    spec = RecordSpec(fields=FieldMap(text="text"))
    expected_rejects: list = []
    expected = [r.text for r in read_records(path, spec, rejects=expected_rejects)]
    rejects: list = []
    index = index_corpus(path, spec=spec, rejects=rejects, unique_ids=True)
    with index.open() as handle:
        assert index.read(handle, list(range(len(index)))) == expected == ["one", "two", "six"]
    assert [r.to_dict() for r in rejects] == [r.to_dict() for r in expected_rejects]
    with pytest.raises(DataError, match=r"c\.jsonl:3: .*duplicate id \"a\" \(first seen at line 1"):
        index_corpus(path, spec=RecordSpec(fields=FieldMap(text="text"), require_text=False),
                     unique_ids=True)  # fmt: skip
    with index.open() as handle:
        assert index.head(2).read(handle, [1]) == ["two"]
        assert index.subset([2, 0]).read(handle, [0, 1]) == ["six", "one"]


def test_streamed_run_key_is_the_run_key_of_the_list() -> None:
    class Encoder:
        fingerprint = "f" * 24

    settings = {"lr": 0.01, "prefix": "é: ", "seq2seq": None}
    texts = ['say "hi"', "naïve\nline", "x" * 5000] * 1000  # more than one chunk
    key, embedded = _keys(settings, Encoder(), _Texts(texts, None))
    assert key == run_key("decoder", settings, Encoder.fingerprint, texts)
    other, _ = _keys({**settings, "lr": 0.02}, Encoder(), _Texts(texts, None))
    assert other != key  # the embeddings do not depend on the learning rate
    assert _keys({**settings, "lr": 0.02}, Encoder(), _Texts(texts, None))[1] == embedded
    assert _keys(settings, Encoder(), _Texts(texts[:-1], None))[1] != embedded


# --- the vector file ----------------------------------------------------------------------


def test_vectors_are_written_in_chunks_resumed_and_read_back_by_row(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    store = VectorFile(tmp_path / "v.npy", 10, "key")
    assert store.done == 0
    store.write(0, data[:4])
    assert VectorFile(tmp_path / "v.npy", 10, "key").done == 4  # an interrupted fill
    assert VectorFile(tmp_path / "v.npy", 10, "other").done == 0  # of other texts
    assert VectorFile(tmp_path / "v.npy", 11, "key").done == 0  # of another row count
    with pytest.raises(ValueError, match="does not follow"):
        store.write(6, data[6:])
    store.write(4, data[4:])
    assert store.complete
    with store.reader() as vectors:
        assert np.array_equal(vectors.take([7, 0, 7]), data[[7, 0, 7]])
        assert np.array_equal(np.concatenate(list(vectors.blocks(3))), data)
    assert np.array_equal(np.load(tmp_path / "v.npy", mmap_mode="r"), data)
    with open(tmp_path / "v.npy", "r+b") as handle:  # cut short: not trusted
        handle.truncate(100)
    assert store.done == 0


# --- training -----------------------------------------------------------------------------


def test_training_from_an_index_matches_training_from_the_list(
    tiny_t5: Path, tiny_model_store: dict[str, Path], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": t} for t in TEXTS[:8]])
    cfg = config(tiny_t5, tiny_model_store["st"], epochs=2, batch_size=4, max_length=12)
    listed = train_decoder(TEXTS[:8], cfg, tmp_path / "listed")
    indexed = train_decoder(index_corpus(path), cfg, tmp_path / "indexed")
    assert indexed.history == listed.history
    ours, theirs = weights(tmp_path / "indexed"), weights(tmp_path / "listed")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert not (tmp_path / "indexed" / EMBEDDINGS_FILE).exists()  # not part of the decoder


def test_embeddings_are_reused_after_an_interruption_and_recomputed_for_other_texts(
    tiny_t5: Path, tiny_model_store: dict[str, Path], tmp_path: Path
) -> None:
    texts = TEXTS[:8]
    cfg = config(tiny_t5, tiny_model_store["st"], epochs=2, batch_size=4, max_length=12)
    whole = train_decoder(texts, cfg, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):  # before any checkpoint
        train_decoder(texts, cfg, tmp_path / "resumed", reporter=StopAt(1))
    partial = tmp_path / "resumed.partial"
    assert (partial / EMBEDDINGS_FILE).is_file()
    assert not (partial / "checkpoint").exists()
    again = StopAt(10**6)
    resumed = train_decoder(texts, cfg, tmp_path / "resumed", reporter=again)
    assert any(m.startswith("reusing 8 embedded training text") for m in again.messages)
    ours, theirs = weights(tmp_path / "resumed"), weights(tmp_path / "whole")
    assert resumed.history == whole.history
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)

    with pytest.raises(KeyboardInterrupt):
        train_decoder(texts, cfg, tmp_path / "other", reporter=StopAt(1))
    other = StopAt(10**6)
    train_decoder(texts[:7], cfg, tmp_path / "other", reporter=other)  # other texts
    assert not any(m.startswith("reusing") for m in other.messages)


def test_the_cli_trains_on_the_indexed_file_and_reports_its_rejects(
    tiny_t5: Path, tiny_model_store: dict[str, Path], tmp_path: Path
) -> None:
    from cli_helpers import assert_one_line_error, run_cli

    rows = [{"id": f"r{i}", "text": text} for i, text in enumerate(TEXTS[:6])]
    rows[2:2] = [{"id": "r0", "text": "again"}, {"id": "e", "text": " "}]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    out = tmp_path / "decoder"
    args = ("--seq2seq", tiny_t5, "--encoder", tiny_model_store["st"], "--epochs", 1)
    args += ("--batch-size", 4, "--num-tokens", 4, "--max-length", 12, "--device", "cpu")
    result = run_cli("pinr", "train-decoder", data, "-o", out, *args)
    assert_one_line_error(result, "d.jsonl:3", 'duplicate id "r0" (first seen at line 1)')
    result = run_cli(
        "pinr", "train-decoder", data, "-o", out, *args, "--skip-invalid", "--max-samples", 5
    )
    assert result.exit_code == 0, result.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["texts"] == 5
    rejected = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["error"]) for r in rejected] == [
        (3, 'duplicate id "r0" (first seen at line 1)'),
        (4, 'field "text" is empty'),
    ]
