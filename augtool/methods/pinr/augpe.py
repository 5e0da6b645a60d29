"""Aug-PE (Xie et al., 2024, "Differentially private synthetic data via foundation model
APIs 2: Text"), the PInR paper's third baseline, written for augtool after the published
algorithm and its reference implementation.

Per label (class-wise, like the other methods), with M_c rows to make and k variations:

1. RANDOM_API: the LLM writes M_c samples from a label prompt alone (no real row is
   shown to it); each gets k variations, a population of M_c·(1 + k).
2. For iterations t = 1..T: embed the population with the encoder ψ; every real row of
   the label votes for its nearest synthetic sample (cosine); Gaussian noise of scale
   ``noise_multiplier`` is added to the histogram (0 by default: the infinite privacy
   budget the PInR paper uses), counts under ``threshold`` are zeroed; the M_c samples
   with most votes are selected (rank selection, ties to the earlier sample). Unless
   t = T, VARIATION_API writes k variations of each selected sample (fill in the blanks
   of a copy with a share of its words masked, or rephrase it), and the selected samples
   with their variations are the next population.
3. The M_c samples selected at t = T are the output.

A label costs M_c + T·M_c·k requests. Requests are seeded by their place in the run and
replies cached, so a rerun replays finished work without calls; rows are written label by
label. Neither the PInR paper nor the Aug-PE paper prints prompts that fit every dataset,
so the prompts here are augtool's wording (the reference implementation's are written
for Yelp, OpenReview and PubMed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from augtool.core.generation.base import LLM, RequestBudget
from augtool.core.generation.jobs import ReplyRejected, clean_reply, derive_seed
from augtool.core.generation.params import Failure, GenerationParams
from augtool.core.generation.prompts import (
    AUG_PE_BLANK_FILL,
    AUG_PE_BLANK_FILL_QA,
    AUG_PE_RANDOM,
    AUG_PE_RANDOM_QA,
    AUG_PE_REPHRASE,
    AUG_PE_REPHRASE_QA,
    PromptTemplate,
)
from augtool.core.progress import SILENT, Reporter
from augtool.methods.pinr.qa import join_qa, parse_qa_reply, split_qa
from augtool.methods.pinr.refine import TextEncoder

#: Aug-PE's prompts live with every other prompt (``prompts.AUG_PE_*``).
RANDOM, RANDOM_QA = AUG_PE_RANDOM, AUG_PE_RANDOM_QA
BLANK_FILL, BLANK_FILL_QA = AUG_PE_BLANK_FILL, AUG_PE_BLANK_FILL_QA
REPHRASE, REPHRASE_QA = AUG_PE_REPHRASE, AUG_PE_REPHRASE_QA

#: (random, variation) templates by variation kind and Q&A mode.
TEMPLATES: dict[tuple[str, bool], tuple[PromptTemplate, PromptTemplate]] = {
    ("blank-fill", False): (RANDOM, BLANK_FILL),
    ("blank-fill", True): (RANDOM_QA, BLANK_FILL_QA),
    ("rephrase", False): (RANDOM, REPHRASE),
    ("rephrase", True): (RANDOM_QA, REPHRASE_QA),
}

BLANK = "_"


class GroupFailed(Exception):
    """A label whose population fell below M_c (requests kept failing)."""


@dataclass
class Sample:
    """A synthetic sample of the population."""

    text: str
    origin: str  # "random" or "variation"
    born: int  # the iteration that wrote it (0: the initial population)


@dataclass
class Selected:
    """An output sample with its final votes."""

    sample: Sample
    votes: int
    noisy_votes: float


@dataclass
class GroupResult:
    """What one label produced, and what it cost."""

    selected: list[Selected]
    requests: int = 0
    failures: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PESettings:
    """The knobs of :func:`evolve`."""

    iterations: int = 10
    variations: int = 3
    variation: str = "blank-fill"
    mask_prob: float = 0.5
    topic: str = "text"
    noise_multiplier: float = 0.0
    threshold: float = 0.0
    seed: int = 0


def nearest_votes(real: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """The clean histogram: each real row votes once for its nearest synthetic sample
    (cosine; ties go to the earlier sample). Integer counts, one per synthetic sample."""
    a = real / np.maximum(np.linalg.norm(real, axis=1, keepdims=True), 1e-12)
    b = synthetic / np.maximum(np.linalg.norm(synthetic, axis=1, keepdims=True), 1e-12)
    nearest = np.argmax(a @ b.T, axis=1)
    return np.bincount(nearest, minlength=len(synthetic))


def privatize(
    counts: np.ndarray, noise_multiplier: float, threshold: float, rng: np.random.Generator
) -> np.ndarray:
    """Aug-PE's noisy histogram: counts + N(0, sigma²) (one neighbour per real row, so
    sensitivity 1), clipped at ``threshold`` and shifted down by it."""
    noisy = counts.astype(np.float64)
    if noise_multiplier > 0:
        noisy = noisy + rng.normal(size=len(noisy)) * noise_multiplier
    return np.clip(noisy, threshold, None) - threshold


def select_by_votes(votes: np.ndarray, m: int) -> list[int]:
    """The ``m`` samples with most votes, most first (ties: the earlier sample)."""
    order = sorted(range(len(votes)), key=lambda i: (-float(votes[i]), i))
    return order[:m]


def mask_words(text: str, prob: float, rng: np.random.Generator) -> str:
    """A copy of ``text`` with each word replaced by ``_`` with probability ``prob``."""
    words = text.split()
    hide = rng.random(len(words)) < prob
    return " ".join(BLANK if h else w for w, h in zip(words, hide, strict=True))


def label_clause(label_text: str | None, description: str = "") -> str:
    """`` whose label is "<text>" (<description>)``, or nothing without a label."""
    if not label_text:
        return ""
    return f' whose label is "{label_text}"' + (f" ({description})" if description else "")


def _read(reply: str, qa: bool) -> str:
    if qa:
        return join_qa(*parse_qa_reply(reply))
    return " ".join(clean_reply(reply).split())


def evolve(
    group: str,
    real: np.ndarray,
    m: int,
    *,
    label_text: str | None,
    description: str,
    llm: LLM,
    encoder: TextEncoder,
    params: GenerationParams,
    settings: PESettings,
    qa: bool = False,
    budget: RequestBudget | None = None,
    reporter: Reporter = SILENT,
) -> GroupResult:
    """Aug-PE for one label: ``real`` are the embeddings of its real rows (the voters)."""
    random_template, vary_template = TEMPLATES[(settings.variation, qa)]
    fixed = {
        "topic": settings.topic,
        "label": label_text or "",
        "label_clause": label_clause(label_text, description),
    }
    result = GroupResult(selected=[])

    def ask(prompts: list[Any], seeds: list[int]) -> list[str | None]:
        replies = llm.generate(prompts, params, seeds, budget=budget)
        out: list[str | None] = []
        for reply in replies:
            result.requests += 1
            try:
                if isinstance(reply, Failure):
                    raise ReplyRejected(reply.error)
                out.append(_read(reply, qa))
            except ReplyRejected:
                result.failures += 1
                out.append(None)
        return out

    def vary(parents: list[Sample], t: int) -> list[Sample]:
        prompts, seeds = [], []
        for slot, parent in enumerate(parents):
            for v in range(settings.variations):
                text = parent.text
                if settings.variation == "blank-fill":
                    rng = np.random.default_rng(
                        derive_seed(settings.seed, "aug-pe-mask", group, t, slot, v)
                    )
                    question, answer, _ = split_qa(text)
                    if qa:
                        question = mask_words(question, settings.mask_prob, rng)
                        answer = mask_words(answer, settings.mask_prob, rng)
                        text = join_qa(question, answer)
                    else:
                        text = mask_words(text, settings.mask_prob, rng)
                question, answer, _ = split_qa(text)
                prompts.append(
                    vary_template.render(text=text, question=question, answer=answer, **fixed)
                )
                seeds.append(derive_seed(settings.seed, "aug-pe", group, "variation", t, slot, v))
        return [Sample(text, "variation", t) for text in ask(prompts, seeds) if text]

    prompts = [random_template.render(**fixed)] * m
    seeds = [derive_seed(settings.seed, "aug-pe", group, "random", i) for i in range(m)]
    founders = [Sample(text, "random", 0) for text in ask(prompts, seeds) if text]
    population = _distinct(founders + vary(founders, 0))
    for t in range(1, settings.iterations + 1):
        if len(population) < m:
            raise GroupFailed(
                f"the population has {len(population)} samples, fewer than the {m} to select "
                f"({result.failures} of {result.requests} requests failed)"
            )
        vectors = encoder.encode([s.text for s in population])
        counts = nearest_votes(real, vectors)
        rng = np.random.default_rng(derive_seed(settings.seed, "aug-pe-noise", group, t))
        votes = privatize(counts, settings.noise_multiplier, settings.threshold, rng)
        chosen = select_by_votes(votes, m)
        result.history.append(
            {
                "t": t,
                "population": len(population),
                "voted": int((counts > 0).sum()),
                "selected_votes": int(counts[chosen].sum()),
            }
        )
        reporter.log(
            f"aug-pe {group} t={t}/{settings.iterations}: population {len(population)}, "
            f"{int(counts[chosen].sum())} of {len(real)} votes on the {m} selected"
        )
        if t == settings.iterations:
            result.selected = [
                Selected(population[i], int(counts[i]), float(votes[i])) for i in chosen
            ]
            break
        parents = [population[i] for i in chosen]
        population = _distinct(parents + vary(parents, t))
    return result


def _distinct(samples: Sequence[Sample]) -> list[Sample]:
    """The population without repeated texts (the first copy stays)."""
    seen: set[str] = set()
    out = []
    for sample in samples:
        key = re.sub(r"\s+", " ", sample.text.strip())
        if key not in seen:
            seen.add(key)
            out.append(sample)
    return out
