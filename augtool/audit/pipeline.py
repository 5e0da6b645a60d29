"""Run the checks of ``augtool audit`` over embedded sets and assemble the report.

Everything here takes precomputed embeddings (BERTopic's pattern): the CLI reads the
files, embeds them once and loads the judge; :func:`audit_sets` runs the checks and
returns the JSON-serialisable report; :func:`apply_gates` adds the ``--fail-under``
verdicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from augtool.audit.config import AuditConfig
from augtool.audit.distribution import distribution_check
from augtool.audit.diversity import diversity, duplicates
from augtool.audit.fidelity import LabelFidelity, oof_label_issues
from augtool.audit.judges import AuditSet
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import Record

#: ``judge(aset, embeddings) -> LabelFidelity`` for one set (model and LLM judges).
Judge = Callable[[AuditSet, np.ndarray], LabelFidelity]
#: Characters of a row's text kept in the report's flagged rows.
TEXT_LIMIT = 300


def _short(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 3] + "..."


def _tagged(
    flagged: Sequence[Mapping[str, Any]], aset: AuditSet, index: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Flagged rows with their set, text and label, for the report."""
    out = []
    for row in flagged:
        i = index.get(str(row["id"]))
        extra: dict[str, Any] = {"set": aset.name}
        if i is not None:
            extra["text"] = _short(aset.texts[i])
            extra["label"] = aset.labels[i]
            extra["method"] = aset.methods[i]
        out.append({**extra, **row})
    return out


def label_counts(records: Sequence[Record]) -> dict[str, int]:
    """Rows per hard label (soft labels by their heaviest label)."""
    from augtool.audit.fidelity import hard_label

    counts: dict[str, int] = {}
    for record in records:
        label = record.label_dist or record.label
        if label is None:
            continue
        name = hard_label(label)
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def audit_sets(
    settings: AuditConfig,
    reference: Sequence[Record],
    ref_emb: np.ndarray,
    sets: Sequence[AuditSet],
    embeddings: Sequence[np.ndarray],
    *,
    judge: Judge | None = None,
    reporter: Reporter = SILENT,
) -> dict[str, Any]:
    """The report (without gates) of every set against the reference.

    The label check uses ``judge`` when given, else the offline cleanlab judge.
    """
    chosen = settings.check_list()
    checks: dict[str, dict[str, Any]] = {name: {"figures": {}, "flagged": []} for name in chosen}
    ref_texts = [r.text or "" for r in reference]
    ref_labels = [r.label_dist or r.label for r in reference]
    for aset, emb in zip(sets, embeddings, strict=True):
        index = {row_id: i for i, row_id in enumerate(aset.ids)}
        reporter.log(f"{aset.name}: {len(aset.records)} rows")

        def add(check: str, figures: dict[str, Any], flagged: Sequence[Mapping[str, Any]]) -> None:
            checks[check]["figures"][aset.name] = figures  # noqa: B023 - used at once
            checks[check]["flagged"].extend(_tagged(flagged, aset, index))  # noqa: B023

        if "label" in chosen:
            reporter.log(f"{aset.name}: label fidelity")
            if judge is not None:
                result = judge(aset, emb)
            else:
                from augtool.audit.fidelity import hard_label

                result = oof_label_issues(
                    ref_emb,
                    [hard_label(x) for x in ref_labels],
                    aset.ids,
                    emb,
                    aset.labels,
                    methods=aset.methods,
                    lams=aset.lams,
                    folds=settings.folds,
                    seed=settings.seed,
                )
            add("label", result.figures, result.flagged)
        if "distribution" in chosen:
            reporter.log(f"{aset.name}: distribution")
            result = distribution_check(
                aset.ids, emb, ref_emb, seeds=settings.seeds, mauve=settings.mauve
            )
            add("distribution", result.figures, result.flagged)
        if "diversity" in chosen:
            reporter.log(f"{aset.name}: diversity")
            result = diversity(
                aset.ids,
                aset.texts,
                ref_texts,
                emb,
                ref_emb,
                overlap_threshold=settings.overlap_threshold,
                bleu_sample=settings.bleu_sample,
                seed=settings.seed,
                ref_ids=[r.id for r in reference],
            )
            figures = dict(result.figures)
            flagged_share = len(result.flagged) / len(aset.records) if aset.records else 0.0
            figures["novelty_score"] = round(1.0 - flagged_share, 6)
            add("diversity", figures, result.flagged)
        if "duplicates" in chosen:
            reporter.log(f"{aset.name}: duplicates")
            result = duplicates(
                aset.ids,
                aset.texts,
                emb,
                ref_texts,
                ref_emb,
                threshold=settings.duplicate_threshold,
                ref_ids=[r.id for r in reference],
            )
            figures = dict(result.figures)
            figures["uniqueness"] = round(1.0 - figures["duplicate_share"], 6)
            add("duplicates", figures, result.flagged)
    return {
        "reference": {
            "rows": len(reference),
            "labels": label_counts(reference),
        },
        "sets": [
            {
                "name": aset.name,
                "path": aset.path,
                "rows": len(aset.records),
                "methods": aset.method_counts(),
                "provenance": aset.provenance,
            }
            for aset in sets
        ],
        "checks": {name: checks[name] for name in chosen},
    }


def gate_value(report: Mapping[str, Any], gate: str, set_name: str) -> float | None:
    """The score a ``--fail-under`` gate reads for one set (``None`` when not measured)."""
    checks = report["checks"]
    where = {
        "label": ("label", "fidelity"),
        "duplicates": ("duplicates", "uniqueness"),
        "novelty": ("diversity", "novelty_score"),
        "distinct_2": ("diversity", "distinct_2"),
        "precision": ("distribution", "precision"),
        "recall": ("distribution", "recall"),
        "mauve": ("distribution", "mauve"),
    }[gate]
    figures = checks.get(where[0], {}).get("figures", {}).get(set_name)
    if figures is None:
        return None
    value = figures.get(where[1])
    if isinstance(value, Mapping):
        value = value.get("mean")
    return None if value is None else float(value)


def apply_gates(report: dict[str, Any], gates: Mapping[str, float]) -> bool:
    """Add ``gates`` (one verdict per gate and set) and ``passed`` to the report."""
    verdicts = []
    for gate, threshold in gates.items():
        for entry in report["sets"]:
            value = gate_value(report, gate, entry["name"])
            verdicts.append(
                {
                    "check": gate,
                    "set": entry["name"],
                    "value": value,
                    "threshold": threshold,
                    "passed": value is not None and value >= threshold,
                }
            )
    report["gates"] = verdicts
    report["passed"] = all(v["passed"] for v in verdicts)
    return report["passed"]
