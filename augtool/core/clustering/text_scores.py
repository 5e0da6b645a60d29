"""How well a cluster's texts hang together: CTC preservation between the cluster's name
and its texts, and count-vector cosine similarity among the texts.

CTC (Deng et al., 2021) scores generated text by aligning it with a reference: its
embedding-matching aligner gives every token of ``a`` its largest cosine similarity to a
token of ``b`` in a contextual embedding space (BERTScore-style, special tokens
dropped), and ``align(a->b)`` is the mean over the tokens of ``a``. Its "preservation"
aspect combines both directions as CTC computes it (``ctc_score``'s
``StyleTransferScorer``)::

    preservation(a, b) = align(a->b) * align(b->a) / (align(a->b) + align(b->a))

(half the harmonic mean). augtool takes the token embeddings from the sentence encoder
instead of CTC's RoBERTa-large.
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
    """CTC preservation between two token-embedding matrices,
    ``align(a->b) * align(b->a) / (align(a->b) + align(b->a))`` (0 when either
    alignment is not positive, where the ratio has no meaning)."""
    forward, backward = alignment(a, b), alignment(b, a)
    if forward <= 0 or backward <= 0:
        return 0.0
    return forward * backward / (forward + backward)


def ctc_preservation(
    name: str,
    texts: Sequence[str],
    embed_tokens: TokenEmbedder,
    *,
    max_texts: int | None = None,
    seed: int = 0,
) -> float:
    """TopEx's CTC score: ``sum_j CTC(name, text_j) / |C|``, the mean preservation between
    ``name`` and each text (with ``max_texts``, over a seeded sample of that many)."""
    sample = _sample(texts, max_texts, seed)
    if not sample or not name.strip():
        return 0.0
    embedded = embed_tokens([name, *sample])
    name_tokens = embedded[0]
    return float(np.mean([preservation(name_tokens, tokens) for tokens in embedded[1:]]))


def _unit_counts(texts: Sequence[str]):  # noqa: ANN202 - a scipy sparse matrix
    """Word-count vectors of ``texts`` (lower-cased, scikit-learn's default tokens) scaled
    to unit length; a text with no word keeps a zero row. None when no text has a word."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    try:
        counts = CountVectorizer(lowercase=True).fit_transform(list(texts))
    except ValueError:  # no word in any of them
        return None
    return normalize(counts.astype(np.float64).tocsr(), norm="l2")


def count_cosine_texts(texts: Sequence[str]) -> float:
    """TopEx's cosine score among a cluster's texts, read from the printed equation as
    ``sum_{j != k} cos(v_j, v_k) / |C|`` over ordered pairs of the texts' count vectors.

    With unit vectors ``u_j``, ``sum_{j,k} cos = ||sum_j u_j||^2``; the ``j = k`` terms
    add 1 per text that has a word. So the sum takes O(|C| * vocabulary), not |C|^2.
    """
    texts = list(texts)
    if len(texts) < 2:
        return 0.0
    units = _unit_counts(texts)
    if units is None:
        return 0.0
    total = np.asarray(units.sum(axis=0)).ravel()
    with_words = int((units.getnnz(axis=1) > 0).sum())
    # every cosine of count vectors is >= 0: clip the rounding error of the subtraction
    return max(0.0, float((total @ total - with_words) / len(texts)))


def count_cosine_name(name: str, texts: Sequence[str]) -> float:
    """augtool's earlier cosine score: the mean cosine similarity between the word-count
    vector of the cluster ``name`` and that of each text."""
    texts = list(texts)
    if not texts or not name.strip():
        return 0.0
    units = _unit_counts([name, *texts])
    if units is None or units[0].nnz == 0:
        return 0.0
    return float(np.asarray((units[1:] @ units[0].T).todense()).ravel().mean())
