"""How close are inversions to the sentences they invert? The scores vec2text reports.

- ``bleu``: corpus sacreBLEU (0-100, 13a tokenisation, lower-cased: the warm-started
  decoders write uncased WordPiece text);
- ``token_f1``: mean per-sentence F1 of the bags of lower-cased 13a tokens;
- ``exact_match``: share of sentences equal after tokenising and lower-casing;
- ``cosine``: mean cos(psi(x_hat), psi(x)) of the sentence embeddings.

Both sides are normalised alike (Unicode NFKC, PTB escapes such as `` @-@ `` undone), so
a decoder is not charged for the corpus's tokenisation quirks.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np

# WikiText's PTB-style escapes of in-word hyphens and number separators.
_PTB_ESCAPES = re.compile(r" @([-.,])@ ")


def normalise(text: str) -> str:
    """NFKC, PTB escapes undone, whitespace folded."""
    text = _PTB_ESCAPES.sub(r"\1", unicodedata.normalize("NFKC", text))
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    """Lower-cased 13a tokens (sacreBLEU's default tokeniser) of the normalised text."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()(normalise(text).lower()).split()


def corpus_bleu(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus sacreBLEU, 0-100, lower-cased."""
    from sacrebleu.metrics import BLEU

    refs = [normalise(text) for text in references]
    hyps = [normalise(text) for text in hypotheses]
    return float(BLEU(lowercase=True).corpus_score(hyps, [refs]).score)


def token_f1(reference: str, hypothesis: str) -> float:
    """F1 of the two bags of tokens (1.0 when both are empty)."""
    ref, hyp = Counter(tokens(reference)), Counter(tokens(hypothesis))
    if not ref and not hyp:
        return 1.0
    overlap = sum((ref & hyp).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(hyp.values()), overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def reconstruction_scores(
    references: Sequence[str],
    hypotheses: Sequence[str],
    reference_embeddings: np.ndarray,
    hypothesis_embeddings: np.ndarray,
) -> dict[str, float]:
    """``bleu``, ``token_f1``, ``exact_match`` and ``cosine`` of hypotheses against the
    references they invert (same order); ``n`` is the number of sentences."""
    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    f1 = [token_f1(r, h) for r, h in zip(references, hypotheses, strict=True)]
    exact = [tokens(r) == tokens(h) for r, h in zip(references, hypotheses, strict=True)]
    cosines = row_cosines(reference_embeddings, hypothesis_embeddings)
    return {
        "n": len(references),
        "bleu": round(corpus_bleu(references, hypotheses), 2),
        "token_f1": round(float(np.mean(f1)), 4),
        "exact_match": round(float(np.mean(exact)), 4),
        "cosine": round(float(np.mean(cosines)), 4),
    }
