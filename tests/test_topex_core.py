"""TopEx's building blocks on synthetic data with known structure: normalisation,
clustering, the six scores, the choice and its reason, naming with BERTopic."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import needs_shared_data

from augtool.core.clustering import (
    cluster_points,
    geometric_median,
    max_diameter,
    mean_outside_distance,
    minmax_normalise,
    project_2d,
)
from augtool.core.clustering.naming import name_clusters
from augtool.core.clustering.scores import (
    Weights,
    choose_cluster,
    geometric_scores,
    rank_clusters,
    with_weighted,
)
from augtool.core.clustering.text_scores import count_cosine, ctc_preservation, preservation
from augtool.errors import OptionError
from augtool.methods.topex.config import ExploreConfig
from augtool.methods.topex.explore import explore, output_space


def blobs(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Three clusters: a tight one, a loose one and a far one, plus background."""
    rng = np.random.default_rng(seed)
    parts = {
        "dense": rng.normal([0, 0], 0.02, (40, 2)),
        "loose": rng.normal([1.5, 0], 0.3, (40, 2)),
        "far": rng.normal([9, 9], 0.3, (40, 2)),
    }
    return np.vstack(list(parts.values())), parts


def test_minmax_normalise_maps_each_column_to_minus_one_one() -> None:
    values = np.array([[0.0, 10.0, 3.0], [5.0, 20.0, 3.0], [10.0, 15.0, 3.0]])
    out = minmax_normalise(values)
    assert np.allclose(out[:, 0], [-1, 0, 1]) and np.allclose(out[:, 1], [-1, 1, 0])
    assert np.allclose(out[:, 2], 0)  # a constant column sits in the middle
    space = output_space(values[:, :2], np.array([0, 1, 1]), 2)
    assert space.shape == (3, 4) and np.allclose(space[:, 2:], [[1, -1], [-1, 1], [-1, 1]])


def test_geometric_median_matches_a_brute_force_minimiser() -> None:
    from scipy.optimize import minimize

    rng = np.random.default_rng(3)
    points = np.vstack([rng.normal(0, 1, (30, 3)), rng.normal(6, 0.5, (5, 3))])  # skewed
    cost = lambda c: np.linalg.norm(points - c, axis=1).sum()  # noqa: E731
    best = min(
        (
            minimize(
                cost,
                start,
                method="Nelder-Mead",
                options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000},
            )
            for start in points[::5]
        ),
        key=lambda r: r.fun,
    )
    median = geometric_median(points)
    assert cost(median) <= best.fun + 1e-6
    assert np.linalg.norm(median - best.x) < 1e-3
    assert not np.allclose(median, points.mean(axis=0), atol=0.1)  # it is not the mean
    # a median sitting on a data point (Weiszfeld's singular case) is still found
    collinear = np.array([[0.0, 0], [1, 0], [2, 0], [3, 0], [100, 0]])
    assert np.allclose(geometric_median(collinear), [2, 0], atol=1e-5)


def test_diameter_and_outside_distance() -> None:
    square = np.array([[0.0, 0], [1, 0], [0, 1], [1, 1]])
    assert max_diameter(square) == pytest.approx(np.sqrt(2))
    assert max_diameter(square[:1]) == 0
    inside, outside = np.array([[0.0, 0]]), np.array([[3.0, 4], [6, 8]])
    assert mean_outside_distance(inside, outside) == pytest.approx(7.5)
    big = np.random.default_rng(0).normal(size=(3000, 2))
    exact = mean_outside_distance(big[:1000], big[1000:])
    sampled = mean_outside_distance(big[:1000], big[1000:], max_points=500, seed=1)
    assert sampled == pytest.approx(exact, rel=0.05)


def test_dense_cluster_wins_density_and_far_cluster_wins_pairwise() -> None:
    space, parts = blobs()
    index, start = {}, 0
    for name, part in parts.items():
        index[name] = np.arange(start, start + len(part))
        start += len(part)
    raw = {i: geometric_scores(space, index[name]) for i, name in enumerate(parts)}
    for scores in raw.values():
        scores.update(ctc=0.5, cosine=0.5)
    scored = with_weighted(raw)
    assert rank_clusters(scored, "density")[0] == 0  # dense
    assert rank_clusters(scored, "pairwise")[0] == 2  # far
    assert rank_clusters(scored, "geomedian")[0] == 0  # tightest: lower is better
    # weighted = 0.68 cos + 0.65 pairwise + 0.41 density, each divided by its max
    top_pairwise = max(s["pairwise"] for s in raw.values())
    top_density = max(s["density"] for s in raw.values())
    expected = (
        0.68 + 0.65 * raw[1]["pairwise"] / top_pairwise + 0.41 * raw[1]["density"] / top_density
    )
    assert scored[1]["weighted"] == pytest.approx(expected)
    choice = choose_cluster(scored, "density")
    assert choice is not None and choice.cluster == 0
    ratio = raw[0]["density"] / np.mean([s["density"] for s in raw.values()])
    assert f"density {ratio:.2f}x the mean of all clusters" in choice.reason
    heavy_cosine = Weights(cosine=1, pairwise=0, density=0)
    raw[1]["cosine"] = 0.9
    assert choose_cluster(with_weighted(raw, heavy_cosine), "weighted", heavy_cosine).cluster == 1
    assert choose_cluster({}, "weighted") is None


