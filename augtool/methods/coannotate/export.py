"""The review set in annotation tools' import formats, and their exports read back.

Written locally, no server needed:

- Argilla (v2): a records JSON list as ``dataset.records.to_json`` writes it and
  ``dataset.records.from_json`` reads it: ``id``, ``fields`` (``text`` and the
  annotators' answers as ``annotations``), ``metadata`` (agreement, confidence) and the
  aggregate as a suggestion of the ``label`` question.
- Label Studio: a tasks JSON list (``data`` with ``text``, ``row_id`` and
  ``annotations``; one prediction per annotator and one for the aggregate) and the
  labelling config (``<View>`` XML) to paste into the project.

:func:`read_decisions` reads a reviewed set back for ``augtool coannotate merge``: the
JSONL review file with ``label`` filled in, a Label Studio JSON export, or an Argilla
records JSON export.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from augtool.errors import DataError

ANNOTATIONS = "annotations"


def export_paths(review: str | Path, kind: str) -> list[Path]:
    """Where ``--export KIND`` writes, beside the review file ``review``."""
    review = Path(review)
    stem = review.with_suffix("") if review.suffix.lower() in (".jsonl", ".json") else review
    if kind == "argilla":
        return [stem.with_name(stem.name + ".argilla.json")]
    return [
        stem.with_name(stem.name + ".label-studio.json"),
        stem.with_name(stem.name + ".label-studio.xml"),
    ]


def _answers_text(row: dict[str, Any]) -> str:
    answers = row.get(ANNOTATIONS) or {}
    return "\n".join(
        f"{name}: {label if label is not None else '(none)'}" for name, label in answers.items()
    )


def argilla_records(
    review: Sequence[dict[str, Any]],
    *,
    method: str,
    question: str = "label",
    id_field: str = "id",
    text_field: str = "text",
) -> list[dict[str, Any]]:
    """Argilla v2 records (``DatasetRecords.to_json`` layout) for the review rows."""
    records = []
    for row in review:
        metadata = {
            key: row[key] for key in ("agreement", "confidence") if row.get(key) is not None
        }
        suggestions = {}
        if row.get("suggested_label") is not None:
            suggestions[question] = {
                "value": row["suggested_label"],
                "score": row.get("confidence"),
                "agent": f"augtool coannotate ({method})",
            }
        records.append(
            {
                "id": str(row[id_field]),
                "fields": {"text": row.get(text_field) or "", ANNOTATIONS: _answers_text(row)},
                "metadata": metadata,
                "suggestions": suggestions,
                "responses": {},
                "vectors": {},
                "_server_id": None,
            }
        )
    return records


def _choice(question: str, label: str) -> dict[str, Any]:
    return {
        "from_name": question,
        "to_name": "text",
        "type": "choices",
        "value": {"choices": [label]},
    }


def label_studio_tasks(
    review: Sequence[dict[str, Any]],
    *,
    method: str,
    question: str = "label",
    id_field: str = "id",
    text_field: str = "text",
) -> list[dict[str, Any]]:
    """Label Studio tasks with predictions (the aggregate's and each annotator's)."""
    tasks = []
    for row in review:
        predictions = []
        if row.get("suggested_label") is not None:
            prediction: dict[str, Any] = {
                "model_version": f"aggregate ({method})",
                "result": [_choice(question, row["suggested_label"])],
            }
            if row.get("confidence") is not None:
                prediction["score"] = row["confidence"]
            predictions.append(prediction)
        for name, label in (row.get(ANNOTATIONS) or {}).items():
            if label is not None:
                predictions.append({"model_version": name, "result": [_choice(question, label)]})
        data = {
            "text": row.get(text_field) or "",
            "row_id": str(row[id_field]),
            ANNOTATIONS: _answers_text(row),
        }
        for key in ("agreement", "confidence"):
            if row.get(key) is not None:
                data[key] = row[key]
        tasks.append({"data": data, "predictions": predictions})
    return tasks


def label_studio_config(labels: Sequence[str], question: str = "label") -> str:
    """The labelling config (XML) matching :func:`label_studio_tasks`."""
    choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
    return (
        "<View>\n"
        '  <Text name="text" value="$text"/>\n'
        '  <Header value="What the annotators said"/>\n'
        '  <Text name="annotations" value="$annotations"/>\n'
        f'  <Choices name={quoteattr(question)} toName="text" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def write_export(
    kind: str,
    review_path: str | Path,
    review: Sequence[dict[str, Any]],
    labels: Sequence[str],
    *,
    method: str,
    id_field: str = "id",
    text_field: str = "text",
) -> list[Path]:
    """Write the review set in ``kind``'s format (see :func:`export_paths`)."""
    from augtool.data.writer import atomic_write_text, write_json

    paths = export_paths(review_path, kind)
    options = {"method": method, "id_field": id_field, "text_field": text_field}
    if kind == "argilla":
        write_json(paths[0], argilla_records(review, **options))
    else:
        write_json(paths[0], label_studio_tasks(review, **options))
        atomic_write_text(paths[1], label_studio_config(labels))
    return paths


