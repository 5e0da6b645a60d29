"""LLM refinement of decoded texts (PInR's Algorithm 1).

For every particle e: the decoded text is the first candidate. Each round asks the LLM
for L variants of every kept candidate, embeds them, and keeps the K candidates closest
to e by cosine; after T rounds the closest text seen wins. Requests of all particles in a
round go out together (batched on hf:, concurrent on openai:), and replies are cached,
so a rerun after a crash repeats no call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from augtool.core.encoders.base import Encoder
from augtool.core.generation.base import LLM, RequestBudget
from augtool.core.generation.jobs import ReplyRejected, clean_reply, derive_seed
from augtool.core.generation.params import Failure, GenerationParams
from augtool.core.generation.prompts import PromptTemplate
from augtool.core.progress import SILENT, Reporter


@dataclass
class Refined:
    """The outcome for one particle."""

    text: str
    cosine: float
    decoded: str
    decoded_cosine: float
    rounds: list[dict[str, object]] = field(default_factory=list)
    failures: int = 0


def cosine_to(vectors: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``vectors`` to ``target``."""
    norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(target)), 1e-12)
    return (vectors @ target) / np.maximum(norms, 1e-12)


def refine(
    keys: Sequence[str],
    targets: np.ndarray,
    decoded: Sequence[str],
    labels: Sequence[str | None],
    *,
    llm: LLM | None,
    encoder: Encoder,
    template: PromptTemplate,
    params: GenerationParams,
    variants: int = 3,
    keep: int = 1,
    rounds: int = 1,
    seed: int = 0,
    budget: RequestBudget | None = None,
    reporter: Reporter = SILENT,
) -> list[Refined]:
    """Refine ``decoded`` towards ``targets`` (no LLM: only score the decoded texts)."""
    decoded_vectors = encoder.encode(list(decoded))
    results = []
    candidates: list[list[tuple[str, float]]] = []
    for text, vector, target in zip(decoded, decoded_vectors, targets, strict=True):
        score = float(cosine_to(vector[None, :], target)[0])
        results.append(Refined(text, score, text, score))
        candidates.append([(text, score)])
    if llm is None:
        return results
    for round_index in range(rounds):
        prompts, seeds, owners = [], [], []
        for i, pool in enumerate(candidates):
            label = labels[i]
            for c, (text, _) in enumerate(pool):
                for v in range(variants):
                    prompts.append(
                        template.render(text=text, label=f" (label: {label})" if label else "")
                    )
                    seeds.append(derive_seed(seed, "pinr-refine", keys[i], round_index, c, v))
                    owners.append(i)
        replies = llm.generate(prompts, params, seeds, budget=budget)
        texts: list[list[str]] = [[] for _ in candidates]
        for owner, reply in zip(owners, replies, strict=True):
            if isinstance(reply, Failure):
                results[owner].failures += 1
                continue
            try:
                texts[owner].append(clean_reply(reply))
            except ReplyRejected:
                results[owner].failures += 1
        flat = [t for group in texts for t in group]
        vectors = encoder.encode(flat) if flat else np.zeros((0, 0))
        offset = 0
        for i, group in enumerate(texts):
            scored = list(candidates[i])
            for j, text in enumerate(group):
                score = float(cosine_to(vectors[offset + j][None, :], targets[i])[0])
                scored.append((text, score))
            offset += len(group)
            unique = {text: score for text, score in scored}
            ranked = sorted(unique.items(), key=lambda item: -item[1])
            candidates[i] = ranked[:keep]
            best_text, best_score = ranked[0]
            if best_score > results[i].cosine:
                results[i].text, results[i].cosine = best_text, best_score
            results[i].rounds.append(
                {"round": round_index, "variants": len(group), "best_cosine": round(best_score, 6)}
            )
        reporter.log(
            f"refinement round {round_index + 1}/{rounds}: mean cosine to the particles "
            f"{np.mean([r.cosine for r in results]):.4f}"
        )
    return results