@pytest.mark.parametrize("method", ["optics", "hdbscan"])
def test_clusterers_find_the_blobs(method: str) -> None:
    space, _ = blobs()
    ids = cluster_points(space, method, min_samples=5, min_cluster_size=10)
    found = [set(ids[i * 40 : (i + 1) * 40].tolist()) - {-1} for i in range(3)]
    assert all(len(f) >= 1 for f in found)
    assert not (found[0] & found[2]) and not (found[1] & found[2])  # the far blob is apart


def test_too_few_points_for_the_clusterer_is_an_option_error() -> None:
    with pytest.raises(OptionError, match="--min-samples: is 5 but there are only 3 points"):
        cluster_points(np.zeros((3, 2)), "optics", min_samples=5)


@pytest.mark.parametrize("method", ["sparsepca", "pca", "umap"])
def test_projections_give_two_columns(method: str) -> None:
    space, _ = blobs()
    coords = project_2d(np.hstack([space, space[:, :1] * 2]), method, seed=0)
    assert coords.shape == (len(space), 2) and np.isfinite(coords).all()


def test_count_cosine_and_ctc_preservation() -> None:
    assert count_cosine("capital city", ["capital city", "Capital  CITY"]) == pytest.approx(1.0)
    assert count_cosine("capital city", ["bees fly"]) == 0.0
    a = np.array([[1.0, 0], [0, 1]])
    assert preservation(a, a) == pytest.approx(1.0)
    assert preservation(a, -a) == 0.0

    from augtool.core.encoders import load_encoder

    encoder = load_encoder(cache=False)  # the embedded all-MiniLM-L6-v2
    texts = ["What is the capital city of France ?", "Which city is the capital of Peru ?"]
    matching = ctc_preservation("capital city country", texts, encoder.token_embeddings)
    unrelated = ctc_preservation("bees honey insects", texts, encoder.token_embeddings)
    assert 0 < unrelated < matching <= 1


def test_bertopic_names_clusters_of_a_real_corpus() -> None:
    path = needs_shared_data("trec", "train.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:600]]
    chosen = {"LOC": 10, "NUM": 20, "HUM": 30}
    rows = [r for r in rows if r["label"] in chosen]
    ids = [chosen[r["label"]] for r in rows]
    embeddings = np.random.default_rng(0).normal(size=(len(rows), 8))
    names = name_clusters([r["text"] for r in rows], ids, embeddings, name_words=4)
    assert set(names) == {10, 20, 30}
    words = {cluster: {w for w, _ in names[cluster].keywords} for cluster in names}
    assert words[10] & {"city", "country", "state", "capital"}, names[10]
    assert words[20] & {"year", "many", "long", "much"}, names[20]
    assert all(len(n.name.split()) == 4 for n in names.values())
    assert all(s > 0 for n in names.values() for _, s in n.keywords)


def test_explore_finds_names_and_chooses_the_planted_mistakes() -> None:
    path = needs_shared_data("trec", "train.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:1500]]
    labels = sorted({r["label"] for r in rows})
    gold = np.array([labels.index(r["label"]) for r in rows])
    rng = np.random.default_rng(0)
    logits = np.eye(len(labels))[gold] * 3 + rng.normal(0, 0.5, (len(rows), len(labels)))
    planted = [i for i, r in enumerate(rows) if r["label"] == "LOC" and "city" in r["text"].lower()]
    assert len(planted) >= 10
    for i in planted:  # the model takes "city" questions for HUM
        logits[i] = np.eye(len(labels))[labels.index("HUM")] * 3 + rng.normal(0, 0.2, len(labels))
    texts = [r["text"] for r in rows]
    result = explore(logits, gold, texts, rng.normal(size=(len(rows), 8)), labels, ExploreConfig())
    mistaken = result.mistaken()
    assert mistaken and result.choice is not None
    chosen = result.cluster(result.choice.cluster)
    assert chosen.majority_label == "LOC" and chosen.majority_pred == "HUM"
    assert set(chosen.members) <= set(planted) and chosen.error_rate == 1.0
    assert "city" in chosen.name
    assert set(chosen.scores) == {"density", "pairwise", "geomedian", "ctc", "cosine", "weighted"}
    assert result.coords.shape == (len(rows), 2)
    assert all(c.error_rate <= 0.5 for c in result.clusters if not c.mistaken)
