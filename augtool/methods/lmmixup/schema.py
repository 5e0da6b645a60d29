"""Instruction samples for LM-mixup: the six schemas of the public implementation, how a
sample is written inside the model's ``<answer>`` and read back, and the prompt that asks
for one fused sample.

- ``instruction`` (Alpaca style): ``instruction``, optional ``input``, ``output``; written
  as ``Instruction: ...`` / ``Input: ...`` / ``Output: ...`` lines.
- ``qa`` (GSM8K style): ``question``, ``answer``; written as ``Q: ...`` / ``A: ...``.
- ``mcq``: ``question``, ``options`` (four, A-D), ``answer`` (a letter); written as
  ``Q: ...`` / ``A) ...`` ... ``D) ...`` / ``Answer: X``.
- ``cs`` (category-statement): ``category``, ``statement``; written as ``C: ...`` / ``S: ...``.
- ``tfq`` (true/false question): ``statement``, ``answer``; written as the statement then
  ``Answer: True`` (or ``False``).
- ``paragraph``: ``paragraph``; written as the text itself.

The ``qa``/``mcq``/``cs``/``tfq`` texts are those of the public LM-mixup bank builders
(yuu250/LM-mixup ``knn/build.py``). A sample's :attr:`Sample.fields` are strings in every
schema (an ``mcq`` keeps its options as fields ``A``-``D``), so degradations and
comparisons treat all schemas alike; :meth:`SchemaSpec.from_row` and
:meth:`SchemaSpec.to_row` convert from and to the JSONL rows.

The model answers ``<think>...</think>`` (optional) then ``<answer>...</answer>``, as in
the public implementation, and nothing outside the tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from augtool.core.generation.params import Message
from augtool.core.generation.prompts import LMMIXUP_FUSE
from augtool.data.jsonl import Rejected
from augtool.errors import DataError

ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
FORMAT_RE = re.compile(
    r"^\s*(?:<think>.*?</think>\s*)?<answer>.*?</answer>\s*$", re.DOTALL | re.IGNORECASE
)
LETTERS = ("A", "B", "C", "D")


# --- schema specs -------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaSpec:
    """A schema whose fields are written one after another, each after its line label.

    ``fields`` are the sample's string fields in the order they are written, ``labels``
    their labels (``"Q:"``, ``"A)"``...), ``main`` the content field that truncation and
    redundancy act on, ``text_fields`` the fields any degradation may touch (never an
    answer letter or a True/False), ``row_fields`` the keys of a JSONL row.
    """

    name: str
    kind: str
    layout: str
    fields: tuple[str, ...]
    labels: dict[str, str]
    main: str
    text_fields: tuple[str, ...]
    row_fields: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset()
    #: ``a`` or ``an`` before the schema's name (``an mcq row``).
    article: str = "a"
    #: Refuse rows whose values do not read back from their text (``instruction`` and
    #: ``qa`` predate the check and keep accepting such rows).
    check_round_trip: bool = True

    @cached_property
    def label_re(self) -> re.Pattern[str] | None:
        """A line that starts with one of the labels (group ``f<i>`` = ``fields[i]``)."""
        parts = [
            f"(?P<f{i}>{re.escape(label[:-1])}\\s*{re.escape(label[-1])})"
            for i, name in enumerate(self.fields)
            if (label := self.labels.get(name))
        ]
        return re.compile(r"^\s*(?:" + "|".join(parts) + ")", re.MULTILINE) if parts else None

    def render(self, values: dict[str, str]) -> str:
        """``Label value`` lines of the fields (an empty optional field is left out)."""
        lines = []
        for name in self.fields:
            value = (values.get(name) or "").strip()
            if not value and name in self.optional:
                continue
            lines.append(f"{self.labels[name]} {value}")
        return "\n".join(lines)

    def parse(self, text: str) -> dict[str, str] | None:
        """Labelled lines back into fields; ``None`` when a required field is missing or
        empty, a label repeats, or the labels are out of order."""
        assert self.label_re is not None
        found = list(self.label_re.finditer(text))
        values: dict[str, str] = {}
        order = []
        for i, match in enumerate(found):
            index = int(str(match.lastgroup)[1:])
            name = self.fields[index]
            if name in values:
                return None  # a field given twice
            end = found[i + 1].start() if i + 1 < len(found) else len(text)
            values[name] = text[match.end() : end].strip()
            order.append(index)
        if order != sorted(order):
            return None
        for name in self.fields:
            if name in self.optional:
                values.setdefault(name, "")
            elif not values.get(name):
                return None
        return values

    def from_row(self, row: dict[str, Any]) -> dict[str, str]:
        """The fields of a decoded row; raises ``ValueError`` with a one-line reason."""
        values = {name: self.string_field(row, name) for name in self.fields}
        return self.checked(values)

    def to_row(self, values: dict[str, str]) -> dict[str, Any]:
        """The fields as a JSONL row (empty optional fields left out)."""
        return {k: v for k, v in values.items() if v or k not in self.optional}

    def missing(self, row: dict[str, Any], name: str) -> ValueError:
        present = ", ".join(sorted(row)) or "none"
        need = "/".join(self.row_fields or self.fields)
        return ValueError(
            f'missing field "{name}" ({self.name} records need {need}; fields present: {present})'
        )

    def string_field(self, row: dict[str, Any], name: str) -> str:
        """A string value of ``row`` (``""`` for an absent optional field)."""
        value = row.get(name)
        if value is None and name in self.optional:
            value = ""
        if value is None:
            raise self.missing(row, name)
        if not isinstance(value, str):
            raise ValueError(f'field "{name}" must be a string, got {type(value).__name__}')
        if not value.strip() and name not in self.optional:
            raise ValueError(f'field "{name}" is empty')
        return value

    def checked(self, values: dict[str, str]) -> dict[str, str]:
        """``values``, once they are known to read back from their own text."""
        if self.check_round_trip:
            expected = {k: v.strip() for k, v in values.items()}
            if self.parse(self.render(values)) != expected:
                labels = "/".join(self.labels.values()) or "its text"
                raise ValueError(
                    f"the {self.name} sample does not read back from its text (does a value "
                    f"start a line with a field label, {labels}?)"
                )
        return values


class MCQSpec(SchemaSpec):
    """``mcq``: four options ``A``-``D`` and an answer letter."""

    def parse(self, text: str) -> dict[str, str] | None:
        values = super().parse(text)
        if values is None:
            return None
        letter = values["answer"].upper()
        if letter not in LETTERS:
            return None
        return {**values, "answer": letter}

    def from_row(self, row: dict[str, Any]) -> dict[str, str]:
        question = self.string_field(row, "question")
        options = row.get("options")
        if options is None:
            raise self.missing(row, "options")
        shape = 'field "options" must be a list of 4 strings or an object with keys A-D'
        if isinstance(options, list):
            if len(options) != len(LETTERS):
                raise ValueError(f"{shape} (got {len(options)} options)")
            by_letter = dict(zip(LETTERS, options, strict=True))
        elif isinstance(options, dict):
            by_letter = {str(k).strip().upper(): v for k, v in options.items()}
            if sorted(by_letter) != list(LETTERS) or len(options) != len(LETTERS):
                raise ValueError(f"{shape} (got keys {', '.join(map(str, options))})")
        else:
            raise ValueError(f"{shape}, got {type(options).__name__}")
        for letter, text in by_letter.items():
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'option {letter} of field "options" must be a non-empty string')
        answer = self.string_field(row, "answer").strip().upper()
        if answer not in LETTERS:
            raise ValueError(f'field "answer" must be one letter A-D (got {row["answer"]!r})')
        return self.checked({"question": question, **by_letter, "answer": answer})

    def to_row(self, values: dict[str, str]) -> dict[str, Any]:
        return {
            "question": values["question"],
            "options": [values[letter] for letter in LETTERS],
            "answer": values["answer"],
        }


_TRUE_FALSE = {"true": "True", "false": "False"}
_FINAL_ANSWER_RE = re.compile(r"^[ \t]*Answer[ \t]*:", re.MULTILINE)


class TFQSpec(SchemaSpec):
    """``tfq``: a statement, then an ``Answer: True|False`` line."""

    def render(self, values: dict[str, str]) -> str:
        statement = (values.get("statement") or "").strip()
        return f"{statement}\n{self.labels['answer']} {(values.get('answer') or '').strip()}"

    def parse(self, text: str) -> dict[str, str] | None:
        found = list(_FINAL_ANSWER_RE.finditer(text))
        if not found:
            return None
        statement = text[: found[-1].start()].strip()
        answer = _TRUE_FALSE.get(text[found[-1].end() :].strip().lower())
        if not statement or answer is None:
            return None
        return {"statement": statement, "answer": answer}

    def from_row(self, row: dict[str, Any]) -> dict[str, str]:
        statement = self.string_field(row, "statement")
        value = row.get("answer")
        if value is None:
            raise self.missing(row, "answer")
        answer = (
            str(value)
            if isinstance(value, bool)
            else _TRUE_FALSE.get(value.strip().lower() if isinstance(value, str) else "")
        )
        if answer is None:
            raise ValueError(f'field "answer" must be true or false (got {value!r})')
        return self.checked({"statement": statement, "answer": answer})


class ParagraphSpec(SchemaSpec):
    """``paragraph``: the text itself, no labels."""

    def render(self, values: dict[str, str]) -> str:
        return (values.get("paragraph") or "").strip()

    def parse(self, text: str) -> dict[str, str] | None:
        return {"paragraph": text.strip()} if text.strip() else None


_MCQ_FIELDS = ("question", *LETTERS, "answer")

SPECS: dict[str, SchemaSpec] = {
    spec.name: spec
    for spec in (
        SchemaSpec(
            "instruction",
            kind="instruction-following",
            layout="Instruction: <the instruction>\nInput: <the input, if any>\n"
            "Output: <the output>",
            fields=("instruction", "input", "output"),
            labels={"instruction": "Instruction:", "input": "Input:", "output": "Output:"},
            main="output",
            text_fields=("instruction", "input", "output"),
            optional=frozenset({"input"}),
            article="an",
            check_round_trip=False,
        ),
        SchemaSpec(
            "qa",
            kind="question-answer",
            layout="Q: <the question>\nA: <the answer>",
            fields=("question", "answer"),
            labels={"question": "Q:", "answer": "A:"},
            main="answer",
            text_fields=("question", "answer"),
            check_round_trip=False,
        ),
        MCQSpec(
            "mcq",
            kind="multiple-choice question",
            layout="Q: <the question>\nA) <option A>\nB) <option B>\nC) <option C>\n"
            "D) <option D>\nAnswer: <the letter of the correct option>",
            fields=_MCQ_FIELDS,
            labels={"question": "Q:", **{k: f"{k})" for k in LETTERS}, "answer": "Answer:"},
            main="question",
            text_fields=("question", *LETTERS),
            row_fields=("question", "options", "answer"),
            article="an",
        ),
        SchemaSpec(
            "cs",
            kind="category-statement",
            layout="C: <the category>\nS: <the statement>",
            fields=("category", "statement"),
            labels={"category": "C:", "statement": "S:"},
            main="statement",
            text_fields=("category", "statement"),
        ),
        TFQSpec(
            "tfq",
            kind="true/false question",
            layout="<the statement>\nAnswer: <True or False>",
            fields=("statement", "answer"),
            labels={"answer": "Answer:"},
            main="statement",
            text_fields=("statement",),
        ),
        ParagraphSpec(
            "paragraph",
            kind="paragraph",
            layout="<the paragraph>",
            fields=("paragraph",),
            labels={},
            main="paragraph",
            text_fields=("paragraph",),
        ),
    )
}

SCHEMAS = tuple(SPECS)
#: The fields of each schema, in the order they are written; the optional ones may be empty.
FIELDS: dict[str, tuple[str, ...]] = {name: spec.fields for name, spec in SPECS.items()}
OPTIONAL_FIELDS = frozenset(f for spec in SPECS.values() for f in spec.optional)
#: The line label of each labelled field inside ``<answer>``, by schema.
TAGS: dict[str, dict[str, str]] = {name: dict(spec.labels) for name, spec in SPECS.items()}


def spec_of(schema: str) -> SchemaSpec:
    """The spec of a schema name (``KeyError`` for an unknown one)."""
    return SPECS[schema]


# --- samples ------------------------------------------------------------------------


@dataclass
class Sample:
    """One instruction sample: its id, schema and field values."""

    id: str
    schema: str
    fields: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """The sample as the text inside ``<answer>``."""
        return render_fields(self.schema, self.fields)

    def to_row(self) -> dict[str, Any]:
        """A JSONL row in the sample's own schema (empty optional fields left out)."""
        row: dict[str, Any] = {"id": self.id}
        row.update(SPECS[self.schema].to_row(self.fields))
        row.update({k: v for k, v in self.extra.items() if k not in row})
        return row


