"""Distribution metrics (FID, KL/TV, sliced W1, precision/recall, MAUVE) and text leakage."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from augtool.core.distribution import (
    distribution_report,
    fid,
    histogram_divergences,
    mauve_score,
    precision_recall,
    sliced_wasserstein,
)
from augtool.core.leakage import leakage
from augtool.errors import AugtoolError

D = 8


def _blob(n: int, center: float, seed: int, d: int = D) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 0] += center
    return x


@pytest.fixture(scope="module")
def same() -> np.ndarray:
    return _blob(200, 0.0, seed=1)


@pytest.fixture(scope="module")
def far_apart() -> tuple[np.ndarray, np.ndarray]:
    """A small condensed blob and a large reference blob, far apart (also in direction)."""
    return _blob(20, 20.0, seed=2), _blob(500, -20.0, seed=3)


# ----------------------------------------------------------------- identical sets


def test_identical_sets_score_ideal(same: np.ndarray) -> None:
    assert fid(same, same) == pytest.approx(0.0, abs=1e-6)
    hist = histogram_divergences(same, same)
    assert hist["kl"] == pytest.approx(0.0, abs=1e-12)
    assert hist["tv"] == pytest.approx(0.0, abs=1e-12)
    assert sliced_wasserstein(same, same) == pytest.approx(0.0, abs=1e-12)
    pr = precision_recall(same, same)
    assert pr == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    mv = mauve_score(same, same, seeds=(0, 1))
    assert mv["mean"] > 0.9
    assert len(mv["values"]) == 2


# ----------------------------------------------------------------- disjoint sets


def test_disjoint_sets_score_poorly(far_apart: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = far_apart
    assert fid(a, b) > 1000  # ||μa − μb||² alone is about 40² = 1600
    hist = histogram_divergences(a, b)
    assert hist["tv"] > 0.95
    assert hist["kl"] > 1.0
    assert sliced_wasserstein(a, b) > 1.0
    pr = precision_recall(a, b)
    assert pr["precision"] == pytest.approx(0.0, abs=0.05)
    assert pr["recall"] == pytest.approx(0.0, abs=0.05)
    mv = mauve_score(a, b, seeds=(0, 1, 2))
    assert mv["mean"] < 0.2
    assert mv["std"] >= 0.0 and len(mv["values"]) == 3


# ----------------------------------------------------------------- FID


def _symmetric_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _fid_by_eigh(a: np.ndarray, b: np.ndarray) -> float:
    """FID via Tr((Σa Σb)^½) = Σ sqrt(eig(Σa^½ Σb Σa^½)), independent of scipy's sqrtm."""
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    r = _symmetric_sqrt(sa)
    lam = np.linalg.eigvalsh(r @ sb @ r)
    diff = a.mean(0) - b.mean(0)
    return float(
        diff @ diff + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(np.clip(lam, 0, None)).sum()
    )


def test_fid_matches_diagonal_closed_form() -> None:
    """Points μ ± c·s_i·e_i have an exactly diagonal covariance: FID = |Δμ|² + Σ(σa − σb)²."""
    d = 5
    sa, sb = np.array([1.0, 2.0, 0.5, 3.0, 1.5]), np.array([2.0, 1.0, 0.5, 1.0, 4.0])
    mu_a, mu_b = np.arange(d, dtype=float), -np.ones(d)

    def cloud(mu: np.ndarray, s: np.ndarray) -> np.ndarray:
        eye = np.eye(d) * s
        return np.vstack([mu + eye, mu - eye])

    a, b = cloud(mu_a, sa), cloud(mu_b, sb)
    scale = 2.0 / (2 * d - 1)  # sample variance (ddof=1) of the ± construction
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(scale) * (sa - sb)) ** 2)
    assert fid(a, b) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("m", [300, 12])  # full-rank and rank-deficient (M < d) covariance
def test_fid_matches_eigendecomposition(m: int) -> None:
    rng = np.random.default_rng(7)
    d = 24
    a = rng.normal(size=(m, d)) @ rng.normal(size=(d, d)) * 0.3 + 0.5
    b = rng.normal(size=(400, d)) * 1.3
    assert fid(a, b) == pytest.approx(_fid_by_eigh(a, b), rel=1e-6)


# ----------------------------------------------------------------- KL / TV


def test_kl_is_reference_against_condensed_with_smoothing() -> None:
    """Condensed covers one of two equal reference modes; KL(q || p) with 0.5 pseudo-counts."""
    a = _blob(20, 30.0, seed=4)
    b = np.vstack([_blob(100, 30.0, seed=5), _blob(100, -30.0, seed=6)])
    hist = histogram_divergences(a, b, bins=2)
    p = np.array([20.5, 0.5]) / 21.0
    q = np.array([0.5, 0.5])
    assert hist["bins"] == 2
    assert hist["tv"] == pytest.approx(0.5)
    assert hist["kl"] == pytest.approx(float(np.sum(q * np.log(q / p))))
    # The other direction would be much smaller: missing coverage is what KL(q || p) punishes.
    assert hist["kl"] > float(np.sum(p * np.log(p / q))) + 0.5


# ----------------------------------------------------------------- sliced W1


