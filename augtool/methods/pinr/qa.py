"""Q&A rows for PInR (appendix A.1): a question and its answer are condensed as one text,
``question [SEP] answer``, and split back into their fields on output.

The special token ``[SEP]`` goes into the text that is embedded, that the decoder learns
to write, and that the refinement prompts split into ``{question}`` and ``{answer}``.
A text without ``[SEP]`` (a decoder that did not recover it) is read as a question with
an empty answer and flagged (``sep_found`` false); refinement is expected to restore the
pair (the paper leaves this to the refining API), and its replies in the paper's
``Q: ... A: ...`` format are parsed back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from augtool.core.generation.jobs import ReplyRejected
from augtool.data.corpus import CorpusIndex, index_corpus
from augtool.data.jsonl import RecordSpec, iter_numbered_records, reject_row
from augtool.data.records import FieldMap, Record
from augtool.errors import DataError

#: The separator of appendix A.1.
SEP = "[SEP]"
_SEP = re.compile(r"\[\s*SEP\s*\]", re.IGNORECASE)
# "Q: ... A: ...", tolerating the prompt's own "Input Q:" spelling, markdown bold and
# the asterisks the paper's format line puts around the fields.
_QA = re.compile(
    r"(?:^|\W)(?:input\s+)?(?:\*\*)?Q(?:uestion)?(?:\*\*)?\s*:\s*(?P<q>.*?)\s*"
    r"(?:^|\W)(?:input\s+)?(?:\*\*)?A(?:nswer)?(?:\*\*)?\s*:\s*(?P<a>.*)",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class QAFields:
    """Where a row's question and answer live in the JSONL."""

    question: str
    answer: str


def join_qa(question: str, answer: str) -> str:
    """``question [SEP] answer``: the text PInR embeds, decodes and refines."""
    return f"{question.strip()} {SEP} {answer.strip()}"


def split_qa(text: str) -> tuple[str, str, bool]:
    """``(question, answer, found)``: the text split at its first ``[SEP]``. Without one
    the whole text is the question, the answer is empty and ``found`` is false."""
    parts = _SEP.split(text, maxsplit=1)
    if len(parts) == 1:
        return text.strip(), "", False
    return parts[0].strip(), parts[1].strip(), True


def _unstar(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] == "*" and text[-1] == "*":
        text = text[1:-1].strip()
    return text.strip("* \n")


def parse_qa_reply(reply: str) -> tuple[str, str]:
    """The question and answer of a refinement or generation reply: the paper's
    ``Q: ... A: ...`` format, or a text with ``[SEP]``. Anything else is rejected."""
    found = _QA.search(reply)
    if found:
        question, answer = _unstar(found["q"]), _unstar(found["a"])
    else:
        question, answer, has_sep = split_qa(reply)
        if not has_sep:
            raise ReplyRejected("no 'Q: ... A: ...' pair and no [SEP] in the reply")
        question, answer = _unstar(question), _unstar(answer)
    if not question or not answer:
        raise ReplyRejected("empty question or answer in the reply")
    return question, answer


def _answer_problem(record: Record, fields: QAFields) -> str | None:
    """Why a Q&A row's answer is unusable, or None when it is fine."""
    answer = record.extra.get(fields.answer)
    if fields.answer not in record.extra:
        present = ", ".join(sorted({fields.question, *record.extra})) or "none"
        return (
            f'missing field "{fields.answer}" (fields present: {present}; '
            "map another one with --answer-field)"
        )
    if not isinstance(answer, str):
        return f'field "{fields.answer}" must be a string'
    if not answer.strip():
        return f'field "{fields.answer}" is empty'
    return None


def _qa_spec(fields: QAFields, label_field: str) -> RecordSpec:
    return RecordSpec(fields=FieldMap(text=fields.question, label=label_field))


def read_qa(
    path: Path,
    fields: QAFields,
    *,
    label_field: str = "label",
    rejects: list | None = None,
) -> list[Record]:
    """Q&A rows, validated up front (one error naming file and line): ``record.text`` is
    the question, the answer stays in ``record.extra`` under its own name."""
    records: list[Record] = []
    seen: dict[str, int] = {}
    spec = _qa_spec(fields, label_field)
    for line, raw, record in iter_numbered_records(path, spec, rejects=rejects):
        reason = _answer_problem(record, fields)
        if reason is None and record.id in seen:
            reason = f'duplicate id "{record.id}" (first seen at line {seen[record.id]})'
        if reason is None:
            seen[record.id] = line
            records.append(record)
            continue
        reject_row(path, line, reason, raw, rejects)
    if not records:
        raise DataError(path, "no valid Q&A records")
    return records


def index_qa(
    path: Path,
    fields: QAFields,
    *,
    label_field: str = "label",
    rejects: list | None = None,
) -> CorpusIndex:
    """Q&A rows validated as :func:`read_qa` does, kept as byte offsets (nothing else held);
    each reads back as its ``question [SEP] answer`` text."""
    try:
        return index_corpus(
            path,
            rejects=rejects,
            spec=_qa_spec(fields, label_field),
            check=lambda record: _answer_problem(record, fields),
            text_of=lambda record: qa_text(record, fields),
            unique_ids=True,
        )
    except DataError as exc:
        if exc.reason.startswith(("no valid records", "no records")):  # as read_qa says it
            raise DataError(path, "no valid Q&A records") from exc
        raise


def qa_text(record: Record, fields: QAFields) -> str:
    """The joined text of a Q&A record read by :func:`read_qa`."""
    return join_qa(record.text or "", str(record.extra[fields.answer]))
