"""Co-annotation end to end: collect every annotator's answers (checkpointed), aggregate
them, and build the labelled rows and the review set.

:func:`coannotate` takes answers already collected (``{annotator: [label or None]}``),
so aggregation and review selection run without any model; :func:`collect_answers` asks
the annotators, writing each answer to a checkpoint as it arrives so an interrupted run
resumes without asking again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augtool import __version__
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import FieldMap, Record
from augtool.methods.coannotate.aggregate import Aggregation, aggregate, needs_review
from augtool.methods.coannotate.annotators import (
    ANSWERED,
    FAILED,
    MISSING,
    Annotator,
    Answer,
)

#: The row field holding each annotator's answer, and the provenance field.
ANNOTATIONS = "annotations"
PROVENANCE = "coannotation"


@dataclass
class CoannotationResult:
    """Labelled rows (every input row, in order), the review rows and the figures."""

    rows: list[dict[str, Any]]
    review: list[dict[str, Any]]
    aggregation: Aggregation
    counts: dict[str, Any] = field(default_factory=dict)


def _as_answer(value: Answer | str | None) -> Answer:
    if isinstance(value, Answer):
        return value
    return Answer(str(value)) if value is not None else Answer(None, MISSING)


def coannotate(
    records: Sequence[Record],
    answers: Mapping[str, Sequence[Answer | str | None]],
    *,
    method: str = "dawid-skene",
    iterations: int = 100,
    min_agreement: float = 0.67,
    min_confidence: float = 0.0,
    fields: FieldMap | None = None,
) -> CoannotationResult:
    """Aggregate precomputed ``answers`` (one per record and annotator) into labelled rows
    and pick the rows to review (see :func:`~.aggregate.needs_review`)."""
    fields = fields or FieldMap()
    table = {name: [_as_answer(v) for v in values] for name, values in answers.items()}
    for name, values in table.items():
        if len(values) != len(records):
            raise ValueError(
                f"annotator {name!r} has {len(values)} answers for {len(records)} rows"
            )
    result = aggregate(
        {name: [a.label for a in values] for name, values in table.items()},
        method,
        iterations=iterations,
    )
    rows, review = [], []
    for index, record in enumerate(records):
        given = {name: values[index] for name, values in table.items()}
        label = result.labels[index]
        agreement, confidence = result.agreement[index], result.confidence[index]
        rows.append(labelled_row(record, label, given, agreement, confidence, method, fields))
        if needs_review(
            agreement, confidence, min_agreement=min_agreement, min_confidence=min_confidence
        ):
            review.append(review_row(record, label, given, agreement, confidence, fields))
    counts = {
        "rows": len(records),
        "labelled": sum(1 for label in result.labels if label is not None),
        "review": len(review),
        "answers": {name: _status_counts(values) for name, values in table.items()},
    }
    return CoannotationResult(rows, review, result, counts)


def _status_counts(values: Sequence[Answer]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for answer in values:
        counts[answer.status] = counts.get(answer.status, 0) + 1
    return counts


def labelled_row(
    record: Record,
    label: str | None,
    answers: Mapping[str, Answer],
    agreement: float | None,
    confidence: float | None,
    method: str,
    fields: FieldMap,
) -> dict[str, Any]:
    """The input row with the aggregate ``label``, every annotator's answer, agreement,
    confidence and provenance (``coannotation``: method, source, augtool version, the
    input's own label if it had one, why an annotator gave no answer)."""
    row = record.to_dict(fields)
    row[fields.label] = label
    row[ANNOTATIONS] = {name: answer.label for name, answer in answers.items()}
    row["agreement"] = agreement
    row["confidence"] = confidence
    provenance: dict[str, Any] = {
        "method": method,
        "source": "aggregate" if label is not None else None,
        "augtool": __version__,
    }
    if record.label is not None:
        provenance["original_label"] = record.label
    silent = {name: a.status for name, a in answers.items() if a.label is None}
    if silent:
        provenance["no_answer"] = silent
    row[PROVENANCE] = provenance
    return row


def review_row(
    record: Record,
    label: str | None,
    answers: Mapping[str, Answer],
    agreement: float | None,
    confidence: float | None,
    fields: FieldMap,
) -> dict[str, Any]:
    """A row for people to decide: ``label`` is left null for the decision, next to the
    aggregate's suggestion and every annotator's answer (and its reply or scores)."""
    row: dict[str, Any] = {fields.id: record.id, fields.text: record.text}
    if record.text_pair is not None:
        row[fields.text_pair] = record.text_pair
    row[fields.label] = None
    row["suggested_label"] = label
    row["agreement"] = agreement
    row["confidence"] = confidence
    row[ANNOTATIONS] = {name: answer.label for name, answer in answers.items()}
    evidence = {
        name: {"status": answer.status, **answer.evidence}
        for name, answer in answers.items()
        if answer.evidence or answer.status != ANSWERED
    }
    if evidence:
        row["evidence"] = evidence
    return row


class AnswerCheckpoint:
    """Every answer, appended as it arrives to ``<out>.answers.jsonl.partial`` (keyed by
    the run's answer key), so a rerun of an interrupted job asks nothing twice. Failed
    requests are not kept: a rerun retries them."""

    def __init__(self, output: str | Path, key: str) -> None:
        from augtool.data.writer import JsonlWriter, sidecar

        self.path = sidecar(output, ".answers.jsonl")
        self.writer = JsonlWriter(self.path, run_key=key, option="--output")
        self.done: dict[str, dict[str, Answer]] = {}
        for row in self.writer.resumed_rows:
            answer = Answer.from_dict(row.get("answer") or {})
            self.done.setdefault(str(row.get("annotator")), {})[str(row.get("row"))] = answer

    @property
    def resumed(self) -> int:
        return self.writer.resumed

    def answers(self, name: str) -> dict[str, Answer]:
        return self.done.get(name, {})

    def record(self, name: str, row_ids: Sequence[str], answers: Sequence[Answer]) -> None:
        rows = [
            {
                "id": json.dumps([name, row_id]),
                "annotator": name,
                "row": row_id,
                "answer": answer.to_dict(),
            }
            for row_id, answer in zip(row_ids, answers, strict=True)
            if answer.status != FAILED
        ]
        self.writer.write(rows)

    def close(self) -> None:
        """Stop writing; the checkpoint stays for a rerun."""
        self.writer.close()

    def discard(self) -> None:
        """Remove the checkpoint once the job's outputs are written."""
        self.writer.close()
        self.writer.partial.unlink(missing_ok=True)
        self.writer.state_path.unlink(missing_ok=True)


def collect_answers(
    records: Sequence[Record],
    annotators: Sequence[Annotator],
    *,
    checkpoint: AnswerCheckpoint | None = None,
    reporter: Reporter = SILENT,
) -> dict[str, list[Answer]]:
    """Every annotator's answer for every record, one annotator after the other; answers
    in ``checkpoint`` are reused, new ones written to it as they arrive."""
    collected: dict[str, list[Answer]] = {}
    for annotator in annotators:
        done = checkpoint.answers(annotator.name) if checkpoint is not None else {}
        answers: list[Answer | None] = [done.get(record.id) for record in records]
        todo = [index for index, answer in enumerate(answers) if answer is None]
        if todo and done:
            reporter.log(f"{annotator.name}: {len(records) - len(todo)} answers kept from before")
        part = [records[index] for index in todo]

        def sink(
            indices: list[int],
            got: list[Answer],
            part: list[Record] = part,
            name: str = annotator.name,
        ) -> None:
            assert checkpoint is not None
            checkpoint.record(name, [part[i].id for i in indices], got)

        use_sink = checkpoint is not None and annotator.kind != "human"
        try:
            fresh = annotator.annotate(part, sink if use_sink else None) if part else []
        finally:
            annotator.close()
        for index, answer in zip(todo, fresh, strict=True):
            answers[index] = answer
        collected[annotator.name] = [a if a is not None else Answer(None, FAILED) for a in answers]
    return collected


def read_labelled(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a labelled file (``coannotate`` or ``merge`` output), as written; a
    file without ``annotations`` is a one-line error."""
    from augtool.data.jsonl import iter_json_lines
    from augtool.errors import DataError

    rows = []
    for line, _, obj in iter_json_lines(path):
        if not isinstance(obj, dict):
            raise DataError(path, "expected a JSON object", line=line)
        if not isinstance(obj.get(ANNOTATIONS), dict):
            raise DataError(
                path,
                f'no "{ANNOTATIONS}" object: not a file written by `augtool coannotate`',
                line=line,
            )
        if obj.get("id") is None:
            raise DataError(path, 'missing field "id"', line=line)
        rows.append(obj)
    if not rows:
        raise DataError(path, "no records (the file is empty)")
    return rows


def source_meta(path: str | Path) -> dict[str, Any]:
    """The ``<file>.meta.json`` of a labelled file (empty when missing or unreadable)."""
    from augtool.data.writer import sidecar

    try:
        meta = json.loads(sidecar(path, ".meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def merge_decisions(
    rows: Sequence[dict[str, Any]],
    decisions: Sequence[Any],
    *,
    labelled: str | Path,
    label_field: str = "label",
    known_labels: Sequence[str] | None = None,
    review_name: str = "",
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``rows`` with people's decisions folded in (human wins): a decided row takes the
    decision as its label and records ``coannotation.source = "human"``, the aggregate's
    label and where the decision came from. Every decision must name a row of
    ``labelled``, once, with a known label; nothing is changed when one does not."""
    from augtool.errors import AugtoolError

    index = {str(row["id"]): position for position, row in enumerate(rows)}
    seen: dict[str, str] = {}
    for decision in decisions:
        if decision.row_id not in index:
            raise AugtoolError(f'{decision.where}: id "{decision.row_id}" is not in {labelled}')
        if decision.row_id in seen:
            raise AugtoolError(
                f'{decision.where}: id "{decision.row_id}" is decided twice '
                f"(first at {seen[decision.row_id]})"
            )
        seen[decision.row_id] = decision.where
        if decision.label is not None and known_labels and decision.label not in known_labels:
            raise AugtoolError(
                f'{decision.where}: label "{decision.label}" is not one of the labels of '
                f"{labelled} ({', '.join(known_labels)})"
            )
    merged = [dict(row) for row in rows]
    counts = {"rows": len(rows), "decided": 0, "changed": 0, "undecided": 0}
    for decision in decisions:
        if decision.label is None:
            counts["undecided"] += 1
            continue
        row = merged[index[decision.row_id]]
        before = row.get(label_field)
        provenance = dict(row.get(PROVENANCE) or {})
        if provenance.get("source") == "human" and "aggregate_label" in provenance:
            before = provenance["aggregate_label"]  # merged before: keep the aggregate's
        provenance.update({"source": "human", "aggregate_label": before, "review": review_name})
        if decision.reviewers:
            provenance["reviewers"] = list(decision.reviewers)
        provenance["augtool"] = __version__
        row[label_field] = decision.label
        row[PROVENANCE] = provenance
        counts["decided"] += 1
        counts["changed"] += int(decision.label != before)
    return merged, counts
