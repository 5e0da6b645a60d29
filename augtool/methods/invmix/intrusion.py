"""Manifold intrusion in text Mixup, judged by an LLM.

For each mixed row (parents labelled ``y_a`` and ``y_b``, weight ``lambda`` on ``a``) the
judge answers two prompts (prompts module: ``invmix.intrusion-label`` and
``invmix.intrusion-region``): which label fits the text, and whether it lies Inside the
two parents' classes or Outside them. The verdict:

- ``outside``: the region judge says Outside, or the judged label is neither parent's;
- ``inside``: Inside, but the judged label is the parent label lambda does *not* favour
  (the mixed soft label contradicts what the text is);
- ``none``: Inside and the judged label is the one lambda favours (no intrusion);
- ``unjudged``: a reply named no label.

Proportions are reported per lambda bin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from augtool.core.generation.labels import LabelSet, label_set_from
from augtool.core.generation.prompts import (
    AUGTOOL_INTRUSION_LABEL as INTRUSION_JUDGE_LABEL,
)
from augtool.core.generation.prompts import (
    AUGTOOL_INTRUSION_MATCH as INTRUSION_JUDGE_REGION,
)
from augtool.core.generation.prompts import (
    PromptTemplate,
)
from augtool.data.records import Record
from augtool.errors import AugtoolError

VERDICTS = ("none", "inside", "outside", "unjudged")
REGIONS = label_set_from(["Inside", "Outside"], "intrusion")


@dataclass
class Mixed:
    record: Record
    lam: float
    label_a: str
    label_b: str

    @property
    def favoured(self) -> str:
        return self.label_a if self.lam >= 0.5 else self.label_b

    @property
    def other(self) -> str:
        return self.label_b if self.lam >= 0.5 else self.label_a


def mixed_rows(records: list[Record]) -> list[Mixed]:
    """The rows written by ``invmix generate`` (their ``aug`` has lambda and parent labels)."""
    rows = []
    for record in records:
        aug = record.aug or {}
        parents = aug.get("parent_labels")
        if aug.get("method") != "invmix" or "lambda" not in aug or not parents:
            continue
        rows.append(Mixed(record, float(aug["lambda"]), str(parents[0]), str(parents[1])))
    if not rows:
        raise AugtoolError(
            "no rows written by `augtool invmix generate` (with lambda and parent "
            "labels in `aug`) in the input"
        )
    return rows


def verdict(mixed: Mixed, label: str | None, region: str | None) -> str:
    if label is None or region is None:
        return "unjudged"
    if region == "Outside" or label not in (mixed.label_a, mixed.label_b):
        return "outside"
    if mixed.label_a != mixed.label_b and label == mixed.other:
        return "inside"
    return "none"


LABEL_PLACEHOLDERS = {"text", "label_descriptions"}
REGION_PLACEHOLDERS = {"text", "label_a", "label_b"}


def judge(
    rows: list[Mixed],
    llm: Any,
    label_set: LabelSet,
    *,
    scoring: str,
    max_new_tokens: int = 16,
    label_template: PromptTemplate = INTRUSION_JUDGE_LABEL,
    region_template: PromptTemplate = INTRUSION_JUDGE_REGION,
) -> list[dict[str, Any]]:
    """Ask the judge both prompts for every row."""
    from augtool.core.generation.params import Failure, GenerationParams

    label_prompts = [
        label_template.render(text=m.record.text, label_descriptions=label_set.describe())
        for m in rows
    ]
    region_prompts = [
        region_template.render(text=m.record.text, label_a=m.label_a, label_b=m.label_b)
        for m in rows
    ]
    if scoring == "loglik":

        def pick(prompts: list[Any], options: LabelSet) -> list[tuple[str | None, Any]]:
            names = options.names
            out = []
            for scores in llm.score(prompts, names):
                values = [s.mean for s in scores]
                best = max(range(len(names)), key=values.__getitem__)
                out.append(
                    (names[best], {n: round(v, 6) for n, v in zip(names, values, strict=True)})
                )
            return out
    else:

        def pick(prompts: list[Any], options: LabelSet) -> list[tuple[str | None, Any]]:
            replies = llm.generate(
                prompts, GenerationParams(max_new_tokens, 0.0), list(range(len(prompts)))
            )
            return [
                (None, r.error) if isinstance(r, Failure) else (options.parse(r), r)
                for r in replies
            ]

    labels = pick(label_prompts, label_set)
    regions = pick(region_prompts, REGIONS)
    results = []
    for mixed, (label, label_evidence), (region, region_evidence) in zip(
        rows, labels, regions, strict=True
    ):
        results.append(
            {
                "id": mixed.record.id,
                "lambda": mixed.lam,
                "parent_labels": [mixed.label_a, mixed.label_b],
                "judged_label": label,
                "region": region,
                "verdict": verdict(mixed, label, region),
                "evidence": {"label": label_evidence, "region": region_evidence},
            }
        )
    return results


def by_lambda_bin(results: list[dict[str, Any]], bins: int) -> list[dict[str, Any]]:
    """Counts and proportions of each verdict in ``bins`` equal lambda bins over [0, 1]."""
    table = []
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        members = [
            r
            for r in results
            if low <= r["lambda"] < high or (index == bins - 1 and r["lambda"] == 1.0)
        ]
        counts = {v: sum(1 for r in members if r["verdict"] == v) for v in VERDICTS}
        total = len(members)
        table.append(
            {
                "lambda": [round(low, 4), round(high, 4)],
                "n": total,
                "counts": counts,
                "proportions": {
                    v: round(c / total, 6) if total else None for v, c in counts.items()
                },
            }
        )
    return table


def summarise(results: list[dict[str, Any]], bins: int) -> dict[str, Any]:
    counts = {v: sum(1 for r in results if r["verdict"] == v) for v in VERDICTS}
    return {
        "n": len(results),
        "counts": counts,
        "proportions": {v: round(c / len(results), 6) for v, c in counts.items()},
        "bins": by_lambda_bin(results, bins),
    }
