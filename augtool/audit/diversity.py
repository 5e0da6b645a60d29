"""Diversity, novelty and duplicates of an augmented set (issue 20, deliverable 3).

Two checks of the audit report:

- ``diversity``: distinct-1/2 (Li et al. 2016), self-BLEU (Zhu et al. 2018) and novelty
  against the originals, the leakage measure of :mod:`augtool.core.leakage` (overlap with
  the nearest original); rows that copy an original or overlap it too much are flagged.
- ``duplicates``: exact duplicates (whitespace and case folded) and near duplicates
  (embedding cosine >= a threshold), within the augmented set and against the originals.

Embeddings are computed by the caller (no encoder in here). Everything is vectorised or
linear in Python loops, so 5,000 x 5,000 rows stay within the audit's time budget:
cosine matrices are computed in row blocks, and self-BLEU scores each text against a
seeded sample of at most ``sample`` other texts instead of all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from augtool.core.leakage import leakage, normalise, tokenize
from augtool.errors import AugtoolError

# Cells of one block of a cosine matrix (float64: 32 MB).
_BLOCK_CELLS = 4_000_000

DUPLICATE_KINDS = ("exact-original", "exact-internal", "near-original", "near-internal")


@dataclass
class CheckResult:
    """One check of the audit report: its figures and the rows it flags.

    Each flagged row is a dict with at least ``id``, ``kind`` and ``reason``.
    """

    check: str
    figures: dict[str, Any] = field(default_factory=dict)
    flagged: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable form."""
        return asdict(self)

    @property
    def flagged_ids(self) -> list[Any]:
        """Ids of the flagged rows, in order."""
        return [row["id"] for row in self.flagged]


@dataclass
class DiversityResult(CheckResult):
    """The ``diversity`` check: distinct-n, self-BLEU and novelty (leakage) figures."""

    check: str = "diversity"


@dataclass
class DuplicatesResult(CheckResult):
    """The ``duplicates`` check: exact and near duplicates, internal and of originals."""

    check: str = "duplicates"


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / total n-grams over all texts (Li et al. 2016); 0 when none.

    Tokens are those of :func:`augtool.core.leakage.tokenize`; n-grams do not cross texts.
    """
    if n < 1:
        raise AugtoolError(f"distinct_n: n must be >= 1, got {n}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        toks = tokenize(text)
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def self_bleu(texts: Sequence[str], *, sample: int = 100, seed: int = 0) -> float:
    """Mean sentence BLEU (0-100) of each text against the others as references.

    High self-BLEU means the texts resemble one another (low diversity). Each text is
    scored against a seeded random sample of at most ``sample`` other texts (all of them
    when there are fewer), which bounds the cost at ``len(texts) * sample`` n-gram
    comparisons: about 20 s for 5,000 texts with the default 100. Texts are tokenised
    with :func:`augtool.core.leakage.tokenize`; BLEU uses effective order, so short texts
    are not zeroed by missing 4-grams. Fewer than two texts give 0.
    """
    try:
        from sacrebleu.metrics import BLEU
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AugtoolError("self-BLEU needs sacrebleu: pip install 'augtool[bench]'") from exc
    if sample < 1:
        raise AugtoolError(f"self_bleu: sample must be >= 1, got {sample}")
    joined = [" ".join(tokenize(t)) for t in texts]
    n = len(joined)
    if n < 2:
        return 0.0
    bleu = BLEU(tokenize="none", effective_order=True)
    rng = np.random.default_rng(seed)
    k = min(sample, n - 1)
    scores = np.empty(n)
    for i in range(n):
        if k == n - 1:
            others = np.arange(n - 1)
        else:
            others = rng.choice(n - 1, size=k, replace=False)
        others = others + (others >= i)  # skip the hypothesis itself
        refs = [joined[j] for j in others.tolist()]
        scores[i] = bleu.sentence_score(joined[i], refs).score if joined[i] else 0.0
    return float(scores.mean())


def _check_ids(ids: Sequence[Any], texts: Sequence[str], what: str) -> None:
    if len(ids) != len(texts):
        raise AugtoolError(f"{what}: {len(ids)} ids for {len(texts)} texts")


def novelty(
    aug_ids: Sequence[Any],
    aug_texts: Sequence[str],
    ref_texts: Sequence[str],
    aug_emb: Any | None = None,
    ref_emb: Any | None = None,
    *,
    threshold: float = 0.9,
    ref_ids: Sequence[Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Leakage of each augmented row: overlap with its nearest original.

    Wraps :func:`augtool.core.leakage.leakage` (nearest original by embedding cosine when
    both embeddings are given, else by shared words). Flags rows that are exact copies of
    an original (whitespace folded, case kept) or whose bigram overlap with the nearest
    original is >= ``threshold``. Returns ``(figures, flagged)``; flagged rows carry
    ``id``, ``kind`` (``copy-original`` or ``overlap-original``), ``reason``,
    ``nearest_original`` (its id from ``ref_ids``, else its index into ``ref_texts``),
    ``unigram`` and ``bigram``.
    """
    _check_ids(aug_ids, aug_texts, "novelty")
    if ref_ids is not None:
        _check_ids(ref_ids, ref_texts, "novelty (originals)")
    report = leakage(aug_texts, ref_texts, aug_emb, ref_emb)
    flagged = []
    for row in report["details"]:
        i = row["index"]
        j = ref_ids[row["nearest_index"]] if ref_ids is not None else row["nearest_index"]
        shown = f"original {j!r}" if ref_ids is not None else f"original #{j}"
        if row["exact_copy"]:
            kind, reason = "copy-original", f"exact copy of {shown}"
        elif row["bigram"] >= threshold:
            kind = "overlap-original"
            reason = f"bigram overlap {row['bigram']:.2f} >= {threshold} with {shown}"
        else:
            continue
        flagged.append(
            {
                "id": aug_ids[i],
                "kind": kind,
                "reason": reason,
                "nearest_original": j,
                "unigram": row["unigram"],
                "bigram": row["bigram"],
            }
        )
    figures = {k: v for k, v in report.items() if k != "details"}
    figures["overlap_threshold"] = threshold
    return figures, flagged


