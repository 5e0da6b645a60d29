"""Back-translation end to end: Apertium (real, offline) and a tiny random Marian model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl

from augtool.core.translation.apertium import (
    ApertiumBackTranslator,
    ApertiumPipe,
    deformat,
    reformat,
)
from augtool.errors import OptionError
from augtool.methods.backtranslation import BTConfig

needs_apertium = pytest.mark.skipif(
    shutil.which("lt-proc") is None,
    reason="Apertium is not installed: apt-get install apertium apertium-en-es (CI does)",
)


def test_deformat_and_reformat_round_trip_reserved_characters() -> None:
    text = "a [b] ^c$ d/e @f <g> {h} back\\slash"
    assert deformat(text) == "a \\[b\\] \\^c\\$ d\\/e \\@f \\<g\\> \\{h\\} back\\\\slash[][\n]"
    assert reformat(deformat(text)) == text
    assert reformat(deformat("multi\nline  text")) == "multi line text"


@needs_apertium
def test_one_pipeline_serves_many_batches() -> None:
    pipe = ApertiumPipe("eng-spa")
    try:
        assert pipe.translate(["Where is my parcel ?"]) == ["Dónde es mi paquete ?"]
        # Texts never bleed into each other, even without final punctuation.
        alone, cafe = pipe.translate(["Denver", "Café naïve"])
        assert alone == "Denver" and "cafetería" in cafe.lower() and "Denver" not in cafe
        batch = [f"The parcel number {i} arrived late ." for i in range(300)]
        out = pipe.translate(batch)
        assert len(out) == 300 and all("paquete" in text for text in out)
        assert pipe.translate(["Price [x] a/b"])[0].count("[") == 1
        pids = [p.pid for p in pipe.processes]
        pipe.translate(["Once more ."])
        assert [p.pid for p in pipe.processes] == pids and all(
            p.poll() is None for p in pipe.processes
        )
    finally:
        pipe.close()


@needs_apertium
def test_cli_apertium_back_translation(tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "a", "text": "Where is my parcel? It was due on Monday.", "label": "shipping"},
            {"id": "b", "text": "Please refund the double charge on my card.", "label": "billing"},
            {"id": "c", "text": "Denver", "label": "x"},
            {"id": "d", "text": "Café naïve – 東京 [beta] a/b", "label": "x"},
        ],
    )
    out = tmp_path / "bt.jsonl"
    result = run_cli("bt", data, "-o", out, "--engine", "apertium")
    assert result.exit_code == 0, result.stderr
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert "c-bt" not in rows  # identical to its input: dropped by default
    assert "identical to their input dropped" in result.stdout
    first = rows["a-bt"]
    assert (
        first["label"] == "shipping"
        and first["text"] != "Where is my parcel? It was due on Monday."
    )
    assert first["aug"] == {
        **first["aug"],
        "method": "bt",
        "parents": ["a"],
        "engine": "apertium",
        "forward": "eng-spa",
        "backward": "spa-eng",
        "pivot": "spa",
    }
    assert "*" not in json.dumps(list(rows.values()))  # unknown-word marks dropped (-u)

    kept = tmp_path / "kept.jsonl"
    result = run_cli(
        "bt", data, "-o", kept, "--engine", "apertium", "--keep-identical", "--batch-size", 1
    )
    assert result.exit_code == 0, result.stderr
    kept_rows = {r["id"]: r for r in read_jsonl(kept)}
    assert kept_rows["c-bt"]["aug"]["identical"] is True
    assert {k: v["text"] for k, v in kept_rows.items() if k != "c-bt"} == {
        k: v["text"] for k, v in rows.items()
    }


@needs_apertium
def test_cli_apertium_resumes(tmp_path: Path, monkeypatch) -> None:

    rows = [{"id": f"r{i}", "text": f"The parcel number {i} arrived broken ."} for i in range(600)]
    data = write_jsonl(tmp_path / "many.jsonl", rows)
    full = tmp_path / "full.jsonl"
    assert run_cli("bt", data, "-o", full, "--engine", "apertium").exit_code == 0
    _interrupt_and_resume(data, full, tmp_path / "out.jsonl", monkeypatch, resumed=256)


# "known" has an ambiguity class ({ADJ,VLEXPP}) that eng-spa's tagger model lacks; apertium
# 3.8 then overwrites the tagger's open class in place, and in one long-lived tagger every
# later sentence could be tagged differently ("... Billie bad ?" instead of "... means ?").
POISON = "What is D.B. Cooper known for ?"
CONTEXT_SENSITIVE = {
    "What does the name Billie mean ?": "What the name Billie means ?",
    "What is the origin of head lice ?": "What is the origin of boss lice ?",
    "What European city do Nicois live in ?": "Which European city Nicois lives in ?",
}


def _alone(text: str) -> str:
    """The round trip of ``text`` by engines that have translated nothing else."""
    engine = ApertiumBackTranslator()
    try:
        return engine.round_trip([text], [0])[0]
    finally:
        engine.close()


@needs_apertium
def test_a_sentence_translates_the_same_alone_and_after_any_other() -> None:
    targets = list(CONTEXT_SENSITIVE)
    alone = [_alone(text) for text in targets]
    assert alone == list(CONTEXT_SENSITIVE.values())
    engine = ApertiumBackTranslator(batch_size=2)
    try:
        forward = engine.pipes["forward"]
        stages = [p.pid for p in forward.head.processes + forward.tail.processes]
        restarts = forward.tagger.restarts
        assert engine.round_trip([POISON, *targets], [0] * 4)[1:] == alone
        assert forward.tagger.restarts > restarts  # the tagger that met "known" was replaced
        assert [p.pid for p in forward.head.processes + forward.tail.processes] == stages
        # In other batches, other orders, after other sentences: still the same.
        assert engine.round_trip([*targets[::-1], POISON], [0] * 4)[:3] == alone[::-1]
        assert engine.round_trip(targets, [0] * 3) == alone
        assert forward.translate([POISON, "What do Mormons believe"])[1] == "Qué Mormons cree"
        assert forward.translate(["What do Mormons believe"]) == ["Qué Mormons cree"]
    finally:
        engine.close()


@needs_apertium
def test_the_tagger_takes_a_unit_larger_than_a_pipe_buffer() -> None:
    pipe = ApertiumPipe("eng-spa")
    try:
        long, short = pipe.translate([" ".join(["The parcel is known ."] * 4000), "Denver"])
        assert long.count("paquete") == 4000 and short == "Denver"
    finally:
        pipe.close()


@needs_apertium
def test_cli_apertium_output_does_not_depend_on_other_rows_or_a_resume(
    tmp_path: Path, monkeypatch
) -> None:
    from augtool.cli import bt as bt_module

    texts = [POISON, *CONTEXT_SENSITIVE]
    data = write_jsonl(
        tmp_path / "d.jsonl", [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
    )
    monkeypatch.setattr(bt_module, "_CHUNK", 2)  # rows r0 r1 | r2 r3: a resume after r1
    full = tmp_path / "full.jsonl"
    assert run_cli("bt", data, "-o", full, "--engine", "apertium").exit_code == 0
    rows = {r["id"]: r["text"] for r in read_jsonl(full)}
    assert [rows[f"r{i}-bt"] for i in (1, 2, 3)] == list(CONTEXT_SENSITIVE.values())
    for i, text in enumerate(texts[1:], start=1):  # each row alone through the CLI
        one = write_jsonl(tmp_path / f"one{i}.jsonl", [{"id": f"r{i}", "text": text}])
        out = tmp_path / f"one{i}.out.jsonl"
        assert run_cli("bt", one, "-o", out, "--engine", "apertium").exit_code == 0
        assert read_jsonl(out)[0]["text"] == rows[f"r{i}-bt"]

    _interrupt_and_resume(data, full, tmp_path / "out.jsonl", monkeypatch, resumed=2)


@needs_apertium
def test_missing_apertium_mode(tmp_path: Path) -> None:
    result = run_cli(
        "bt",
        EXAMPLES / "intents-train.jsonl",
        "-o",
        tmp_path / "x.jsonl",
        "--engine",
        "apertium",
        "--pivot",
        "klingon",
    )
    assert_one_line_error(
        result, "Apertium mode 'eng-klingon' is not installed", "eng-spa", "apt-get install"
    )


def test_cli_marian_plumbing_batching_and_provenance(tiny_marian: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", read_jsonl(EXAMPLES / "intents-train.jsonl")[:6])
    model = [
        "--engine",
        "marian",
        "--forward-model",
        tiny_marian,
        "--backward-model",
        tiny_marian,
        "--max-length",
        16,
        "--keep-identical",
    ]
    batched, single = tmp_path / "b.jsonl", tmp_path / "s.jsonl"
    result = run_cli("bt", data, "-o", batched, *model, "--batch-size", 4)
    assert result.exit_code == 0, result.stderr
    assert run_cli("bt", data, "-o", single, *model, "--batch-size", 1).exit_code == 0
    rows = read_jsonl(batched)
    assert [r["id"] for r in rows] == [f"intents-train-{i}-bt" for i in range(6)]
    assert [r["text"] for r in rows] == [r["text"] for r in read_jsonl(single)]
    aug = rows[0]["aug"]
    assert aug["engine"] == "marian" and aug["forward"] == str(tiny_marian)
    assert aug["num_beams"] == 1 and aug["pivot"] == "de"

    sampled = tmp_path / "n2.jsonl"
    args = (*model, "--sample", "--n", 2, "--seed", 3)
    assert run_cli("bt", data, "-o", sampled, *args, "--batch-size", 5).exit_code == 0
    again = tmp_path / "n2b.jsonl"
    assert run_cli("bt", data, "-o", again, *args, "--batch-size", 2).exit_code == 0
    assert sampled.read_text() == again.read_text()
    ids = [r["id"] for r in read_jsonl(sampled)]
    assert ids[:2] == ["intents-train-0-bt0", "intents-train-0-bt1"] and len(ids) == 12


def test_marian_truncates_long_texts_with_a_warning(tiny_marian: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "long.jsonl", [{"id": "l", "text": "parcel " * 200}])
    result = run_cli(
        "bt",
        data,
        "-o",
        tmp_path / "o.jsonl",
        "--engine",
        "marian",
        "--forward-model",
        tiny_marian,
        "--backward-model",
        tiny_marian,
        "--max-length",
        16,
        "--keep-identical",
    )
    assert result.exit_code == 0, result.stderr
    assert "longer than 16 tokens were truncated" in result.stderr


def test_bt_bad_input(tmp_path: Path) -> None:
    source = EXAMPLES / "intents-train.jsonl"
    result = run_cli(
        "bt",
        source,
        "-o",
        tmp_path / "x.jsonl",
        "--engine",
        "marian",
        "--forward-model",
        "./no/such/model",
    )
    assert_one_line_error(result, "'./no/such/model'", "no such folder")
    assert_one_line_error(
        run_cli("bt", source, "-o", tmp_path / "x.jsonl", "--engine", "google"),
        "--engine",
        "unknown engine 'google'",
    )
    with pytest.raises(OptionError, match="--n: more than one back-translation per row needs"):
        BTConfig(engine="apertium", n=2)
    assert not (tmp_path / "x.jsonl").exists()


def _interrupt_and_resume(data: Path, full: Path, out: Path, monkeypatch, resumed: int) -> None:
    """Ctrl-C at the second write of `bt --engine apertium`, then the same command again:
    it resumes after ``resumed`` rows and ends byte-identical to the uninterrupted ``full``."""
    from augtool.data import writer as writer_module

    original = writer_module.JsonlWriter.write
    calls = {"n": 0}

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(writer_module.JsonlWriter, "write", interrupted)
        assert run_cli("bt", data, "-o", out, "--engine", "apertium").exit_code == 130
    result = run_cli("bt", data, "-o", out, "--engine", "apertium")
    assert result.exit_code == 0 and f"resuming: {resumed} rows already written" in result.stderr
    assert out.read_text() == full.read_text()
