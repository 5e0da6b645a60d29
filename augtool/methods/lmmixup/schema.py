"""Instruction samples for LM-mixup: the two schemas, how a sample is written inside the
model's ``<answer>`` and read back, and the prompt that asks for one fused sample.

- ``instruction`` (Alpaca style): ``instruction``, optional ``input``, ``output``; written
  as ``Instruction: ...`` / ``Input: ...`` / ``Output: ...`` lines.
- ``qa`` (GSM8K style): ``question``, ``answer``; written as ``Q: ...`` / ``A: ...``, the
  public LM-mixup implementation's QA format.

The model answers ``<think>...</think>`` (optional) then ``<answer>...</answer>``, as in
the public implementation, and nothing outside the tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augtool.core.generation.params import Message
from augtool.core.generation.prompts import LMMIXUP_FUSE
from augtool.data.jsonl import Rejected
from augtool.errors import DataError

SCHEMAS = ("instruction", "qa")

#: The fields of each schema, in the order they are written; the optional ones may be empty.
FIELDS: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "input", "output"),
    "qa": ("question", "answer"),
}
OPTIONAL_FIELDS = frozenset({"input"})
#: The line label of each field inside ``<answer>``.
TAGS = {
    "instruction": "Instruction",
    "input": "Input",
    "output": "Output",
    "question": "Q",
    "answer": "A",
}

ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
FORMAT_RE = re.compile(
    r"^\s*(?:<think>.*?</think>\s*)?<answer>.*?</answer>\s*$", re.DOTALL | re.IGNORECASE
)


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
        row.update({k: v for k, v in self.fields.items() if v or k not in OPTIONAL_FIELDS})
        row.update({k: v for k, v in self.extra.items() if k not in row})
        return row


def render_fields(schema: str, values: dict[str, str]) -> str:
    """``Tag: value`` lines of a schema's fields (an empty optional field is left out)."""
    lines = []
    for name in FIELDS[schema]:
        value = (values.get(name) or "").strip()
        if not value and name in OPTIONAL_FIELDS:
            continue
        lines.append(f"{TAGS[name]}: {value}")
    return "\n".join(lines)


def parse_fields(schema: str, text: str) -> dict[str, str] | None:
    """Read ``Tag: value`` lines back into fields; ``None`` when a required field is
    missing or empty, or the tags are out of order."""
    names = FIELDS[schema]
    pattern = re.compile(
        r"^\s*(" + "|".join(re.escape(TAGS[n]) for n in names) + r")\s*:", re.MULTILINE
    )
    found = list(pattern.finditer(text))
    by_tag = {TAGS[n]: n for n in names}
    values: dict[str, str] = {}
    order = []
    for i, match in enumerate(found):
        name = by_tag[match.group(1)]
        if name in values:
            return None  # a field given twice
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        values[name] = text[match.end() : end].strip()
        order.append(names.index(name))
    if order != sorted(order):
        return None
    for name in names:
        if name in OPTIONAL_FIELDS:
            values.setdefault(name, "")
        elif not values.get(name):
            return None
    return values


def extract_answer(completion: str) -> str | None:
    """The text inside the last ``<answer>...</answer>``, or ``None``."""
    found = ANSWER_RE.findall(completion)
    return found[-1].strip() if found else None


def wrap_answer(text: str) -> str:
    """A training target: the sample inside ``<answer>`` tags."""
    return f"<answer>\n{text.strip()}\n</answer>"


def layout_of(schema: str) -> str:
    """How the fields are laid out inside ``<answer>`` (shown to the model)."""
    if schema == "instruction":
        return "Instruction: <the instruction>\nInput: <the input, if any>\nOutput: <the output>"
    return "Q: <the question>\nA: <the answer>"


def mixup_prompt(inputs: list[str], schema: str) -> list[Message]:
    """The chat messages asking for one fused sample from ``inputs`` (numbered)."""
    kind = "instruction-following" if schema == "instruction" else "question-answer"
    numbered = "\n\n".join(f"[{i}]\n{text.strip()}" for i, text in enumerate(inputs, 1))
    return LMMIXUP_FUSE.render(kind=kind, layout=layout_of(schema), inputs=numbered)


def detect_schema(row: dict[str, Any]) -> str | None:
    """``instruction`` or ``qa`` from the fields a row has, or ``None``."""
    if "instruction" in row or "output" in row:
        return "instruction"
    if "question" in row or "answer" in row:
        return "qa"
    return None


def sample_from_row(row: Any, schema: str, default_id: str) -> Sample:
    """Validate one decoded JSON row; raises ``ValueError`` with a one-line reason."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    values: dict[str, str] = {}
    for name in FIELDS[schema]:
        value = row.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            value = ""
        if value is None:
            present = ", ".join(sorted(row)) or "none"
            need = "/".join(FIELDS[schema])
            raise ValueError(
                f'missing field "{name}" ({schema} records need {need}; fields present: {present})'
            )
        if not isinstance(value, str):
            raise ValueError(f'field "{name}" must be a string, got {type(value).__name__}')
        if not value.strip() and name not in OPTIONAL_FIELDS:
            raise ValueError(f'field "{name}" is empty')
        values[name] = value
    raw_id = row.get("id")
    if raw_id is None:  # absent, null or an empty CSV cell
        raw_id = default_id
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise ValueError('field "id" must be a string')
    extra = {k: v for k, v in row.items() if k not in FIELDS[schema] and k != "id"}
    return Sample(str(raw_id), schema, values, extra)


def read_samples(
    path: str | Path, schema: str = "auto", *, rejects: list[Rejected] | None = None
) -> tuple[list[Sample], str]:
    """Every sample of a JSONL file and the schema used (``auto``: from the first row).

    A bad row is a one-line :class:`DataError` naming the file and line, unless
    ``rejects`` is given (``--skip-invalid``); an empty file or duplicate ids are errors.
    """
    from augtool.data.jsonl import check_input_file, iter_json_lines, reject_row

    path = check_input_file(path)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    chosen = None if schema == "auto" else schema
    for number, raw, row in iter_json_lines(path, rejects=rejects):
        try:
            if chosen is None:
                chosen = detect_schema(row) if isinstance(row, dict) else None
                if chosen is None:
                    raise ValueError(
                        "cannot tell the schema: expected instruction/input/output or "
                        "question/answer fields (or pass --schema)"
                    )
            sample = sample_from_row(row, chosen, f"{path.stem}-{number}")
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
