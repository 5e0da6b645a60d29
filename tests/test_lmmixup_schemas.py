"""LM-mixup's four further schemas (mcq, cs, tfq, paragraph): rows read and written,
render/parse round trips and parse failures, schema detection, ``lmmixup build`` through
the CLI (answers never degraded, deterministic whatever the row order), mixed-schema files
refused, and the format reward on each schema."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import read_jsonl, write_jsonl

from augtool.errors import DataError
from augtool.methods.lmmixup.degrade import MAIN_FIELD_ONLY, targets_of
from augtool.methods.lmmixup.mixture import read_mixture
from augtool.methods.lmmixup.rewards import format_reward
from augtool.methods.lmmixup.schema import (
    FIELDS,
    SCHEMAS,
    SPECS,
    TAGS,
    detect_schema,
    layout_of,
    mixup_prompt,
    parse_fields,
    read_samples,
    render_fields,
    sample_from_row,
)

pytestmark = pytest.mark.usefixtures("one_thread")

NEW = ("mcq", "cs", "tfq", "paragraph")

# Small hand-written samples, long enough for every degradation to show.
ROWS: dict[str, list[dict]] = {
    "mcq": [
        {
            "id": "m1",
            "question": "Which instrument does a weather station use to measure the "
            "pressure of the air around it during a storm?",
            "options": ["Barometer", "Thermometer", "Rain gauge", "Wind vane"],
            "answer": "a",
        },
        {
            "id": "m2",
            "question": "A baker sells twelve loaves every morning and eight every "
            "evening. How many loaves does the bakery sell in one full day?",
            "options": {"A": "Twelve loaves", "b": "Eight loaves", "C": "Twenty", "D": "Four"},
            "answer": "C",
        },
        {
            "id": "m3",
            "question": "Which of these animals spends the cold winter months asleep in a "
            "den until the spring weather returns to the forest?",
            "options": ["The brown bear", "The red fox", "The grey wolf", "The white hare"],
            "answer": "A",
        },
    ],
    "cs": [
        {
            "id": "c1",
            "category": "Local news",
            "statement": "The town council approved a new cycling lane along the river, "
            "which should open before the summer holidays begin next year.",
        },
        {
            "id": "c2",
            "category": "Gardening",
            "statement": "Tomato plants grown on a sunny balcony need regular watering "
            "and a sturdy support once the first green fruits appear.",
        },
        {
            "id": "c3",
            "category": "Cooking",
            "statement": "Letting bread dough rest in a warm kitchen for an hour makes "
            "the finished loaf lighter and gives it a softer crumb.",
        },
    ],
    "tfq": [
        {
            "id": "t1",
            "statement": "Water boils at a lower temperature on a high mountain than it "
            "does at the level of the sea on the same day.",
            "answer": True,
        },
        {
            "id": "t2",
            "statement": "Every spider builds a web to catch its food, and no spider ever "
            "hunts its prey by running after it on the ground.",
            "answer": "FALSE",
        },
        {
            "id": "t3",
            "statement": "The moon shines at night because it reflects the light that "
            "reaches it from the sun.",
            "answer": "true",
        },
    ],
    "paragraph": [
        {
            "id": "p1",
            "paragraph": "The old lighthouse stood at the end of the harbour wall for more "
            "than a century.\nSailors trusted its beam on foggy nights, and the keeper "
            "climbed its narrow stairs every evening to light the lamp.",
        },
        {
            "id": "p2",
            "paragraph": "Our school library moved to a brighter room this autumn. The "
            "new shelves hold twice as many books, and students can now borrow laptops "
            "for their homework during lunch breaks.",
        },
        {
            "id": "p3",
            "paragraph": "Morning markets in the square sell fresh fruit, cheese and "
            "flowers from nearby farms, and they close shortly after noon every Saturday.",
        },
    ],
}

TEXTS = {
    "mcq": "Q: What colour is the sky?\nA) Blue\nB) Green\nC) Red\nD) Black\nAnswer: A",
    "cs": "C: Weather\nS: The sky is blue on a clear day.",
    "tfq": "The sky is green on a clear day.\nAnswer: False",
    "paragraph": "The sky is blue on a clear day.\nAt sunset it turns orange.",
}


# --- the schema tables --------------------------------------------------------------


def test_every_schema_has_fields_tags_layout_and_a_prompt() -> None:
    assert SCHEMAS == ("instruction", "qa", "mcq", "cs", "tfq", "paragraph")
    assert FIELDS["mcq"] == ("question", "A", "B", "C", "D", "answer")
    assert FIELDS["cs"] == ("category", "statement")
    assert FIELDS["tfq"] == ("statement", "answer")
    assert FIELDS["paragraph"] == ("paragraph",)
    assert TAGS["mcq"]["B"] == "B)" and TAGS["mcq"]["answer"] == "Answer:"
    assert TAGS["cs"] == {"category": "C:", "statement": "S:"}
    assert TAGS["qa"] == {"question": "Q:", "answer": "A:"}  # unchanged labels
    kinds = {
        "mcq": "multiple-choice question",
        "cs": "category-statement",
        "tfq": "true/false question",
        "paragraph": "paragraph",
    }
    for schema, kind in kinds.items():
        system, user = mixup_prompt(["first", "second"], schema)
        assert f"related {kind} samples" in system["content"]
        assert layout_of(schema) in system["content"]
        assert "[1]\nfirst" in user["content"] and "[2]\nsecond" in user["content"]
    assert "A) <option A>" in layout_of("mcq") and "Answer: <True or False>" in layout_of("tfq")


# --- rows, rendering and parsing ----------------------------------------------------


@pytest.mark.parametrize("schema", NEW)
def test_rows_round_trip_through_text(schema: str) -> None:
    for row in ROWS[schema]:
        assert detect_schema(row) == schema
        sample = sample_from_row(row, schema, "x")
        text = sample.render()
        assert parse_fields(schema, text) == sample.fields
        assert render_fields(schema, parse_fields(schema, text)) == text
        again = sample_from_row(sample.to_row(), schema, "x")
        assert again.fields == sample.fields and again.id == row["id"]
    for schema_, text in TEXTS.items():
        assert render_fields(schema_, parse_fields(schema_, text)) == text


def test_rows_are_normalised() -> None:
    m1, m2 = (sample_from_row(row, "mcq", "x") for row in ROWS["mcq"][:2])
    assert m1.fields["answer"] == "A" and m1.fields["B"] == "Thermometer"
    assert m2.fields["B"] == "Eight loaves"  # object keys normalised to A-D
    assert m2.to_row()["options"] == ["Twelve loaves", "Eight loaves", "Twenty", "Four"]
    assert m1.render().endswith("D) Wind vane\nAnswer: A")
    answers = [sample_from_row(row, "tfq", "x").fields["answer"] for row in ROWS["tfq"]]
    assert answers == ["True", "False", "True"]
    assert sample_from_row(ROWS["tfq"][0], "tfq", "x").to_row()["answer"] == "True"
    tagged = sample_from_row({**ROWS["cs"][0], "source": "web"}, "cs", "x")
    assert tagged.to_row()["source"] == "web"  # other fields kept


@pytest.mark.parametrize(
    ("schema", "row", "fragment"),
    [
        ("mcq", {"question": "Q?", "options": ["a", "b", "c"], "answer": "A"}, "got 3 options"),
        ("mcq", {"question": "Q?", "options": ["a", "b", "c", "d"], "answer": "E"}, "A-D"),
        (
            "mcq",
            {"question": "Q?", "options": {"A": "a", "B": "b", "C": "c"}, "answer": "A"},
            "A-D",
        ),
        ("mcq", {"question": "Q?", "options": ["a", "b", 3, "d"], "answer": "A"}, "option C"),
        ("mcq", {"question": "Q?", "options": "a b c d", "answer": "A"}, "got str"),
        ("mcq", {"question": "Q?", "answer": "A"}, 'missing field "options"'),
        ("tfq", {"statement": "Cats bark.", "answer": "maybe"}, "true or false"),
        ("tfq", {"statement": "  ", "answer": True}, '"statement" is empty'),
        ("tfq", {"statement": "Cats bark.", "answer": 1}, "true or false"),
        ("cs", {"category": "News", "statement": 4}, "must be a string"),
        ("cs", {"category": "News", "statement": "One.\nC: two"}, "does not read back"),
        ("paragraph", {"paragraph": ""}, "is empty"),
    ],
)
def test_bad_rows_are_refused(schema: str, row: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        sample_from_row(row, schema, "x")
    assert fragment in str(info.value)


def test_parse_failures() -> None:
    options = "A) Blue\nB) Green\nC) Red\nD) Black"
    assert parse_fields("mcq", f"Q: Sky?\n{options}\nAnswer: E") is None
    assert parse_fields("mcq", f"Q: Sky?\n{options}\nAnswer: AB") is None
    assert parse_fields("mcq", "Q: Sky?\nA) Blue\nB) Green\nC) Red\nAnswer: A") is None
    assert parse_fields("mcq", f"{options}\nAnswer: A") is None  # no question
    assert parse_fields("mcq", "Q: Sky?\nB) Green\nA) Blue\nC) Red\nD) B\nAnswer: A") is None
    assert parse_fields("mcq", f"Q: Sky?\n{options}\nAnswer: c")["answer"] == "C"
    assert parse_fields("tfq", "Cats bark.\nAnswer: maybe") is None
    assert parse_fields("tfq", "Answer: True") is None  # empty statement
    assert parse_fields("tfq", "Cats bark.") is None
    assert parse_fields("tfq", "Cats bark.\nAnswer: true") == {
        "statement": "Cats bark.",
        "answer": "True",
    }
    assert parse_fields("tfq", "Cats bark.\nAnswer: False\nmore") is None
    assert parse_fields("cs", "S: The sky is blue.") is None  # no C:
    assert parse_fields("cs", "C: Weather\nThe sky is blue.") is None  # no S:
    assert parse_fields("cs", "S: The sky is blue.\nC: Weather") is None  # out of order
    assert parse_fields("paragraph", " \n ") is None
    assert parse_fields("paragraph", "  Any text.\n") == {"paragraph": "Any text."}


def test_detect_schema_tells_overlapping_fields_apart() -> None:
    cases = [
        ({"question": "q", "options": [], "answer": "A"}, "mcq"),
        ({"statement": "s", "answer": True}, "tfq"),
        ({"category": "c", "statement": "s"}, "cs"),
        ({"statement": "s"}, "cs"),
        ({"question": "q", "answer": "a"}, "qa"),
        ({"paragraph": "p"}, "paragraph"),
        ({"instruction": "i", "output": "o"}, "instruction"),
        ({"text": "t"}, None),
    ]
    for row, schema in cases:
        assert detect_schema(row) == schema, row


def test_degradations_target_text_fields_only() -> None:
    mcq = sample_from_row(ROWS["mcq"][0], "mcq", "x").fields
    tfq = sample_from_row(ROWS["tfq"][0], "tfq", "x").fields
    for name in MAIN_FIELD_ONLY:
        assert targets_of("mcq", mcq, name) == ["question"]
        assert targets_of("tfq", tfq, name) == ["statement"]
        assert targets_of("cs", {"category": "c", "statement": "s"}, name) == ["statement"]
        assert targets_of("paragraph", {"paragraph": "p"}, name) == ["paragraph"]
    for name in ("noise", "drop", "paraphrase"):
        assert targets_of("mcq", mcq, name) == ["question", "A", "B", "C", "D"]
        assert targets_of("tfq", tfq, name) == ["statement"]
        assert targets_of("cs", {"category": "c", "statement": "s"}, name) == [
            "category",
            "statement",
        ]


# --- lmmixup build through the CLI --------------------------------------------------

DEGRADE = "noise,drop,truncation,redundancy"


def build(path: Path, out: Path) -> list[dict]:
    result = run_cli(
        "lmmixup", "build", path, "-o", out, "--group-size", "2:3", "--degrade", DEGRADE,
        "--seed", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return read_jsonl(out)


@pytest.mark.parametrize("schema", NEW)
def test_build_through_the_cli(schema: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "clean.jsonl", ROWS[schema])
    rows = build(path, tmp_path / "mix.jsonl")
    clean = {row["id"]: sample_from_row(row, schema, "x") for row in ROWS[schema]}
    assert len(rows) == len(clean)
    spec = SPECS[schema]
    for row in rows:
        sample = clean[row["aug"]["parents"][0]]
        assert row["schema"] == schema and row["target"] == sample.render()
        assert parse_fields(schema, row["target"]) == sample.fields == row["target_fields"]
        assert 2 <= len(row["inputs"]) <= 3
        for text, names in zip(row["inputs"], row["aug"]["degradations"], strict=True):
            assert text != row["target"]
            fields = parse_fields(schema, text)
            assert fields is not None, text
            for name in FIELDS[schema]:
                if name not in spec.text_fields:  # the mcq letter, the tfq True/False
                    assert fields[name] == sample.fields[name]
            if set(names) <= MAIN_FIELD_ONLY:
                for name in FIELDS[schema]:
                    if name != spec.main:
                        assert fields[name] == sample.fields[name].strip()
    used = {n for row in rows for names in row["aug"]["degradations"] for n in names}
    assert used >= {"truncation", "redundancy"} and used & {"noise", "drop"}

    shuffled = list(ROWS[schema])
    while shuffled == ROWS[schema]:
        random.shuffle(shuffled)
    again = build(write_jsonl(tmp_path / "shuffled.jsonl", shuffled), tmp_path / "mix2.jsonl")

    def by_id(found: list[dict]) -> list[dict]:
        return sorted(found, key=lambda r: r["id"])

    assert by_id(again) == by_id(rows)


# --- mixed schemas ------------------------------------------------------------------


def test_mixed_schema_files_are_refused(tmp_path: Path) -> None:
    qa = [
        {"question": "How many legs does a cat have?", "answer": "Four."},
        {"question": "What colour is grass?", "answer": "Green."},
    ]
    mixed = write_jsonl(tmp_path / "clean.jsonl", [*qa, ROWS["tfq"][0]])
    out = tmp_path / "m.jsonl"
    result = run_cli("lmmixup", "build", mixed, "-o", out)
    assert_one_line_error(
        result, "clean.jsonl:3: a tfq row in a qa file (schemas mixed; one schema per file)"
    )
    assert not out.exists()
    mcq_first = write_jsonl(tmp_path / "pool.jsonl", [ROWS["mcq"][0], qa[0]])
    with pytest.raises(DataError, match="pool.jsonl:2: a qa row in an mcq file"):
        read_samples(mcq_first)
    with pytest.raises(DataError, match="clean.jsonl:3: a tfq row in a qa file"):
        read_samples(mixed, "qa")  # a given schema: the row fits another one
    rejects: list = []
    samples, schema = read_samples(mixed, rejects=rejects)
    assert schema == "qa" and len(samples) == 2
    assert [r.line for r in rejects] == [3] and "schemas mixed" in rejects[0].reason


def test_mixed_schema_mixture_files_are_refused(tmp_path: Path) -> None:
    def row(schema: str, n: int) -> dict:
        return {"id": f"r{n}", "schema": schema, "inputs": ["x y", "x z"], "target": "x"}

    path = write_jsonl(tmp_path / "mix.jsonl", [row("cs", 1), row("cs", 2), row("tfq", 3)])
    with pytest.raises(DataError) as info:
        read_mixture(path)
    assert str(info.value).endswith(
        "mix.jsonl:3: a tfq row in a cs file (schemas mixed; one schema per file)"
    )
    rejects: list = []
    assert [r["id"] for r in read_mixture(path, rejects=rejects)] == ["r1", "r2"]
    assert [r.line for r in rejects] == [3]
    same = write_jsonl(tmp_path / "same.jsonl", [row("paragraph", 1), row("paragraph", 2)])
    assert {r["schema"] for r in read_mixture(same)} == {"paragraph"}


# --- the format reward --------------------------------------------------------------


@pytest.mark.parametrize("schema", NEW)
def test_format_reward_on_each_schema(schema: str) -> None:
    good = f"<think>merge</think>\n<answer>\n{TEXTS[schema]}\n</answer>"
    assert format_reward([good], schema) == [1.0]
    malformed = {
        "mcq": "Q: Sky?\nA) Blue\nB) Green\nC) Red\nD) Black\nAnswer: E",
        "cs": "The sky is blue.",
        "tfq": "The sky is blue.\nAnswer: perhaps",
        "paragraph": "   ",
    }[schema]
    assert format_reward([f"<answer>{malformed}</answer>"], schema) == [0.5]
    assert format_reward(["no tags at all"], schema) == [0.0]