@dataclass
class Decision:
    """A reviewer's label for one row (``None``: left undecided)."""

    row_id: str
    label: str | None
    where: str
    line: int | None = None
    reviewers: list[str] = field(default_factory=list)


def read_decisions(
    path: str | Path, *, label_field: str = "label", question: str = "label", id_field: str = "id"
) -> tuple[str, list[Decision]]:
    """The decisions in a reviewed file, and its format (``jsonl``, ``label-studio`` or
    ``argilla``); a malformed row is a one-line error naming the file and row."""
    from augtool.data.jsonl import check_input_file

    path = check_input_file(path)
    try:
        head = path.read_text(encoding="utf-8-sig").lstrip()[:1]
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not valid UTF-8 ({exc.reason})") from exc
    if head == "[":
        try:
            items = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON ({exc.msg})", line=exc.lineno) from exc
        if items and isinstance(items[0], dict) and "fields" in items[0]:
            return "argilla", _argilla_decisions(path, items, question)
        return "label-studio", _label_studio_decisions(path, items, question)
    return "jsonl", _jsonl_decisions(path, label_field, id_field)


def _jsonl_decisions(path: Path, label_field: str, id_field: str) -> list[Decision]:
    from augtool.data.jsonl import iter_json_lines

    decisions = []
    for line, _, obj in iter_json_lines(path):
        if not isinstance(obj, dict):
            raise DataError(path, "expected a JSON object", line=line)
        row_id = obj.get(id_field)
        if row_id is None or isinstance(row_id, (bool, dict, list)):
            raise DataError(path, f'missing field "{id_field}"', line=line)
        label = obj.get(label_field)
        if label is not None and (isinstance(label, (bool, dict, list)) or not str(label).strip()):
            raise DataError(path, f'field "{label_field}" must be a label or null', line=line)
        decisions.append(
            Decision(str(row_id), None if label is None else str(label), f"{path}:{line}", line)
        )
    return decisions


def _label_studio_decisions(path: Path, items: Any, question: str) -> list[Decision]:
    if not isinstance(items, list):
        raise DataError(path, "expected a JSON list of Label Studio tasks")
    decisions = []
    for number, task in enumerate(items, start=1):
        where = f"{path}: task {number}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or data.get("row_id", data.get("id")) is None:
            raise DataError(path, f"task {number}: no data.row_id (not an augtool export?)")
        label, reviewers = None, []
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            for result in annotation.get("result") or []:
                if not isinstance(result, dict) or result.get("from_name") != question:
                    continue
                choices = (result.get("value") or {}).get("choices")
                if choices:
                    label = str(choices[0])  # the latest annotation wins
                    if annotation.get("completed_by") is not None:
                        reviewers.append(str(annotation["completed_by"]))
        decisions.append(
            Decision(str(data.get("row_id", data.get("id"))), label, where, None, reviewers)
        )
    return decisions


def _argilla_decisions(path: Path, items: Any, question: str) -> list[Decision]:
    decisions = []
    for number, record in enumerate(items, start=1):
        where = f"{path}: record {number}"
        if not isinstance(record, dict) or record.get("id") is None:
            raise DataError(path, f"record {number}: no id")
        responses = (record.get("responses") or {}).get(question) or []
        values = [
            str(r["value"]) for r in responses if isinstance(r, dict) and r.get("value") is not None
        ]
        label = None
        if values:
            ranked = Counter(values).most_common()
            if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
                label = ranked[0][0]  # reviewers split evenly: left undecided
        reviewers = [
            str(r.get("user_id")) for r in responses if isinstance(r, dict) and r.get("user_id")
        ]
        decisions.append(Decision(str(record["id"]), label, where, None, reviewers))
    return decisions
