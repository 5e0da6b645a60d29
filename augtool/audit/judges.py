"""The label judges of ``augtool audit`` beside the offline cleanlab one (fidelity.py).

- ``model:DIR``: a task model saved by ``augtool train``. A row is an issue when the
  model's most likely label is one the row does not carry (not its hard label; outside
  the support of its soft label).
- ``hf:``/``openai:``: an LLM asked inversedMixup's prompts through the LLM layer (cache,
  retries, ``--max-requests``). Hard-label rows get A.3's labelling prompt (the same
  requests as ``augtool llm label``): an issue when the answer names another label.
  Mixed rows (a soft label over two or more labels) get A.4's two steps
  (:mod:`augtool.audit.intrusion`): an issue when the judge says the interpolated label
  does not fit (an Inside or Outside intrusion). Replies naming nothing are *unjudged*:
  counted, never guessed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from augtool.audit.fidelity import LabelFidelity, RowFidelity, fidelity_figures, hard_label
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import Record
from augtool.errors import AugtoolError


@dataclass
class AuditSet:
    """One audited file: its rows with their method and lambda (``None`` when absent)."""

    name: str
    path: str
    records: list[Record]
    methods: list[str] = field(default_factory=list)
    lams: list[float | None] = field(default_factory=list)

    @classmethod
    def from_records(cls, name: str, path: str, records: list[Record]) -> AuditSet:
        """Methods from each row's ``aug.method`` (the set's name when a row has no
        provenance) and lambda from ``aug.lambda``."""
        methods, lams = [], []
        for record in records:
            aug = record.aug or {}
            methods.append(str(aug.get("method") or name))
            lam = aug.get("lambda")
            lams.append(float(lam) if isinstance(lam, (int, float)) else None)
        return cls(name, path, records, methods, lams)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def texts(self) -> list[str]:
        return [r.text or "" for r in self.records]

    @property
    def labels(self) -> list[str | dict[str, float] | None]:
        """Each row's soft label when it has one, else its hard label."""
        return [dict(r.label_dist) if r.label_dist else r.label for r in self.records]

    @property
    def provenance(self) -> bool:
        """Whether any row says which augmenter wrote it (``aug.method``)."""
        return any((r.aug or {}).get("method") for r in self.records)

    def method_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for method in self.methods:
            counts[method] = counts.get(method, 0) + 1
        return dict(sorted(counts.items()))


def sample_indices(count: int, size: int, seed: int) -> list[int]:
    """A seeded sample of ``size`` row indices in order (all rows for 0 or when fewer)."""
    if size == 0 or size >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), size))


def support(label: str | Mapping[str, float] | None) -> set[str]:
    """The labels a row carries: its hard label, or every label of positive weight."""
    if label is None:
        return set()
    if isinstance(label, Mapping):
        return {name for name, weight in label.items() if weight > 0}
    return {str(label)}


def _fidelity(
    aset: AuditSet,
    indices: Sequence[int],
    rows: list[RowFidelity],
    reasons: list[str],
    extra: dict[str, Any],
) -> LabelFidelity:
    methods = [aset.methods[i] for i in indices]
    lams = [aset.lams[i] for i in indices]
    figures = fidelity_figures(
        [r.issue for r in rows], methods, lams, judged=[r.judged for r in rows]
    )
    figures.update(extra)
    figures["sampled"] = len(indices)
    flagged = [
        {"id": row.id, "kind": "label", "reason": reason, "confidence": row.self_confidence}
        for row, reason in zip(rows, reasons, strict=True)
        if row.issue
    ]
    return LabelFidelity(rows=rows, figures=figures, flagged=flagged)


def model_label_issues(
    model: Any,
    aset: AuditSet,
    indices: Sequence[int],
    embeddings: np.ndarray | None = None,
    *,
    batch_size: int = 64,
) -> LabelFidelity:
    """Judge rows ``indices`` of ``aset`` with a task model (``embeddings``: the rows'
    vectors in the model's own encoder space, to skip encoding them again)."""
    from augtool.core.taskmodel.model import softmax

    labels = [aset.labels[i] for i in indices]
    unknown = sorted({name for label in labels for name in support(label)} - set(model.labels))
    if unknown:
        raise AugtoolError(
            f"{aset.path}: rows carry label(s) {', '.join(unknown)} that the task model "
            f"does not predict (it knows: {', '.join(model.labels)})"
        )
    if embeddings is not None:
        logits = model.logits_from_embeddings(np.asarray(embeddings)[list(indices)])
    else:
        logits = model.logits([aset.texts[i] for i in indices], batch_size=batch_size)
    probs = softmax(np.asarray(logits))
    column = {name: j for j, name in enumerate(model.labels)}
    rows, reasons = [], []
    for k, i in enumerate(indices):
        given = hard_label(labels[k]) if labels[k] is not None else ""
        predicted = model.labels[int(np.argmax(probs[k]))]
        issue = predicted not in support(labels[k])
        confidence = round(float(probs[k, column[given]]), 6) if given in column else 0.0
        rows.append(
            RowFidelity(
                id=aset.ids[i],
                label=given,
                predicted=predicted,
                self_confidence=confidence,
                issue=issue,
                method=aset.methods[i],
                lam=aset.lams[i],
            )
        )
        reasons.append(
            f"given {given!r} (p={confidence:.3f}), the task model predicts {predicted!r}"
        )
    return _fidelity(aset, indices, rows, reasons, {"judge": "model"})


