"""Privacy leakage of a condensed text set: how much of each text is copied from an original.

Follows the PInR paper (Sec. 6.1): each condensed text is paired with its nearest original
and we measure the share of its unigrams and bigrams that also occur in that original. High
overlap means the condensed text reproduces (parts of) a private training text.

Tokens are lowercased word tokens, ``re.findall(r"\\w+", text.lower())`` (Unicode letters,
digits and underscore; punctuation dropped). N-grams are compared as sets, so
``overlap_n = |ngrams_n(condensed) ∩ ngrams_n(original)| / |ngrams_n(condensed)|``; a text
with no n-grams of that order (e.g. one word, for bigrams) has overlap 0 for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from augtool.errors import AugtoolError

_TOKEN = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens (``\\w+`` runs) of ``text``."""
    return _TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """The set of contiguous n-grams of ``tokens``."""
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def ngram_overlap(condensed: str, original: str, n: int) -> float:
    """Share of the condensed text's distinct n-grams that also occur in the original."""
    own = ngrams(tokenize(condensed), n)
    if not own:
        return 0.0
    return len(own & ngrams(tokenize(original), n)) / len(own)


def normalise(text: str) -> str:
    """Text for the exact-copy check: surrounding whitespace stripped, runs collapsed."""
    return _SPACE.sub(" ", text).strip()


def _nearest_by_embedding(cond: Any, ref: Any, m: int, n: int) -> np.ndarray:
    """Index of the most cosine-similar reference row for each condensed row."""
    x = np.asarray(cond, dtype=np.float64)
    y = np.asarray(ref, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise AugtoolError("leakage embeddings must be 2-D arrays (rows x dimension)")
    if len(x) != m or len(y) != n:
        raise AugtoolError(
            f"leakage: {len(x)} condensed / {len(y)} reference embeddings for "
            f"{m} condensed / {n} reference texts"
        )
    if x.shape[1] != y.shape[1]:
        raise AugtoolError(f"leakage: embedding dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    nearest = np.empty(m, dtype=np.int64)
    step = max(1, 4_000_000 // max(1, n))
    for start in range(0, m, step):
        nearest[start : start + step] = np.argmax(x[start : start + step] @ y.T, axis=1)
    return nearest


def _nearest_by_unigrams(cond_tokens: list[list[str]], ref_tokens: list[list[str]]) -> np.ndarray:
    """Index of the reference text sharing the most distinct words (ties: lowest index).

    Uses an inverted index, so the cost is the number of (word, reference) hits rather
    than M x N set intersections.
    """
    index: dict[str, list[int]] = {}
    for j, toks in enumerate(ref_tokens):
        for tok in set(toks):
            index.setdefault(tok, []).append(j)
    n = len(ref_tokens)
    nearest = np.zeros(len(cond_tokens), dtype=np.int64)
    for i, toks in enumerate(cond_tokens):
        hits = [index[t] for t in set(toks) if t in index]
        if hits:
            counts = np.bincount(np.concatenate(hits), minlength=n)
            nearest[i] = int(np.argmax(counts))
    return nearest


def leakage(
    condensed_texts: Sequence[str],
    reference_texts: Sequence[str],
    condensed_emb: Any | None = None,
    reference_emb: Any | None = None,
) -> dict[str, Any]:
    """Unigram/bigram overlap of each condensed text with its nearest original.

    The nearest original is the most cosine-similar reference embedding when both embedding
    arrays are given, else the reference text sharing the most distinct words. Returns
    ``unigram_mean``, ``bigram_mean``, ``unigram_max``, ``bigram_max``, ``exact_copy_share``
    (condensed texts equal to any original after whitespace normalisation, case-sensitive),
    ``nearest_by`` ("embedding" or "unigram"), ``n_condensed``, ``n_reference`` and
    ``details``: one ``{index, nearest_index, unigram, bigram, exact_copy}`` per text.
    """
    cond = list(condensed_texts)
    ref = list(reference_texts)
    if not cond:
        raise AugtoolError("leakage: no condensed texts")
    if not ref:
        raise AugtoolError("leakage: no reference texts")
    if (condensed_emb is None) != (reference_emb is None):
        raise AugtoolError("leakage: pass both condensed and reference embeddings, or neither")

    cond_tokens = [tokenize(t) for t in cond]
    ref_tokens = [tokenize(t) for t in ref]
    if condensed_emb is not None:
        nearest = _nearest_by_embedding(condensed_emb, reference_emb, len(cond), len(ref))
        nearest_by = "embedding"
    else:
        nearest = _nearest_by_unigrams(cond_tokens, ref_tokens)
        nearest_by = "unigram"

    originals = {normalise(t) for t in ref}
    details = []
    for i, j in enumerate(nearest.tolist()):
        row: dict[str, Any] = {"index": i, "nearest_index": int(j)}
        for name, n in (("unigram", 1), ("bigram", 2)):
            own = ngrams(cond_tokens[i], n)
            row[name] = len(own & ngrams(ref_tokens[j], n)) / len(own) if own else 0.0
        row["exact_copy"] = normalise(cond[i]) in originals
        details.append(row)

    uni = np.array([r["unigram"] for r in details])
    bi = np.array([r["bigram"] for r in details])
    return {
        "unigram_mean": float(uni.mean()),
        "bigram_mean": float(bi.mean()),
        "unigram_max": float(uni.max()),
        "bigram_max": float(bi.max()),
        "exact_copy_share": float(np.mean([r["exact_copy"] for r in details])),
        "nearest_by": nearest_by,
        "n_condensed": len(cond),
        "n_reference": len(ref),
        "details": details,
    }