def render_fields(schema: str, values: dict[str, str]) -> str:
    """The text of a schema's fields inside ``<answer>``."""
    return SPECS[schema].render(values)


def parse_fields(schema: str, text: str) -> dict[str, str] | None:
    """Read a sample's text back into its fields; ``None`` when it does not fit the schema
    (a required field missing or empty, labels out of order, a bad answer letter...)."""
    return SPECS[schema].parse(text)


def label_lines(schema: str, text: str) -> int:
    """How many lines of ``text`` start like a field label of ``schema`` (any case)."""
    pattern = SPECS[schema].label_re
    if pattern is None:
        return 0
    return len(re.findall(pattern.pattern, text, flags=re.MULTILINE | re.IGNORECASE))


def extract_answer(completion: str) -> str | None:
    """The text inside the last ``<answer>...</answer>``, or ``None``."""
    found = ANSWER_RE.findall(completion)
    return found[-1].strip() if found else None


def wrap_answer(text: str) -> str:
    """A training target: the sample inside ``<answer>`` tags."""
    return f"<answer>\n{text.strip()}\n</answer>"


def layout_of(schema: str) -> str:
    """How the fields are laid out inside ``<answer>`` (shown to the model)."""
    return SPECS[schema].layout


def mixup_prompt(inputs: list[str], schema: str) -> list[Message]:
    """The chat messages asking for one fused sample from ``inputs`` (numbered)."""
    numbered = "\n\n".join(f"[{i}]\n{text.strip()}" for i, text in enumerate(inputs, 1))
    return LMMIXUP_FUSE.render(kind=SPECS[schema].kind, layout=layout_of(schema), inputs=numbered)