def _mixed(record: Record, label: Mapping[str, float], lam: float | None) -> Any:
    """A mixed row for :func:`augtool.audit.intrusion.judge`: parents and lambda from
    ``aug`` when it has them, else the two heaviest labels of the soft label."""
    from augtool.audit.intrusion import Mixed

    aug = record.aug or {}
    parents = aug.get("parent_labels")
    ranked = sorted(label, key=lambda name: (-label[name], name))
    if parents and len(parents) == 2 and lam is not None:
        first, second = str(parents[0]), str(parents[1])
    else:
        first, second = ranked[0], ranked[1]
        total = label[first] + label[second]
        lam = label[first] / total if total else 0.5
    return Mixed(record, float(lam), first, second, dict(label))


def llm_label_issues(
    llm: Any,
    label_set: Any,
    aset: AuditSet,
    indices: Sequence[int],
    *,
    templates: Mapping[str, Any],
    scoring: str,
    params: Any,
    seed: int = 0,
    budget: Any = None,
    reporter: Reporter = SILENT,
) -> LabelFidelity:
    """Judge rows ``indices`` of ``aset`` with an LLM: A.3 for hard labels, A.4 for mixed
    rows. ``templates`` holds ``label`` (A.3), ``match`` and ``intrusion_label`` (A.4)."""
    from augtool.audit.intrusion import judge as intrusion_judge
    from augtool.methods.coannotate.annotators import ANSWERED, AnnotatorSpec, LLMAnnotator

    labels = [aset.labels[i] for i in indices]
    label_set.require(sorted({name for label in labels for name in support(label)}), aset.path)
    mixed_at = [k for k, label in enumerate(labels) if len(support(label)) >= 2]
    hard_at = [k for k in range(len(indices)) if k not in set(mixed_at)]
    records = [aset.records[i] for i in indices]
    verdicts: dict[int, tuple[bool, bool, str, str, float]] = {}
    intrusion = {"none": 0, "inside": 0, "outside": 0, "unjudged": 0}
    if hard_at:
        spec = AnnotatorSpec(
            name="judge", scheme=llm.scheme, target=llm.model, text=f"{llm.scheme}:{llm.model}"
        )
        annotator = LLMAnnotator(
            spec,
            llm,
            label_set,
            templates["label"],
            scoring=scoring,
            params=params,
            seed=seed,
            budget=budget,
            reporter=reporter,
        )
        answers = annotator.annotate([records[k] for k in hard_at])
        for k, answer in zip(hard_at, answers, strict=True):
            given = str(labels[k])
            judged = answer.status == ANSWERED
            issue = judged and answer.label != given
            scores = answer.evidence.get("scores") or {}
            confidence = float(scores.get(given, float("nan"))) if scores else float("nan")
            if judged:
                reason = f"given {given!r}, the judge answers {answer.label!r} (A.3)"
            else:
                reason = f"no verdict ({answer.status})"
            verdicts[k] = (issue, judged, answer.label or "", reason, confidence)
    if mixed_at:
        mixed = [_mixed(records[k], labels[k], aset.lams[indices[k]]) for k in mixed_at]
        advance = reporter.task("judging mixed rows (A.4)", len(mixed))
        results = intrusion_judge(
            mixed,
            llm,
            label_set,
            scoring=scoring,
            max_new_tokens=params.max_new_tokens,
            match_template=templates["match"],
            label_template=templates["intrusion_label"],
            budget=budget,
        )
        advance(len(mixed))
        for k, result in zip(mixed_at, results, strict=True):
            verdict = result["verdict"]
            intrusion[verdict] += 1
            judged = verdict != "unjudged"
            issue = verdict in ("inside", "outside")
            if issue:
                reason = (
                    f"the judge says {result['label_text']!r} does not fit; it picks "
                    f"{result['judged_label']!r} ({verdict} intrusion, A.4)"
                )
            elif judged:
                reason = f"{result['label_text']!r} fits (A.4)"
            else:
                reason = "no verdict (unparsed reply)"
            verdicts[k] = (issue, judged, result["judged_label"] or "", reason, float("nan"))
    rows, reasons = [], []
    for k, i in enumerate(indices):
        issue, judged, predicted, reason, confidence = verdicts[k]
        rows.append(
            RowFidelity(
                id=aset.ids[i],
                label=hard_label(labels[k]),
                predicted=predicted,
                self_confidence=round(confidence, 6) if confidence == confidence else None,
                issue=issue,
                method=aset.methods[i],
                lam=aset.lams[i],
                judged=judged,
            )
        )
        reasons.append(reason)
    extra = {"judge": "llm", "scoring": scoring, "mixed_rows": len(mixed_at)}
    if mixed_at:
        extra["intrusion"] = intrusion
    return _fidelity(aset, indices, rows, reasons, extra)
