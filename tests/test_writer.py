"""Outputs: never clobbered, written to <out>.partial, resumed without duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import read_jsonl

from augtool.data import JsonlWriter, Record, build_meta, make_aug, write_meta
from augtool.data.writer import write_rejects
from augtool.errors import AugtoolError, OutputExistsError


def rows(n: int, start: int = 0) -> list[Record]:
    return [Record(id=f"r{i}", text=f"text {i}") for i in range(start, start + n)]


def test_output_appears_only_on_commit(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.jsonl"
    writer = JsonlWriter(out, run_key="k")
    writer.write(rows(2))
    assert not out.exists()
    assert len(writer.partial.read_text().splitlines()) == 2
    writer.commit()
    assert [r["id"] for r in read_jsonl(out)] == ["r0", "r1"]
    assert not writer.partial.exists() and not writer.state_path.exists()


def test_interrupted_job_resumes_with_exactly_the_missing_rows(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = JsonlWriter(out, run_key="job")
    first.write(rows(3))
    first.close()  # the process dies here
    with first.partial.open("a") as handle:
        handle.write('{"id": "r3", "te')  # a line cut short by the crash

    second = JsonlWriter(out, run_key="job")
    assert second.done_ids == {"r0", "r1", "r2"}
    second.write(r for r in rows(5) if r.id not in second.done_ids)
    second.commit()
    assert [r["id"] for r in read_jsonl(out)] == ["r0", "r1", "r2", "r3", "r4"]


def test_partial_output_of_a_different_job_is_discarded(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    old = JsonlWriter(out, run_key="old-config")
    old.write(rows(2))
    old.close()
    new = JsonlWriter(out, run_key="new-config")
    assert new.discarded_partial and not new.done_ids
    new.write(rows(1, start=7))
    new.commit()
    assert [r["id"] for r in read_jsonl(out)] == ["r7"]


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        JsonlWriter(out, run_key="k")
    assert out.read_text() == "precious\n"
    writer = JsonlWriter(out, run_key="k", overwrite=True)
    assert out.read_text() == "precious\n"  # untouched until the new file is complete
    writer.write(rows(1))
    writer.commit()
    assert read_jsonl(out)[0]["id"] == "r0"


def test_inputs_are_never_overwritten(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "x"}\n')
    with pytest.raises(AugtoolError, match="is also an input"):
        JsonlWriter(source, run_key="k", overwrite=True, inputs=[source])


def test_meta_sidecar_and_rejects(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("")
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "x"}\n')
    meta_path = write_meta(
        out, build_meta("demo", config={"k": 1}, inputs=[source], seed=3, counts={"rows": 1})
    )
    meta = json.loads(meta_path.read_text())
    assert meta_path.name == "out.jsonl.meta.json"
    assert meta["command"] == "demo" and meta["seed"] == 3 and meta["config"] == {"k": 1}
    assert meta["inputs"][0]["sha256"] and meta["environment"]["augtool"]
    from augtool.data import Rejected

    rejects_path = write_rejects(out, [Rejected(str(source), 4, "bad", "{")])
    assert rejects_path.name == "out.jsonl.rejects.jsonl"
    assert read_jsonl(rejects_path) == [
        {"file": str(source), "line": 4, "error": "bad", "raw": "{"}
    ]
    assert write_rejects(out, []) is None


def test_make_aug_records_provenance() -> None:
    aug = make_aug("eda", ["p1"], seed=5, ops=["sr"], prompt_id=None)
    assert aug["method"] == "eda" and aug["parents"] == ["p1"] and aug["seed"] == 5
    assert aug["ops"] == ["sr"] and "prompt_id" not in aug and aug["augtool"]