def detect_schema(row: dict[str, Any]) -> str | None:
    """The schema a row's fields belong to, or ``None``.

    Checked in an order that tells overlapping field sets apart: ``options`` makes an
    ``mcq`` and ``statement`` with ``answer`` a ``tfq`` before ``question``/``answer``
    would read as ``qa``.
    """
    if "instruction" in row or "output" in row:
        return "instruction"
    if "options" in row:
        return "mcq"
    if "statement" in row and "answer" in row:
        return "tfq"
    if "category" in row or "statement" in row:
        return "cs"
    if "question" in row or "answer" in row:
        return "qa"
    if "paragraph" in row:
        return "paragraph"
    return None


def mixed_schemas(row_schema: str, file_schema: str) -> str:
    """The reason a row of another schema than its file's is refused."""
    row_spec, file_spec = SPECS[row_schema], SPECS[file_schema]
    return (
        f"{row_spec.article} {row_schema} row in {file_spec.article} {file_schema} file "
        "(schemas mixed; one schema per file)"
    )


def sample_from_row(row: Any, schema: str, default_id: str) -> Sample:
    """Validate one decoded JSON row; raises ``ValueError`` with a one-line reason."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    spec = SPECS[schema]
    values = spec.from_row(row)
    raw_id = row.get("id")
    if raw_id is None:  # absent, null or an empty CSV cell
        raw_id = default_id
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise ValueError('field "id" must be a string')
    used = set(spec.row_fields or spec.fields)
    extra = {k: v for k, v in row.items() if k not in used and k != "id"}
    return Sample(str(raw_id), schema, values, extra)


def read_samples(
    path: str | Path, schema: str = "auto", *, rejects: list[Rejected] | None = None
) -> tuple[list[Sample], str]:
    """Every sample of a JSONL file and the schema used (``auto``: from the first row).

    A bad row is a one-line :class:`DataError` naming the file and line, unless
    ``rejects`` is given (``--skip-invalid``); an empty file or duplicate ids are errors.
    With ``auto``, a row whose fields belong to another schema than the first row's is
    a bad row (one schema per file); with a given schema, so is a row that does not fit
    it but fits another schema.
    """
    from augtool.data.jsonl import check_input_file, iter_json_lines, reject_row

    path = check_input_file(path)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    chosen = None if schema == "auto" else schema
    for number, raw, row in iter_json_lines(path, rejects=rejects):
        try:
            detected = detect_schema(row) if isinstance(row, dict) else None
            if chosen is None:
                chosen = detected
                if chosen is None:
                    raise ValueError(
                        "cannot tell the schema: expected the fields of one of "
                        "instruction (instruction/input/output), qa (question/answer), "
                        "mcq (question/options/answer), cs (category/statement), "
                        "tfq (statement/answer) or paragraph (or pass --schema)"
                    )
            elif schema == "auto" and detected is not None and detected != chosen:
                raise ValueError(mixed_schemas(detected, chosen))
            try:
                sample = sample_from_row(row, chosen, f"{path.stem}-{number}")
            except ValueError:
                if detected is not None and detected != chosen:
                    raise ValueError(mixed_schemas(detected, chosen)) from None
                raise
            if sample.id in seen:
                raise ValueError(
                    f'duplicate id "{sample.id}" (first seen at line {seen[sample.id]})'
                )
        except ValueError as exc:
            reject_row(path, number, str(exc), raw, rejects)
            continue
        seen[sample.id] = number
        samples.append(sample)
    if not samples:
        raise DataError(path, "no valid record (the file is empty or every row was rejected)")
    return samples, chosen or "instruction"