def test_sliced_wasserstein_is_w1_in_one_dimension() -> None:
    a = np.array([[0.0], [1.0], [2.0]])
    b = np.array([[3.0], [4.0], [5.0], [6.0]])
    # In 1-D every unit direction is ±1, so each slice is the plain W1 distance.
    from scipy.stats import wasserstein_distance

    expected = wasserstein_distance(a[:, 0], b[:, 0])
    assert sliced_wasserstein(a, b, projections=16) == pytest.approx(expected)


# ----------------------------------------------------------------- precision / recall


def test_precision_recall_hand_example_1d() -> None:
    reference = np.array([[0.0], [1.0], [2.0], [3.0]])  # 1-NN radius 1 around each point
    condensed = np.array([[0.5], [10.0]])  # radius 9.5 around each point
    pr = precision_recall(condensed, reference, k=1)
    assert pr["precision"] == pytest.approx(0.5)  # 0.5 is inside, 10 is not
    assert pr["recall"] == pytest.approx(1.0)  # every reference point is within 9.5 of 0.5
    assert pr["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_precision_recall_hand_example_2d() -> None:
    reference = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # 1-NN radius 1
    condensed = np.array([[0.5, 0.5], [5.0, 5.0], [-0.9, 0.0]])  # 1-NN radius ~4.6 for two
    pr = precision_recall(condensed, reference, k=1)
    assert pr["precision"] == pytest.approx(2 / 3)  # (5, 5) is outside every unit ball
    assert pr["recall"] == pytest.approx(1.0)


def test_precision_recall_clamps_k() -> None:
    reference = np.array([[0.0], [1.0], [2.0]])
    condensed = np.array([[1.5]])
    pr = precision_recall(condensed, reference, k=50)  # k -> 2 for reference, 0 for condensed
    assert pr["precision"] == 1.0
    assert pr["recall"] == 0.0  # a single condensed point has a radius-0 ball
    assert pr["f1"] == 0.0


# ----------------------------------------------------------------- report and errors


def test_distribution_report_keys(far_apart: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = far_apart
    report = distribution_report(a, b, mauve_seeds=(0,))
    assert set(report) == {
        "fid", "kl", "tv", "wasserstein", "mauve", "precision", "recall", "f1",
        "n_condensed", "n_reference", "dimension",
    }  # fmt: skip
    assert (report["n_condensed"], report["n_reference"], report["dimension"]) == (20, 500, D)
    assert set(report["mauve"]) == {"mean", "std", "values"}
    assert all(math.isfinite(report[k]) for k in ("fid", "kl", "tv", "wasserstein"))
    assert distribution_report(a, b, skip_mauve=True)["mauve"] is None


def test_user_errors() -> None:
    with pytest.raises(AugtoolError, match="dimension"):
        fid(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(AugtoolError, match="2-D"):
        sliced_wasserstein(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(AugtoolError, match="at least 2"):
        fid(np.zeros((1, 2)), np.zeros((3, 2)))


def test_mauve_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mauve", None)  # makes `import mauve` raise ImportError
    with pytest.raises(AugtoolError, match="mauve-text"):
        mauve_score(np.zeros((3, 2)), np.ones((3, 2)))


# ----------------------------------------------------------------- leakage


REFERENCE = [
    "The quick brown fox jumps over the lazy dog.",
    "Patients reported mild headaches after the second dose.",
    "Stock prices fell sharply on Monday morning.",
]


def test_leakage_exact_copy() -> None:
    out = leakage(["Stock prices fell sharply on Monday morning."], REFERENCE)
    row = out["details"][0]
    assert row["nearest_index"] == 2
    assert row["unigram"] == 1.0 and row["bigram"] == 1.0
    assert out["exact_copy_share"] > 0
    assert out["unigram_max"] == 1.0 and out["bigram_max"] == 1.0


def test_leakage_shuffled_words() -> None:
    out = leakage(["morning Monday on sharply fell prices stock"], REFERENCE)
    row = out["details"][0]
    assert row["nearest_index"] == 2
    assert row["unigram"] == 1.0
    assert row["bigram"] < 1.0
    assert out["exact_copy_share"] == 0.0


def test_leakage_disjoint_vocabulary() -> None:
    out = leakage(["Zebras enjoy purple umbrellas"], REFERENCE)
    assert out["unigram_mean"] == 0.0 and out["bigram_mean"] == 0.0


def test_leakage_uses_embeddings_when_given() -> None:
    cond = ["Stock prices fell sharply on Monday morning.", "Zebras enjoy purple umbrellas"]
    ref_emb = np.eye(3)
    cond_emb = np.array([[0.0, 1.0, 0.1], [0.0, 0.2, 1.0]])  # nearest: reference 1, then 2
    out = leakage(cond, REFERENCE, cond_emb, ref_emb)
    assert out["nearest_by"] == "embedding"
    assert [r["nearest_index"] for r in out["details"]] == [1, 2]
    # Overlap is measured against the embedding neighbour, not the best word match ...
    assert out["details"][0]["unigram"] == 0.0
    # ... while the exact-copy check looks at every original.
    assert out["exact_copy_share"] == 0.5
