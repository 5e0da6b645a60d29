"""LLM refinement of decoded texts: PInR's Algorithm 1 (appendix A.2) as printed.

For particle ẽ_j with decoded text x̃_j0 = ω(ẽ_j)::

    S_0 = {x̃_j0}
    for t = 0, ..., T:
        ask the API for L variants of every a in S_t
        if t != T: S_{t+1} = the K variants closest (cosine) to ẽ_j    (variants only)
        else:      x̃_j = the variant closest to ẽ_j

So the output is always a variant, never the decoded text itself, and a particle costs
L + T·K·L requests when every request succeeds. Variants with the same text count once
when the K seeds of the next round are chosen.

A round in which every variant of a particle fails (request errors after retries, or
replies that cannot be read) leaves that particle without a text: it is reported as
failed, its row is not written, and a rerun of the same command asks again with fresh
request seeds (``attempt``). Requests of all particles in a round go out together
(batched on hf:, concurrent on openai:), and replies are cached, so a rerun after a crash
repeats no call that succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from augtool.core.generation.base import LLM, RequestBudget
from augtool.core.generation.jobs import ReplyRejected, derive_seed
from augtool.core.generation.params import Failure, GenerationParams
from augtool.core.generation.prompts import PromptTemplate
from augtool.core.progress import SILENT, Reporter
from augtool.methods.pinr.prompting import read_reply, refine_values


class TextEncoder(Protocol):
    """What refinement needs from the encoder ψ."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class Refined:
    """The outcome for one particle. ``text`` is ``None`` when the particle failed."""

    text: str | None
    cosine: float | None
    decoded: str
    decoded_cosine: float
    rounds: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    failures: int = 0
    error: str | None = None
    attempt: int = 0

    @property
    def failed(self) -> bool:
        return self.text is None


def cosine_to(vectors: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``vectors`` to ``target``."""
    norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(target)), 1e-12)
    return (vectors @ target) / np.maximum(norms, 1e-12)


def top_k(texts: Sequence[str], cosines: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` most similar distinct texts, best first (ties: first seen)."""
    order = sorted(range(len(texts)), key=lambda i: (-cosines[i], i))
    picked: list[int] = []
    seen: set[str] = set()
    for i in order:
        if texts[i] not in seen:
            seen.add(texts[i])
            picked.append(i)
        if len(picked) == k:
            break
    return picked


def refine(
    keys: Sequence[str],
    targets: Sequence[np.ndarray] | np.ndarray,
    decoded: Sequence[str],
    label_texts: Sequence[str | None],
    *,
    llm: LLM | None,
    encoder: TextEncoder,
    template: PromptTemplate,
    params: GenerationParams,
    variants: int = 3,
    keep: int = 1,
    rounds: int = 1,
    qa: bool = False,
    seed: int = 0,
    attempts: Mapping[str, int] | None = None,
    budget: RequestBudget | None = None,
    reporter: Reporter = SILENT,
) -> list[Refined]:
    """Algorithm 1 for every particle: ``variants`` = L, ``keep`` = K, ``rounds`` = T (the
    loop runs t = 0..T, so T + 1 request rounds). Without an LLM the decoded texts are
    only scored and returned (``--no-refine``). ``attempts`` gives particles that failed
    in an earlier run a new attempt number, which changes their request seeds."""
    attempts = attempts or {}
    decoded_vectors = encoder.encode(list(decoded))
    results = []
    for key, text, vector, target in zip(keys, decoded, decoded_vectors, targets, strict=True):
        score = float(cosine_to(vector[None, :], target)[0])
        results.append(Refined(text, score, text, score, attempt=int(attempts.get(key, 0))))
    if llm is None:
        return results
    for result in results:
        result.text, result.cosine = None, None  # only a variant can be the output
    pool: list[list[str]] = [[text] for text in decoded]  # S_0 of every particle
    for t in range(rounds + 1):
        prompts, seeds, owners = [], [], []
        for i, seeds_t in enumerate(pool):
            for c, text in enumerate(seeds_t):
                messages = template.render(**refine_values(text, label_texts[i], qa=qa))
                for v in range(variants):
                    parts: tuple[object, ...] = (keys[i], t, c, v)
                    if results[i].attempt:
                        parts = (*parts, "attempt", results[i].attempt)
                    prompts.append(messages)
                    seeds.append(derive_seed(seed, "pinr-refine", *parts))
                    owners.append(i)
        if not prompts:
            break
        replies = llm.generate(prompts, params, seeds, budget=budget)
        found: list[list[str]] = [[] for _ in pool]
        errors: list[list[str]] = [[] for _ in pool]
        for owner, reply in zip(owners, replies, strict=True):
            results[owner].requests += 1
            if isinstance(reply, Failure):
                errors[owner].append(reply.error)
                continue
            try:
                found[owner].append(read_reply(reply, qa=qa))
            except ReplyRejected as exc:
                errors[owner].append(f"reply rejected: {exc}")
        flat = [text for group in found for text in group]
        vectors = encoder.encode(flat) if flat else np.zeros((0, 0), dtype=np.float32)
        offset = 0
        for i, group in enumerate(found):
            asked = len(group) + len(errors[i])
            if not asked:
                continue
            result = results[i]
            result.failures += len(errors[i])
            cosines = [
                float(cosine_to(vectors[offset + j][None, :], targets[i])[0])
                for j in range(len(group))
            ]
            offset += len(group)
            record: dict[str, Any] = {
                "t": t,
                "seeds": len(pool[i]),
                "requests": asked,
                "variants": len(group),
                "cosines": [round(c, 6) for c in cosines],
            }
            if errors[i]:
                record["failed"] = len(errors[i])
            result.rounds.append(record)
            if not group:
                result.error = f"round t={t}: all {asked} variants failed ({errors[i][0]})"
                pool[i] = []
                continue
            best = top_k(group, cosines, keep if t < rounds else 1)
            if t < rounds:
                pool[i] = [group[j] for j in best]
                record["kept"] = [round(cosines[j], 6) for j in best]
            else:
                result.text, result.cosine = group[best[0]], cosines[best[0]]
                pool[i] = []
        done = [r.cosine for r in results if r.cosine is not None]
        reporter.log(
            f"refinement round t={t} of 0..{rounds}: {len(prompts)} requests"
            + (f"; mean cosine to the particles {np.mean(done):.4f}" if done else "")
        )
    return results
