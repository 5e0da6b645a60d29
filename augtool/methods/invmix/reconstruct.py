"""How well does an inversion model invert real sentences?

Each sentence is embedded and inverted (greedy). Reported: corpus BLEU (NLTK, smoothed,
lowercased whitespace tokens), exact match (after folding whitespace and case), and the
cosine-similarity groups of the paper's Fig. 4b: original vs its reconstruction,
same-class originals, different-class originals (random pairs).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from augtool.core.generation.labels import normalize
from augtool.core.inversion.model import InversionModel
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import Record
from augtool.methods.invmix.config import ReconstructConfig


@dataclass
class Reconstruction:
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    originals: np.ndarray
    reconstructions: np.ndarray


def corpus_bleu(references: list[str], hypotheses: list[str]) -> float:
    """Corpus BLEU-4 in [0, 1] with smoothing (NLTK's method 1)."""
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import corpus_bleu as bleu

    refs = [[r.lower().split()] for r in references]
    hyps = [h.lower().split() for h in hypotheses]
    return float(bleu(refs, hyps, smoothing_function=SmoothingFunction().method1))


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.clip(norms, 1e-12, None)


def cosine_groups(
    originals: np.ndarray,
    reconstructions: np.ndarray,
    labels: list[str | None],
    max_pairs: int,
    seed: int,
) -> dict[str, Any]:
    """Mean cosine similarity of the three Fig. 4b groups (None where a group is empty)."""
    a, b = _unit(originals), _unit(reconstructions)
    groups: dict[str, Any] = {"original_vs_reconstruction": float(np.mean(np.sum(a * b, axis=1)))}
    rng = random.Random(seed)
    n = len(labels)
    same, different = [], []
    if n > 1 and all(label is not None for label in labels):
        pairs = (
            [(i, j) for i in range(n) for j in range(i + 1, n)]
            if n * (n - 1) // 2 <= max_pairs
            else [tuple(rng.sample(range(n), 2)) for _ in range(max_pairs)]
        )
        for i, j in pairs:
            (same if labels[i] == labels[j] else different).append(float(a[i] @ a[j]))
    groups["same_class_originals"] = float(np.mean(same)) if same else None
    groups["different_class_originals"] = float(np.mean(different)) if different else None
    groups["pairs"] = {"same": len(same), "different": len(different)}
    return groups


def run_reconstruct(
    records: list[Record],
    model: InversionModel,
    config: ReconstructConfig,
    reporter: Reporter = SILENT,
) -> Reconstruction:
    texts = [r.text or "" for r in records]
    embeddings = model.embed(texts, progress=reporter.task("embedding", len(texts)))
    outputs = model.invert(
        embeddings,
        batch_size=config.batch_size,
        max_new_tokens=config.max_new_tokens,
        progress=reporter.task("inverting", len(texts)),
    )
    recon_embeddings = model.embed(outputs)
    cosines = np.sum(_unit(embeddings) * _unit(recon_embeddings), axis=1)
    rows = []
    exact = 0
    for record, output, cosine in zip(records, outputs, cosines, strict=True):
        match = normalize(record.text or "") == normalize(output)
        exact += match
        row = record.to_dict()
        row.update(reconstruction=output, exact=match, cosine=round(float(cosine), 6))
        rows.append(row)
    metrics = {
        "n": len(records),
        "bleu": round(corpus_bleu(texts, outputs), 6),
        "exact_match": round(exact / len(records), 6),
        "cosine": cosine_groups(
            embeddings, recon_embeddings, [r.label for r in records], config.max_pairs, config.seed
        ),
    }
    return Reconstruction(rows, metrics, embeddings, recon_embeddings)