def diversity(
    aug_ids: Sequence[Any],
    aug_texts: Sequence[str],
    ref_texts: Sequence[str],
    aug_emb: Any | None = None,
    ref_emb: Any | None = None,
    *,
    overlap_threshold: float = 0.9,
    bleu_sample: int = 100,
    seed: int = 0,
    ref_ids: Sequence[Any] | None = None,
) -> DiversityResult:
    """The ``diversity`` check: distinct-1/2 and self-BLEU of the augmented set (and
    distinct-1/2 of the originals, for comparison), plus novelty figures; flags the
    leaking rows found by :func:`novelty`."""
    figures: dict[str, Any] = {
        "distinct_1": distinct_n(aug_texts, 1),
        "distinct_2": distinct_n(aug_texts, 2),
        "reference_distinct_1": distinct_n(ref_texts, 1),
        "reference_distinct_2": distinct_n(ref_texts, 2),
        "self_bleu": self_bleu(aug_texts, sample=bleu_sample, seed=seed),
        "self_bleu_sample": bleu_sample,
    }
    leak, flagged = novelty(
        aug_ids,
        aug_texts,
        ref_texts,
        aug_emb,
        ref_emb,
        threshold=overlap_threshold,
        ref_ids=ref_ids,
    )
    figures["novelty"] = leak
    return DiversityResult(figures=figures, flagged=flagged)


