"""Mixture pairs (``lmmixup build`` output) read back for training, and the TRL datasets
made from them.

A row: ``{"id", "schema", "inputs": [low-quality texts], "target": clean sample text}``
(plus ``target_fields`` and ``aug``); a file holds one schema. SFT learns
``prompt(inputs) -> <answer>target</answer>``; GRPO samples completions of
``prompt(inputs)`` and scores them against ``target``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from augtool.data.jsonl import Rejected, check_input_file, iter_json_lines, reject_row
from augtool.errors import DataError
from augtool.methods.lmmixup.schema import SCHEMAS, mixed_schemas, mixup_prompt, wrap_answer


def _check_row(row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    for name in ("inputs", "target"):
        if name not in row:
            present = ", ".join(sorted(row)) or "none"
            raise ValueError(
                f'missing field "{name}" (mixture rows need inputs/target/schema, as written '
                f"by `augtool lmmixup build`; fields present: {present})"
            )
    inputs = row["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise ValueError('field "inputs" must be a non-empty list of strings')
    if not all(isinstance(text, str) and text.strip() for text in inputs):
        raise ValueError('field "inputs" must hold non-empty strings')
    if not isinstance(row["target"], str) or not row["target"].strip():
        raise ValueError('field "target" must be a non-empty string')
    schema = row.get("schema", "instruction")
    if schema not in SCHEMAS:
        raise ValueError(f'field "schema" must be one of {", ".join(SCHEMAS)} (got {schema!r})')
    return {**row, "schema": schema}


def read_mixture(
    path: str | Path, *, rejects: list[Rejected] | None = None
) -> list[dict[str, Any]]:
    """Every valid mixture row of ``path``; a bad row is a one-line error naming the line
    (or goes to ``rejects``); an empty file is an error. Every row has the schema of the
    first valid one (a row of another schema is a bad row: one schema per file)."""
    path = check_input_file(path)
    rows: list[dict[str, Any]] = []
    for number, raw, obj in iter_json_lines(path, rejects=rejects):
        try:
            row = _check_row(obj)
            if rows and row["schema"] != rows[0]["schema"]:
                raise ValueError(mixed_schemas(row["schema"], rows[0]["schema"]))
        except ValueError as exc:
            reject_row(path, number, str(exc), raw, rejects)
            continue
        if row.get("id") is None:  # absent, null or an empty CSV cell
            row["id"] = f"{path.stem}-{number}"
        rows.append(row)
    if not rows:
        raise DataError(path, "no valid mixture row (the file is empty or every row was rejected)")
    return rows


def render_prompt(messages: list[dict[str, str]], tokenizer: Any) -> Any:
    """The prompt as TRL should get it: chat messages when the tokenizer has a chat
    template, else plain text (system and user turns joined)."""
    if getattr(tokenizer, "chat_template", None):
        return messages
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


def sft_records(rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """Prompt-completion records for TRL's SFTTrainer (loss on the completion only)."""
    records = []
    for row in rows:
        prompt = render_prompt(mixup_prompt(row["inputs"], row["schema"]), tokenizer)
        target = wrap_answer(row["target"])
        if isinstance(prompt, list):
            completion: Any = [{"role": "assistant", "content": target}]
        else:
            completion = target + (tokenizer.eos_token or "")
        records.append({"prompt": prompt, "completion": completion})
    return records


def grpo_records(rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """Prompt records for TRL's GRPOTrainer; ``reference``, ``inputs`` and ``schema``
    reach the reward functions as keyword arguments."""
    return [
        {
            "prompt": render_prompt(mixup_prompt(row["inputs"], row["schema"]), tokenizer),
            "reference": row["target"],
            "inputs": list(row["inputs"]),
            "schema": row["schema"],
        }
        for row in rows
    ]
