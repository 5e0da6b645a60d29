"""How well a cluster's name fits its texts: CTC preservation and count-vector cosine.

CTC (Deng et al., 2021) scores generated text by aligning it with a reference: the
alignment of ``a`` to ``b`` gives every token of ``a`` its largest cosine similarity to a
token of ``b`` in a contextual embedding space (CTC's embedding-matching aligner,
BERTScore-style). Its "preservation" aspect combines both directions as a harmonic
mean, ``2 * mean(align(a->b)) * mean(align(b->a)) / (sum of the two)``; augtool computes
it between the cluster name and each member text and averages over members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: texts -> one (tokens, dim) array of contextual token embeddings per text.
TokenEmbedder = Callable[[list[str]], list[np.ndarray]]


def _sample(texts: Sequence[str], limit: int | None, seed: int) -> list[str]:
    texts = list(texts)
    if limit is None or len(texts) <= limit:
        return texts
    picks = np.random.default_rng(seed).choice(len(texts), size=limit, replace=False)
    return [texts[i] for i in sorted(picks)]


def alignment(source: np.ndarray, target: np.ndarray) -> float:
    """Mean over the tokens of ``source`` of their best cosine match in ``target``."""
    if len(source) == 0 or len(target) == 0:
        return 0.0
    a = source / np.maximum(np.linalg.norm(source, axis=1, keepdims=True), 1e-12)
    b = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
    return float((a @ b.T).max(axis=1).mean())


def preservation(a: np.ndarray, b: np.ndarray) -> float:
    """CTC preservation between two token-embedding matrices (harmonic mean of the two
    alignment directions; 0 when either is 0)."""
    forward, backward = alignment(a, b), alignment(b, a)
    if forward <= 0 or backward <= 0:
        return 0.0
    return 2 * forward * backward / (forward + backward)


def ctc_preservation(
    name: str,
    texts: Sequence[str],
    embed_tokens: TokenEmbedder,
    *,
    max_texts: int | None = 64,
    seed: int = 0,
) -> float:
    """Mean CTC preservation between ``name`` and each text (a seeded sample of at most
    ``max_texts`` of them)."""
    sample = _sample(texts, max_texts, seed)
    if not sample or not name.strip():
        return 0.0
    embedded = embed_tokens([name, *sample])
    name_tokens = embedded[0]
    return float(np.mean([preservation(name_tokens, tokens) for tokens in embedded[1:]]))


def count_cosine(name: str, texts: Sequence[str]) -> float:
    """Mean cosine similarity between the word-count vector of ``name`` and of each text."""
    from sklearn.feature_extraction.text import CountVectorizer

    texts = list(texts)
    if not texts or not name.strip():
        return 0.0
    vectorizer = CountVectorizer(lowercase=True)
    try:
        counts = vectorizer.fit_transform([name, *texts]).astype(np.float64).tocsr()
    except ValueError:  # no word in any of them
        return 0.0
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
    if norms[0] == 0:
        return 0.0
    dots = np.asarray((counts[1:] @ counts[0].T).todense()).ravel()
    return float((dots / np.maximum(norms[1:] * norms[0], 1e-12)).mean())
