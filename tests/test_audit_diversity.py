"""The diversity and duplicates checks of ``augtool audit`` (augtool.audit.diversity)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from augtool.audit import diversity as div
from augtool.audit.diversity import (
    DiversityResult,
    DuplicatesResult,
    distinct_n,
    diversity,
    duplicates,
    novelty,
    self_bleu,
)
from augtool.errors import AugtoolError


def test_distinct_n_hand_checked() -> None:
    texts = ["A b a.", "a  B"]  # tokens: a b a | a b
    assert distinct_n(texts, 1) == pytest.approx(2 / 5)
    assert distinct_n(texts, 2) == pytest.approx(2 / 3)  # (a b), (b a), (a b)
    assert distinct_n(["one"], 2) == 0.0
    assert distinct_n([], 1) == 0.0
    with pytest.raises(AugtoolError):
        distinct_n(texts, 0)


def test_self_bleu_identical_vs_different() -> None:
    same = ["the cat sat on the mat"] * 4
    assert self_bleu(same) == pytest.approx(100.0)
    different = ["alpha beta gamma delta", "one two three four", "red green blue pink"]
    assert self_bleu(different) == pytest.approx(0.0)
    assert self_bleu(["only one"]) == 0.0


def test_self_bleu_sampling_is_seeded_and_bounded() -> None:
    rng = random.Random(3)
    words = [f"w{i}" for i in range(30)]
    texts = [" ".join(rng.choices(words, k=8)) for _ in range(40)]
    a = self_bleu(texts, sample=5, seed=1)
    assert a == self_bleu(texts, sample=5, seed=1)
    assert 0.0 <= a <= 100.0
    # A sample at least as large as the set means every other text: the seed is moot.
    assert self_bleu(texts, sample=100, seed=1) == self_bleu(texts, sample=39, seed=2)


def test_novelty_wraps_leakage() -> None:
    ref = ["the quick brown fox jumps", "a slow green turtle walks"]
    aug = ["the  quick brown fox jumps", "a slow green turtle walks home", "cats purr softly"]
    figures, flagged = novelty(["x", "y", "z"], aug, ref, threshold=0.7)
    assert figures["exact_copy_share"] == pytest.approx(1 / 3)
    assert figures["overlap_threshold"] == 0.7
    assert "details" not in figures
    by_id = {row["id"]: row for row in flagged}
    assert set(by_id) == {"x", "y"}
    assert by_id["x"]["kind"] == "copy-original" and by_id["x"]["nearest_original"] == 0
    assert by_id["y"]["kind"] == "overlap-original"
    assert by_id["y"]["bigram"] == pytest.approx(4 / 5)
    _, strict = novelty(["x", "y", "z"], aug, ref, threshold=0.9)
    assert [row["id"] for row in strict] == ["x"]
    _, named = novelty(["x", "y", "z"], aug, ref, threshold=0.9, ref_ids=["fox", "turtle"])
    assert named[0]["nearest_original"] == "fox" and "original 'fox'" in named[0]["reason"]


def test_diversity_result_is_json() -> None:
    ref = ["the quick brown fox", "a slow green turtle"]
    aug = ["the quick brown fox", "a fast red turtle", "a fast red turtle"]
    result = diversity(["a", "b", "c"], aug, ref)
    assert isinstance(result, DiversityResult)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["check"] == "diversity"
    figures = data["figures"]
    assert figures["distinct_1"] == pytest.approx(8 / 12)
    assert figures["reference_distinct_1"] == pytest.approx(1.0)
    assert figures["novelty"]["n_condensed"] == 3
    assert result.flagged_ids == ["a"]
    assert {"id", "kind", "reason"} <= set(data["flagged"][0])


def _unit(*vec: float) -> list[float]:
    v = np.asarray(vec, dtype=float)
    return list(v / np.linalg.norm(v))


def test_duplicates_each_kind() -> None:
    ref_texts = ["Hello world", "something else"]
    ref_emb = np.array([_unit(1, 0, 0, 0), _unit(0, 1, 0, 0)])
    aug_ids = ["a0", "a1", "a2", "a3", "a4", "a5", "a6"]
    aug_texts = [
        "hello   WORLD ",  # exact-original (case and whitespace folded)
        "new text",
        "New text",  # exact-internal of a1
        "paraphrase of something",  # near-original of ref 1
        "distinct row",
        "distinct row, nearly",  # near-internal of a4
        "far away",
    ]
    aug_emb = np.array(
        [
            _unit(1, 0, 0, 0.3),  # embedding irrelevant: the exact match wins
            _unit(0, 0, 1, 0),
            _unit(0, 0, 1, 0),
            _unit(0.1, 1, 0, 0),
            _unit(0, 0, 0, 1),
            _unit(0, 0, 0.1, 1),
            _unit(1, 1, 1, -1),
        ]
    )
    result = duplicates(aug_ids, aug_texts, aug_emb, ref_texts, ref_emb, threshold=0.95)
    assert isinstance(result, DuplicatesResult)
    got = {row["id"]: (row["kind"], row["duplicate_of"]) for row in result.flagged}
    assert got == {
        "a0": ("exact-original", 0),
        "a2": ("exact-internal", "a1"),
        "a3": ("near-original", 1),
        "a5": ("near-internal", "a4"),
    }
    f = result.figures
    assert (f["exact_original"], f["exact_internal"], f["near_original"], f["near_internal"]) == (
        1,
        1,
        1,
        1,
    )
    assert f["duplicate_share"] == pytest.approx(4 / 7)
    json.dumps(result.to_dict())
    named = duplicates(
        aug_ids, aug_texts, aug_emb, ref_texts, ref_emb, ref_ids=["r-hello", "r-else"]
    )
    assert named.flagged[0]["duplicate_of"] == "r-hello"
    assert "r-hello" in named.flagged[0]["reason"]


def test_duplicates_internal_group_flags_all_but_first() -> None:
    texts = ["x y", "p q", "X  y", "x y", "p q"]
    emb = np.eye(5)
    result = duplicates(list("abcde"), texts, emb, ["unrelated"], np.ones((1, 5)))
    got = {row["id"]: row["duplicate_of"] for row in result.flagged}
    assert got == {"c": "a", "d": "a", "e": "b"}


def test_duplicates_threshold() -> None:
    cos = 0.96
    a, b = [1.0, 0.0], [cos, float(np.sqrt(1 - cos**2))]
    emb = np.array([a, b])
    ref_emb = np.array([[0.0, -1.0]])
    args = (["r0", "r1"], ["one", "two"], emb, ["orig"], ref_emb)
    assert duplicates(*args, threshold=0.95).flagged_ids == ["r1"]
    assert duplicates(*args, threshold=0.97).flagged_ids == []
    with pytest.raises(AugtoolError):
        duplicates(*args, threshold=0.0)
    with pytest.raises(AugtoolError):
        duplicates(["r0"], ["one", "two"], emb, ["orig"], ref_emb)


def test_duplicates_blocking_matches_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    ref_emb = rng.normal(size=(30, 8))
    aug_emb = rng.normal(size=(50, 8))
    aug_emb[10] = ref_emb[3] + 0.01
    aug_emb[40] = aug_emb[7] * 2
    aug_emb[41] = aug_emb[40]
    ids = [f"a{i}" for i in range(50)]
    texts = [f"text {i}" for i in range(50)]
    refs = [f"orig {j}" for j in range(30)]
    whole = duplicates(ids, texts, aug_emb, refs, ref_emb).flagged
    monkeypatch.setattr(div, "_BLOCK_CELLS", 70)  # one row per block
    assert duplicates(ids, texts, aug_emb, refs, ref_emb).flagged == whole
    assert [(r["id"], r["kind"], r["duplicate_of"]) for r in whole] == [
        ("a10", "near-original", 3),
        ("a40", "near-internal", "a7"),
        ("a41", "near-internal", "a7"),
    ]


def _planted(seed: int = 0, n: int = 200, dim: int = 32):
    """Originals, and augmented rows of which 10% copy an original and 10% copy one
    augmented row; the rest are perturbed originals (a few words replaced)."""
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    words = [f"word{i}" for i in range(400)]
    originals = [" ".join(rng.choices(words, k=rng.randint(8, 14))) for _ in range(n)]
    ref_emb = nprng.normal(size=(n, dim))
    aug_texts, aug_emb, planted = [], [], {}
    for i in range(n):
        toks = originals[i].split()
        for pos in rng.sample(range(len(toks)), 3):
            toks[pos] = rng.choice(words)
        aug_texts.append(" ".join(toks))
        # Near its original in embedding space, but well below the 0.95 threshold.
        aug_emb.append(0.8 * ref_emb[i] / np.linalg.norm(ref_emb[i]) + 0.6 * _noise(nprng, dim))
    slots = rng.sample(range(1, n), n // 5)
    source = 0
    for k, i in enumerate(slots):
        if k < n // 10:
            j = rng.randrange(n)
            text = originals[j]
            aug_texts[i] = text.upper() if k % 2 else f"  {text} "
            aug_emb[i] = ref_emb[j]
            planted[i] = "original"
        else:
            aug_texts[i] = aug_texts[source]
            aug_emb[i] = aug_emb[source]
            planted[i] = "internal"
    return originals, ref_emb, aug_texts, np.array(aug_emb), planted


def _noise(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def test_planted_copies_are_found() -> None:
    originals, ref_emb, aug_texts, aug_emb, planted = _planted()
    ids = [f"aug-{i}" for i in range(len(aug_texts))]
    result = duplicates(ids, aug_texts, aug_emb, originals, ref_emb)
    flagged = {int(row["id"].split("-")[1]): row["kind"] for row in result.flagged}
    for kind, expected in (("original", "exact-original"), ("internal", "exact-internal")):
        rows = [i for i, k in planted.items() if k == kind]
        found = sum(flagged.get(i) == expected for i in rows)
        assert found / len(rows) >= 0.8, (kind, found, len(rows))
    clean = [i for i in range(len(aug_texts)) if i not in planted]
    false_alarms = sum(i in flagged for i in clean)
    assert false_alarms / len(clean) <= 0.1

    leak = diversity(ids, aug_texts, originals, aug_emb, ref_emb, bleu_sample=20)
    leaked = {int(row["id"].split("-")[1]) for row in leak.flagged}
    copies = [i for i, k in planted.items() if k == "original"]
    assert sum(i in leaked for i in copies) / len(copies) >= 0.8
    assert sum(i in leaked for i in clean) / len(clean) <= 0.1
    json.dumps(leak.to_dict())
