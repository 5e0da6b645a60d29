"""Manifold intrusion in text Mixup, judged by an LLM as in inversedMixup App. A.4.

The measure behind ``augtool invmix intrusion`` and the LLM judge of ``augtool audit`` on
mixed rows (written once, here).

For each mixed row (parents labelled ``y_a`` and ``y_b``, weight ``lambda`` on ``a``):

1. **Does the interpolated label fit?** The judge gets the paper's first prompt
   (``prompts.INTRUSION_MATCH``) with ``{label_text}``, the row's soft label in words
   (:func:`label_text`, e.g. "70% Location and 30% Entity"). "Yes" means no intrusion.
2. **Inside or Outside?** Only for "No" rows, the second prompt
   (``prompts.INTRUSION_LABEL``, ``{label_map}`` = every label text) asks for one label.
   One of the two parents' labels is an *Inside* intrusion, any other label *Outside*.

Verdicts: ``none`` (step 1 said Yes), ``inside``, ``outside``, and ``unjudged`` when a
reply says neither Yes nor No, or names no label. The mixing ratio is folded to the
dominant parent, ``max(lambda, 1 - lambda)`` in [0.5, 1]: a row with lambda 0.3 and one
with 0.7 are the same mix seen from either parent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from augtool.core.generation.labels import LabelSet, normalize
from augtool.core.generation.prompts import INTRUSION_LABEL, INTRUSION_MATCH, PromptTemplate
from augtool.data.records import Record
from augtool.errors import AugtoolError

VERDICTS = ("none", "inside", "outside", "unjudged")
ANSWERS = ("Yes", "No")


@dataclass
class Mixed:
    """A row written by ``invmix generate``: its parents' labels, lambda and soft label."""

    record: Record
    lam: float
    label_a: str
    label_b: str
    dist: dict[str, float]

    @property
    def folded(self) -> float:
        """The weight of the dominant parent, ``max(lambda, 1 - lambda)``."""
        return max(self.lam, 1.0 - self.lam)

    @property
    def parents(self) -> tuple[str, str]:
        return (self.label_a, self.label_b)


def interpolated(lam: float, label_a: str, label_b: str) -> dict[str, float]:
    """Eq. 11 over two hard labels: ``lambda * y_a + (1 - lambda) * y_b``."""
    dist = {label_a: lam}
    dist[label_b] = dist.get(label_b, 0.0) + 1.0 - lam
    return dist


def mixed_rows(records: list[Record]) -> list[Mixed]:
    """The rows written by ``invmix generate`` (``aug`` has lambda and parent labels).

    The soft label is the row's ``label_dist`` (``--labels soft``), else Eq. 11 from
    lambda and the parents' labels (rows relabelled by an LLM keep the interpolated label
    in their provenance: that is the label intrusion is about).
    """
    rows = []
    for record in records:
        aug = record.aug or {}
        parents = aug.get("parent_labels")
        if aug.get("method") != "invmix" or "lambda" not in aug or not parents:
            continue
        lam, label_a, label_b = float(aug["lambda"]), str(parents[0]), str(parents[1])
        dist = dict(record.label_dist) if record.label_dist else {}
        dist = dist or interpolated(lam, label_a, label_b)
        rows.append(Mixed(record, lam, label_a, label_b, dist))
    if not rows:
        raise AugtoolError(
            "no rows written by `augtool invmix generate` (with lambda and parent "
            "labels in `aug`) in the input"
        )
    return rows


def sample_rows(rows: list[Mixed], size: int, seed: int) -> list[Mixed]:
    """A seeded random sample of ``size`` rows, in input order (all rows for 0, or when
    there are no more than ``size``)."""
    if size == 0 or size >= len(rows):
        return list(rows)
    chosen = sorted(random.Random(seed).sample(range(len(rows)), size))
    return [rows[i] for i in chosen]


def percentages(weights: list[float]) -> list[int]:
    """Whole percentages that sum to 100 (largest remainder)."""
    total = sum(weights)
    raw = [100.0 * w / total for w in weights]
    whole = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (whole[i] - raw[i], i))
    for i in order[: 100 - sum(whole)]:
        whole[i] += 1
    return whole


def label_text(dist: dict[str, float], label_set: LabelSet) -> str:
    """The soft label in words for A.4's ``{label_text}``: "70% Location and 30% Entity".

    Labels are shown by their text in the labels file (``LabelSet.text_of``), heaviest
    first, as whole percentages summing to 100; a label rounding to 0% is left out, and a
    single remaining label (both parents share it) is shown as just its text.
    """
    items = sorted(((n, w) for n, w in dist.items() if w > 0), key=lambda x: (-x[1], x[0]))
    if not items:
        raise AugtoolError("a mixed row has an empty soft label")
    shares = [
        (label_set.text_of(name), pct)
        for (name, _), pct in zip(items, percentages([w for _, w in items]), strict=True)
        if pct > 0
    ]
    if len(shares) == 1:
        return shares[0][0]
    parts = [f"{pct}% {text}" for text, pct in shares]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def parse_yes_no(reply: str) -> str | None:
    """ "Yes" or "No" from a reply, tolerant of case, punctuation and extra words ("Yes.",
    "Output: No"); ``None`` when it says neither or both."""
    words = normalize(reply).split()
    if not words:
        return None
    if words[0] in ("yes", "no"):
        return words[0].capitalize()
    found = {w for w in words if w in ("yes", "no")}
    return found.pop().capitalize() if len(found) == 1 else None


