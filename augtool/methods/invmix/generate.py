"""inversedMixup stage 3: mix pairs of sentence embeddings and invert the mixtures to text.

For row ``i`` (its own generator, seeded from ``(seed, i)``): pick a pair ``(a, b)``
(random, inter-class or intra-class), draw ``lambda ~ Beta(alpha, alpha)`` (or take the
fixed ``--lam``), mix ``h = lambda*h_a + (1-lambda)*h_b`` and invert ``h`` with the
adaptor and the frozen LM. Labels are soft (``label_dist = {y_a: lambda, y_b: 1-lambda}``)
or a hard label from an LLM. Outputs identical to a parent are dropped unless kept.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from augtool.core.generation.jobs import derive_seed
from augtool.core.generation.labels import LabelSet, normalize
from augtool.core.generation.prompts import LLM_LABEL, PromptTemplate
from augtool.core.inversion.model import InversionModel
from augtool.core.progress import SILENT, Reporter
from augtool.data.provenance import make_aug
from augtool.data.records import Record
from augtool.data.writer import JsonlWriter
from augtool.errors import AugtoolError
from augtool.methods.invmix.config import InvmixGenerateConfig


@dataclass(frozen=True)
class Mix:
    """One planned row: which parents, with which lambda, under which seed."""

    index: int
    a: int
    b: int
    lam: float
    seed: int

    @property
    def id(self) -> str:
        return f"invmix-{self.index}"


@dataclass
class GenerateSummary:
    total: int = 0
    resumed: int = 0
    written: int = 0
    duplicates: int = 0
    unlabelled: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: The inputs' sentence embeddings (the model's encoder), for ``--plot``.
    embeddings: np.ndarray | None = None


def plan_mixes(records: list[Record], config: InvmixGenerateConfig) -> list[Mix]:
    """The ``n`` pairs and lambdas, each drawn from the row's own seed."""
    if len(records) < 2:
        raise AugtoolError("invmix generate needs at least two rows to mix")
    labels = [r.label for r in records]
    by_label: dict[str | None, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    if config.pairs == "inter-class" and len(by_label) < 2:
        raise AugtoolError("--pairs inter-class needs at least two labels in the input")
    if config.pairs == "intra-class" and all(len(v) < 2 for v in by_label.values()):
        raise AugtoolError("--pairs intra-class needs a label with at least two rows")
    mixes = []
    for index in range(config.n):
        seed = derive_seed(config.seed, "invmix", index)
        rng = random.Random(seed)
        if config.pairs == "intra-class":
            pool = rng.choice([v for v in by_label.values() if len(v) >= 2])
            a, b = rng.sample(pool, 2)
        else:
            while True:
                a, b = rng.sample(range(len(records)), 2)
                if config.pairs == "random" or labels[a] != labels[b]:
                    break
        lam = config.lam if config.lam is not None else rng.betavariate(config.alpha, config.alpha)
        mixes.append(Mix(index, a, b, lam, seed))
    return mixes


def soft_label(first: Record, second: Record, lam: float) -> dict[str, float]:
    """``lambda * y_a + (1 - lambda) * y_b`` over the parents' (soft or hard) labels."""
    dist: dict[str, float] = {}
    for record, weight in ((first, lam), (second, 1.0 - lam)):
        parent = record.label_dist or ({record.label: 1.0} if record.label is not None else {})
        for name, value in parent.items():
            dist[name] = dist.get(name, 0.0) + weight * value
    total = sum(dist.values())
    return {name: round(value / total, 6) for name, value in dist.items()} if total else {}


class LLMLabeller:
    """Hard labels for mixed rows from an LLM (§4.9, with the labelling prompt of App. A.3).

    ``scoring="parse"`` asks for a reply and parses it to a label (``LabelSet.parse``; a
    reply naming none leaves the row unlabelled), as the paper's prompt ("Respond with
    only the label name") does; ``"loglik"`` takes the label whose text is the most likely
    reply (hf: backends only).
    """

    def __init__(
        self,
        llm: Any,
        label_set: LabelSet,
        *,
        scoring: str = "parse",
        template: PromptTemplate = LLM_LABEL,
        max_new_tokens: int = 16,
    ) -> None:
        self.llm = llm
        self.label_set = label_set
        self.scoring = scoring
        self.template = template
        self.max_new_tokens = max_new_tokens

    def prompts(self, texts: list[str]) -> list[Any]:
        values = {
            "label_list": self.label_set.label_list(),
            "label_map": self.label_set.label_map(),
            "label_descriptions": self.label_set.describe(),
        }
        return [self.template.render(text=t, **values) for t in texts]

    def label(self, texts: list[str], seeds: list[int]) -> list[tuple[str | None, dict[str, Any]]]:
        from augtool.core.generation.params import Failure, GenerationParams

        prompts = self.prompts(texts)
        names = self.label_set.names
        info = {"prompt_id": self.template.id}
        if self.scoring == "loglik":
            options = [self.label_set.text_of(name) for name in names]
            out = []
            for scores in self.llm.score(prompts, options):
                values = [s.mean for s in scores]
                best = max(range(len(names)), key=values.__getitem__)
                scored = {n: round(v, 6) for n, v in zip(names, values, strict=True)}
                out.append((names[best], {"method": "loglik", "scores": scored, **info}))
            return out
        replies = self.llm.generate(prompts, GenerationParams(self.max_new_tokens, 0.0), seeds)
        results: list[tuple[str | None, dict[str, Any]]] = []
        for reply in replies:
            if isinstance(reply, Failure):
                evidence = {"method": "parse", "status": "failed", "error": reply.error}
                results.append((None, {**evidence, **info}))
                continue
            label = self.label_set.parse(reply)
            status = "parsed" if label else "unparsed"
            results.append((label, {"method": "parse", "reply": reply, "status": status, **info}))
        return results


def run_generate(
    records: list[Record],
    model: InversionModel,
    config: InvmixGenerateConfig,
    writer: JsonlWriter,
    *,
    labeller: LLMLabeller | None = None,
    reporter: Reporter = SILENT,
) -> GenerateSummary:
    """Write the mixed rows not yet in ``writer.done_ids`` (resumable by row id)."""
    mixes = plan_mixes(records, config)
    summary = GenerateSummary(total=len(mixes))
    todo = [m for m in mixes if m.id not in writer.done_ids]
    summary.resumed = len(mixes) - len(todo)
    advance = reporter.task("embedding inputs", len(records))
    embeddings = model.embed([r.text or "" for r in records], progress=advance)
    summary.embeddings = embeddings
    advance = reporter.task("mixing and inverting", len(mixes), completed=summary.resumed)
    info = {
        "llm": model.llm_info["spec"],
        "encoder": model.encoder_info["name"],
        "params": {
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_new_tokens": config.max_new_tokens,
        },
    }
    chunk = config.batch_size * 4
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        mixed = np.stack(
            [m.lam * embeddings[m.a] + (1.0 - m.lam) * embeddings[m.b] for m in part]
        ).astype(np.float32)
        texts = model.invert(
            mixed,
            batch_size=config.batch_size,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            seeds=[m.seed for m in part],
        )
        hard = labeller.label(texts, [m.seed for m in part]) if labeller else None
        rows = []
        for position, (mix, text) in enumerate(zip(part, texts, strict=True)):
            first, second = records[mix.a], records[mix.b]
            duplicate = normalize(text) in (
                normalize(first.text or ""),
                normalize(second.text or ""),
            )
            if (duplicate and not config.keep_duplicates) or not text.strip():
                summary.duplicates += duplicate
                continue
            dist = soft_label(first, second, mix.lam)
            aug = make_aug(
                "invmix",
                [first.id, second.id],
                seed=mix.seed,
                **{"lambda": round(mix.lam, 6)},
                label_mode=config.labels,
                pairs=config.pairs,
                parent_labels=[first.label, second.label],
                duplicate_of_parent=True if duplicate else None,
                **info,
            )
            extra: dict[str, Any] = {}
            if hard is not None:
                label, evidence = hard[position]
                extra["llm_label"] = evidence
                summary.unlabelled += label is None
                row = Record(id=mix.id, text=text, label=label, aug=aug, extra=extra)
            else:
                label = max(dist.items(), key=lambda item: item[1])[0] if dist else None
                row = Record(id=mix.id, text=text, label=label, label_dist=dist or None, aug=aug)
            rows.append(row)
        summary.written += writer.write(rows)
        advance(len(part))
    return summary
