"""The JSONL reader: schema, field mapping and one-line errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_jsonl

from augtool.data import FieldMap, Record, RecordSpec, Rejected, iter_records, read_records
from augtool.errors import DataError

LABELLED = RecordSpec(require_label=True)


def test_reads_canonical_fields_and_keeps_unknown_ones(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "a", "text": "hello", "label": "x", "source": "web"},
            {
                "id": "b",
                "text": "premise",
                "text_pair": "hypothesis",
                "label": "y",
                "label_dist": {"x": 1, "y": 3},
                "aug": {"method": "eda"},
            },
        ],
    )
    first, second = read_records(path)
    assert first == Record(id="a", text="hello", label="x", extra={"source": "web"})
    assert first.to_dict() == {"id": "a", "text": "hello", "label": "x", "source": "web"}
    assert second.text_pair == "hypothesis"
    assert second.label_dist == {"x": 0.25, "y": 0.75}
    assert second.aug == {"method": "eda"}
    assert second.target(["x", "y"]) == [0.25, 0.75]
    assert first.target(["x", "y"]) == [1.0, 0.0]


def test_field_mapping_reads_and_writes_the_users_schema(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "why?", "category": "DESC"}])
    fields = FieldMap(text="question", label="category")
    (record,) = read_records(path, RecordSpec(fields=fields, require_label=True))
    assert (record.text, record.label) == ("why?", "DESC")
    assert record.to_dict(fields) == {"id": "q-1", "question": "why?", "category": "DESC"}


def test_missing_ids_are_derived_from_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": "a"}, "", {"text": "b"}])
    assert [r.id for r in read_records(path)] == ["train-1", "train-3"]


def test_integer_labels_become_strings_and_instruction_fields_are_kept(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"text": "good", "label": 1},
            {"instruction": "Add", "input": "2 and 3", "output": "5"},
        ],
    )
    first, second = read_records(path, RecordSpec(require_text=False))
    assert first.label == "1"
    assert (second.instruction, second.input, second.output) == ("Add", "2 and 3", "5")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "caf\xc3\xa9"}\n')
    assert read_records(path)[0].text == "café"


@pytest.mark.parametrize(
    ("line", "spec", "message"),
    [
        ('{"text": "ok", ', RecordSpec(), "invalid JSON"),
        ('["a list"]', RecordSpec(), "expected a JSON object, got array"),
        ('{"label": "x"}', RecordSpec(), 'missing field "text"'),
        ('{"text": 42}', RecordSpec(), 'field "text" must be a string, got number'),
        ('{"text": null}', RecordSpec(), 'field "text" must be a string, got null'),
        ('{"text": "   "}', RecordSpec(), 'field "text" is empty'),
        ('{"text": "a"}', LABELLED, 'missing field "label"'),
        ('{"text": "a", "label": null}', LABELLED, 'field "label" is null'),
        ('{"text": "a", "label": ["x"]}', RecordSpec(), 'field "label" must be a string'),
        ('{"text": "a", "label": true}', RecordSpec(), 'field "label" must be a string'),
        ('{"text": "a", "label_dist": {"x": -1}}', RecordSpec(), "non-negative"),
        ('{"text": "a", "label_dist": {"x": 0}}', RecordSpec(), "no positive weight"),
        ('{"text": "a", "id": 1.5}', RecordSpec(), 'field "id" must be a string'),
        ('{"text": "a", "aug": "eda"}', RecordSpec(), 'field "aug" must be an object'),
        (
            '{"text": "a", "label": "zzz"}',
            RecordSpec(known_labels=frozenset({"x", "y"})),
            'unknown label "zzz" (known labels: x, y)',
        ),
    ],
)
def test_bad_rows_name_file_and_line(
    tmp_path: Path, line: str, spec: RecordSpec, message: str
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"text": "fine", "label": "x"}', line])
    with pytest.raises(DataError) as caught:
        read_records(path, spec)
    assert caught.value.line == 2
    assert str(caught.value).startswith(f"{path}:2: ")
    assert message in str(caught.value)


def test_invalid_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r":2: not valid UTF-8"):
        read_records(path)


def test_duplicate_ids_are_rejected_within_and_across_files(tmp_path: Path) -> None:
    one = write_jsonl(tmp_path / "one.jsonl", [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(DataError, match=r'one.jsonl:2: duplicate id "a" \(first seen at line 1\)'):
        read_records(one)
    two = write_jsonl(tmp_path / "two.jsonl", [{"id": "b", "text": "x"}])
    three = write_jsonl(tmp_path / "three.jsonl", [{"id": "b", "text": "y"}])
    with pytest.raises(DataError, match=r"three.jsonl:1: duplicate id \"b\".*two.jsonl:1"):
        read_records([two, three])


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: no records"):
        read_records(empty)
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        read_records(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="is a directory"):
        read_records(tmp_path)


def test_skip_invalid_collects_rejects_and_keeps_good_rows(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"id": "a", "text": "good"},
            "{oops",
            {"id": "b", "text": ""},
            {"id": "a", "text": "dup"},
            {"id": "c", "text": "fine"},
        ],
    )
    rejects: list[Rejected] = []
    records = read_records(path, rejects=rejects)
    assert [r.id for r in records] == ["a", "c"]
    assert [(r.line, r.raw) for r in rejects] == [
        (2, "{oops"),
        (3, '{"id": "b", "text": ""}'),
        (4, '{"id": "a", "text": "dup"}'),
    ]
    assert rejects[0].to_dict()["file"] == str(path)


def test_a_file_with_only_invalid_rows_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "allbad.jsonl", ["{", "}"])
    with pytest.raises(DataError, match="no valid records \\(2 rows rejected\\)"):
        read_records(path, rejects=[])


def test_iter_records_streams(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"text": f"t{i}"} for i in range(3)] + ["{bad"])
    stream = iter_records(path)
    assert next(stream).text == "t0"  # the bad line further down has not been read yet