def verdict(mixed: Mixed, answer: str | None, label: str | None) -> str:
    """The verdict of a row from step 1's answer and step 2's label."""
    if answer == "Yes":
        return "none"
    if answer is None or label is None:
        return "unjudged"
    return "inside" if label in mixed.parents else "outside"


def _label_values(text: str | None, label_set: LabelSet) -> dict[str, str]:
    return {
        "text": text,
        "label_map": label_set.label_map(),
        "label_list": label_set.label_list(),
        "label_descriptions": label_set.describe(),
    }


def judge(
    rows: list[Mixed],
    llm: Any,
    label_set: LabelSet,
    *,
    scoring: str,
    max_new_tokens: int = 16,
    match_template: PromptTemplate = INTRUSION_MATCH,
    label_template: PromptTemplate = INTRUSION_LABEL,
    budget: Any = None,
) -> list[dict[str, Any]]:
    """Step 1 for every row, step 2 for the rows step 1 said "No" to. ``budget`` (a
    :class:`~augtool.core.generation.RequestBudget`) counts the requests, cache hits free."""
    from augtool.core.generation import RequestBudgetExhausted
    from augtool.core.generation.params import Failure, GenerationParams

    def ask(prompts: list[Any], options: list[str], parse: Any) -> list[tuple[Any, Any]]:
        """(choice, evidence) per prompt: the most likely option, or the parsed reply."""
        if not prompts:
            return []
        if scoring == "loglik":
            if budget is not None and len(budget.take(list(prompts))) < len(prompts):
                raise RequestBudgetExhausted(f"--max-requests {budget.limit} reached")
            out = []
            for scores in llm.score(prompts, options):
                values = [s.mean for s in scores]
                best = max(range(len(options)), key=values.__getitem__)
                evidence = {o: round(v, 6) for o, v in zip(options, values, strict=True)}
                out.append((options[best], {"method": "loglik", "scores": evidence}))
            return out
        replies = llm.generate(
            prompts, GenerationParams(max_new_tokens, 0.0), list(range(len(prompts))), budget=budget
        )
        return [
            (None, {"method": "parse", "error": r.error})
            if isinstance(r, Failure)
            else (parse(r), {"method": "parse", "reply": r})
            for r in replies
        ]

    texts = [label_text(m.dist, label_set) for m in rows]
    matches = ask(
        [
            match_template.render(text=m.record.text, label_text=t)
            for m, t in zip(rows, texts, strict=True)
        ],
        list(ANSWERS),
        parse_yes_no,
    )
    asked = [i for i, (answer, _) in enumerate(matches) if answer == "No"]
    shown = [label_set.text_of(name) for name in label_set.names]
    by_text = dict(zip(shown, label_set.names, strict=True))
    picked = ask(
        [
            label_template.render(**_label_values(rows[i].record.text or "", label_set))
            for i in asked
        ],
        shown,
        label_set.parse,
    )
    labels: dict[int, tuple[str | None, Any]] = {}
    for i, (choice, evidence) in zip(asked, picked, strict=True):
        name = by_text.get(choice, choice) if scoring == "loglik" else choice
        labels[i] = (name, evidence)
    results = []
    for i, (mixed, (answer, match_evidence)) in enumerate(zip(rows, matches, strict=True)):
        label, label_evidence = labels.get(i, (None, None))
        results.append(
            {
                "id": mixed.record.id,
                "lambda": mixed.lam,
                "folded_lambda": round(mixed.folded, 6),
                "parent_labels": [mixed.label_a, mixed.label_b],
                "label_text": texts[i],
                "match": answer,
                "judged_label": label,
                "verdict": verdict(mixed, answer, label),
                "evidence": {"match": match_evidence, "label": label_evidence},
            }
        )
    return results


def by_lambda_bin(results: list[dict[str, Any]], bins: int) -> list[dict[str, Any]]:
    """Counts and proportions of each verdict in ``bins`` equal bins of the folded ratio
    ``max(lambda, 1 - lambda)`` over [0.5, 1] (the last bin includes 1)."""
    table = []
    width = 0.5 / bins

    def bin_of(folded: float) -> int:
        return min(bins - 1, max(0, int((folded - 0.5) / width + 1e-9)))

    for index in range(bins):
        low, high = 0.5 + index * width, 0.5 + (index + 1) * width
        members = [r for r in results if bin_of(r["folded_lambda"]) == index]
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
    """Overall counts and proportions, the intrusion split of the paper's Fig. 7
    (w/ vs w/o intrusion, and Inside vs Outside among the intrusions), and the bins."""
    counts = {v: sum(1 for r in results if r["verdict"] == v) for v in VERDICTS}
    judged = counts["none"] + counts["inside"] + counts["outside"]
    intrusions = counts["inside"] + counts["outside"]
    return {
        "n": len(results),
        "counts": counts,
        "proportions": {v: round(c / len(results), 6) for v, c in counts.items()},
        "intrusion_rate": round(intrusions / judged, 6) if judged else None,
        "inside_share": round(counts["inside"] / intrusions, 6) if intrusions else None,
        "bins": by_lambda_bin(results, bins),
    }