def _unit_rows(emb: Any, rows: int, what: str) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2 or len(x) != rows:
        raise AugtoolError(f"duplicates: {what} embeddings must be {rows} rows x dimension")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def duplicates(
    aug_ids: Sequence[Any],
    aug_texts: Sequence[str],
    aug_emb: Any,
    ref_texts: Sequence[str],
    ref_emb: Any,
    *,
    threshold: float = 0.95,
    ref_ids: Sequence[Any] | None = None,
) -> DuplicatesResult:
    """Exact and near duplicates among the augmented rows and of the originals.

    Exact means equal after :func:`augtool.core.leakage.normalise` and case folding; near
    means embedding cosine >= ``threshold``. Each augmented row is flagged at most once,
    with the first kind that applies, in the order ``exact-original``, ``exact-internal``,
    ``near-original``, ``near-internal``. Internal duplicates flag every row after the
    first of its group (exact) or every row with a near twin earlier in the set (near),
    and ``duplicate_of`` names the first row of the group or the most similar earlier
    row; against originals it names the original (its id from ``ref_ids``, else its
    index). Cosines are computed in row blocks, so memory stays bounded.
    """
    _check_ids(aug_ids, aug_texts, "duplicates")
    if ref_ids is not None:
        _check_ids(ref_ids, ref_texts, "duplicates (originals)")
    m, n = len(aug_texts), len(ref_texts)
    if not 0.0 < threshold <= 1.0:
        raise AugtoolError(f"duplicates: threshold must be in (0, 1], got {threshold}")
    x = _unit_rows(aug_emb, m, "augmented")
    y = _unit_rows(ref_emb, n, "reference") if n else np.zeros((0, x.shape[1]))
    if n and x.shape[1] != y.shape[1]:
        raise AugtoolError(
            f"duplicates: embedding dimensions differ ({x.shape[1]} vs {y.shape[1]})"
        )

    def ref_name(j: int) -> Any:
        return ref_ids[j] if ref_ids is not None else j

    keys = [normalise(t).casefold() for t in aug_texts]
    originals: dict[str, int] = {}
    for j, text in enumerate(ref_texts):
        originals.setdefault(normalise(text).casefold(), j)
    first_of: dict[str, int] = {}

    found: dict[int, dict[str, Any]] = {}
    for i, key in enumerate(keys):
        if key in originals:
            j = originals[key]
            found[i] = {
                "kind": "exact-original",
                "duplicate_of": ref_name(j),
                "reason": f"same text as original {ref_name(j)!r}",
            }
        elif key in first_of:
            j = first_of[key]
            found[i] = {
                "kind": "exact-internal",
                "duplicate_of": aug_ids[j],
                "reason": f"same text as augmented row {aug_ids[j]!r}",
            }
        first_of.setdefault(key, i)

    step = max(1, _BLOCK_CELLS // max(1, m, n))
    for start in range(0, m, step):
        stop = min(m, start + step)
        block = x[start:stop]
        if n:
            sims = block @ y.T
            best = np.argmax(sims, axis=1)
            best_sim = sims[np.arange(stop - start), best]
        else:
            best = best_sim = None
        inner = block @ x[:stop].T
        # Only earlier rows count: mask the diagonal and everything after it.
        inner[np.arange(stop - start)[:, None] + start <= np.arange(stop)[None, :]] = -np.inf
        inner_best = np.argmax(inner, axis=1) if stop > 1 else None
        for r in range(stop - start):
            i = start + r
            if i in found:
                continue
            if best is not None and best_sim[r] >= threshold:
                j = int(best[r])
                found[i] = {
                    "kind": "near-original",
                    "duplicate_of": ref_name(j),
                    "reason": f"cosine {best_sim[r]:.3f} >= {threshold} with original "
                    f"{ref_name(j)!r}",
                }
            elif inner_best is not None and i > 0:
                j = int(inner_best[r])
                cos = float(inner[r, j])
                if cos >= threshold:
                    found[i] = {
                        "kind": "near-internal",
                        "duplicate_of": aug_ids[j],
                        "reason": f"cosine {cos:.3f} >= {threshold} with augmented row "
                        f"{aug_ids[j]!r}",
                    }

    flagged = [{"id": aug_ids[i], **found[i]} for i in sorted(found)]
    counts = {kind: 0 for kind in DUPLICATE_KINDS}
    for row in flagged:
        counts[row["kind"]] += 1
    figures: dict[str, Any] = {
        "n_augmented": m,
        "n_reference": n,
        "threshold": threshold,
        **{kind.replace("-", "_"): count for kind, count in counts.items()},
        "duplicate_share": len(flagged) / m if m else 0.0,
    }
    return DuplicatesResult(figures=figures, flagged=flagged)
