"""TopEx's building blocks on synthetic data with known structure: normalisation,
clustering, the six scores (each equation on a hand-made point set or hand-made texts,
worked out by hand in the test), the choice and its reason, naming with BERTopic."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import needs_shared_data

from augtool.core.clustering import (
    cluster_points,
    geometric_median,
    max_diameter,
    max_extent,
    mean_outside_distance,
    minmax_normalise,
    outside_distance_sum,
    project_2d,
)
from augtool.core.clustering.naming import name_clusters
from augtool.core.clustering.scores import (
    MEASURES,
    Variants,
    Weights,
    choose_cluster,
    geometric_measures,
    rank_clusters,
    scores_from,
    with_weighted,
)
from augtool.core.clustering.text_scores import (
    count_cosine_name,
    count_cosine_texts,
    ctc_preservation,
    preservation,
)
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


def test_diameter_extent_and_outside_distance() -> None:
    square = np.array([[0.0, 0], [1, 0], [0, 1], [1, 1]])
    assert max_diameter(square) == pytest.approx(np.sqrt(2))
    assert max_extent(square) == pytest.approx(1.0)  # 1 along x, 1 along y
    assert max_diameter(square[:1]) == 0 and max_extent(square[:1]) == 0
    inside, outside = np.array([[0.0, 0]]), np.array([[3.0, 4], [6, 8]])
    assert outside_distance_sum(inside, outside) == pytest.approx(15.0)  # 5 + 10
    assert mean_outside_distance(inside, outside) == pytest.approx(7.5)
    big = np.random.default_rng(0).normal(size=(3000, 2))
    exact = outside_distance_sum(big[:1000], big[1000:])
    # a capped sample estimates the full sum (scaled up), not the sample's own sum
    sampled = outside_distance_sum(big[:1000], big[1000:], max_points=500, seed=1)
    assert sampled == pytest.approx(exact, rel=0.05)
    assert outside_distance_sum(big[:10], big[10:], max_points=5000) == pytest.approx(
        outside_distance_sum(big[:10], big[10:])
    )


def test_density_is_size_over_the_largest_extent_along_one_dimension() -> None:
    # C = {(0,0), (4,0), (0,1)}: extent 4 along x, 1 along y -> max 4 -> s = 3 / 4.
    # The Euclidean variant uses the farthest pair, (4,0)-(0,1) = sqrt(16 + 1) = sqrt(17).
    cluster = np.array([[0.0, 0], [4, 0], [0, 1]])
    space = np.vstack([cluster, [[9.0, 9]]])
    measures = _with_text(geometric_measures(space, np.arange(3)))
    assert measures["extent"] == pytest.approx(4.0)
    assert measures["diameter"] == pytest.approx(np.sqrt(17))
    assert scores_from(measures)["density"] == pytest.approx(3 / 4)
    euclidean = scores_from(measures, Variants(density="euclidean"))["density"]
    assert euclidean == pytest.approx(3 / np.sqrt(17))
    # identical points: the diameter is floored at 1e-6, not divided by 0
    same = geometric_measures(np.array([[1.0, 1], [1, 1], [5, 5]]), np.arange(2))
    assert scores_from(_with_text(same))["density"] == pytest.approx(2 / 1e-6)


def test_pairwise_is_the_inside_outside_sum_over_the_outside_count() -> None:
    # C = {(0,0), (6,0)}, outside {(0,8), (6,8), (3,4)} (3-4-5 and 6-8-10 triangles):
    # from (0,0): 8 + 10 + 5; from (6,0): 10 + 8 + 5 -> sum 46.
    # paper: 46 / (|Y| - |C|) = 46 / 3; variant "pairs": 46 / (2 * 3), the mean.
    space = np.array([[0.0, 0], [6, 0], [0, 8], [6, 8], [3, 4]])
    measures = _with_text(geometric_measures(space, np.array([0, 1])))
    assert measures["pairwise_sum"] == pytest.approx(46.0)
    assert measures["size"] == 2 and measures["outside"] == 3
    assert scores_from(measures)["pairwise"] == pytest.approx(46 / 3)
    assert scores_from(measures, Variants(pairwise="pairs"))["pairwise"] == pytest.approx(46 / 6)
    # a cap on each side still estimates the sum (here the cap is no smaller: exact)
    capped = geometric_measures(space, np.array([0, 1]), max_outside=3)
    assert capped["pairwise_sum"] == pytest.approx(46.0)


def test_geomedian_is_the_median_s_mean_distance_to_the_points_outside() -> None:
    # C = the corners of the square [0,2]^2 and its centre: by symmetry g = (1,1).
    # Outside: (1,4), (5,1), (4,5) at 3, 4 and 5 from g -> (3 + 4 + 5) / 3 = 4.
    # Variant "inside": the mean distance of C's points to g = (4 * sqrt(2) + 0) / 5.
    cluster = np.array([[0.0, 0], [2, 0], [0, 2], [2, 2], [1, 1]])
    space = np.vstack([cluster, [[1.0, 4], [5, 1], [4, 5]]])
    measures = _with_text(geometric_measures(space, np.arange(5)))
    assert scores_from(measures)["geomedian"] == pytest.approx(4.0)
    inside = scores_from(measures, Variants(geomedian="inside"))["geomedian"]
    assert inside == pytest.approx(4 * np.sqrt(2) / 5)
    assert Variants(geomedian="inside").lower_is_better("geomedian")
    assert not Variants().lower_is_better("geomedian")


def test_cosine_is_the_sum_over_ordered_text_pairs_over_the_cluster_size() -> None:
    # Count vectors over {apple, green, pear, red}: "red apple" (1,0,0,1), "red pear"
    # (0,0,1,1), "green pear" (0,1,1,0). cos = 1/2, 0, 1/2 for the pairs (1,2), (1,3),
    # (2,3); ordered pairs j != k count each twice: 2 * (1/2 + 0 + 1/2) = 2, over |C| = 3.
    texts = ["red apple", "Red  PEAR", "green pear"]
    assert count_cosine_texts(texts) == pytest.approx(2 / 3)
    # a text with no word is a zero vector: it adds no similarity but counts in |C|
    assert count_cosine_texts([*texts, "?!"]) == pytest.approx(2 / 4)
    # two identical texts: cos 1 both ways, over |C| = 2
    assert count_cosine_texts(["fast car", "fast car"]) == pytest.approx(1.0)
    assert count_cosine_texts(["blue sky", "grey rain"]) == 0.0
    assert count_cosine_texts(["alone"]) == 0.0
    # variant "name": the mean cosine of the name "red pear" against each text:
    # (1/2 + 1 + 1/2) / 3
    assert count_cosine_name("red pear", texts) == pytest.approx(2 / 3)
    assert count_cosine_name("bees fly", texts) == 0.0


def test_ctc_is_the_mean_preservation_between_the_name_and_each_text() -> None:
    # Hand-made token embeddings. align(a->b): each token of a, its best cosine in b,
    # averaged; CTC preservation = align(a->b) * align(b->a) / (align(a->b) + align(b->a)).
    tokens = {
        "name": np.array([[1.0, 0], [0, 1]]),
        "one": np.array([[1.0, 0]]),  # name->one: (1 + 0)/2 = 1/2; one->name: 1 -> 1/3
        "both": np.array([[1.0, 0], [0, 1]]),  # 1 and 1 -> 1/2
        "mid": np.array([[1.0, 1]]),  # both ways sqrt(2)/2 -> (1/2) / sqrt(2) = sqrt(2)/4
    }

    def embed(texts: list[str]) -> list[np.ndarray]:
        return [tokens[t] for t in texts]

    assert preservation(tokens["name"], tokens["one"]) == pytest.approx(1 / 3)
    expected = (1 / 3 + 1 / 2 + np.sqrt(2) / 4) / 3
    assert ctc_preservation("name", ["one", "both", "mid"], embed) == pytest.approx(expected)
    one_of_them = ctc_preservation("name", ["one", "both", "mid"], embed, max_texts=1, seed=0)
    assert min(abs(one_of_them - v) for v in (1 / 3, 1 / 2, np.sqrt(2) / 4)) < 1e-9


def test_weighted_is_the_weighted_sum_of_the_raw_scores() -> None:
    # 0.68 cosine + 0.65 pairwise + 0.41 density, from the raw scores:
    # cluster 1: 0.68 * 0.2 + 0.65 * 10 + 0.41 * 1 = 0.136 + 6.5 + 0.41 = 7.046
    # cluster 2: 0.68 * 1.0 + 0.65 * 4 + 0.41 * 5 = 0.68 + 2.6 + 2.05 = 5.33
    raw = {
        1: {"density": 1.0, "pairwise": 10.0, "geomedian": 3.0, "ctc": 0.1, "cosine": 0.2},
        2: {"density": 5.0, "pairwise": 4.0, "geomedian": 1.0, "ctc": 0.9, "cosine": 1.0},
    }
    scored = with_weighted(raw)
    assert scored[1]["weighted"] == pytest.approx(7.046)
    assert scored[2]["weighted"] == pytest.approx(5.33)
    assert choose_cluster(scored, "weighted").cluster == 1
    # "max": each score over its maximum (cosine 1, pairwise 10, density 5) first:
    # cluster 1: 0.68 * 0.2 + 0.65 * 1 + 0.41 * 0.2 = 0.868
    # cluster 2: 0.68 * 1 + 0.65 * 0.4 + 0.41 * 1 = 1.35
    normalised = with_weighted(raw, Weights(), "max")
    assert normalised[1]["weighted"] == pytest.approx(0.868)
    assert normalised[2]["weighted"] == pytest.approx(1.35)
    assert choose_cluster(normalised, "weighted", variants=Variants(normalise="max")).cluster == 2
    # the other two scores are weightable: 1 * ctc alone picks cluster 2 (0.9 > 0.1)
    ctc_only = Weights(cosine=0, pairwise=0, density=0, ctc=1)
    assert choose_cluster(with_weighted(raw, ctc_only), "weighted", ctc_only).cluster == 2


def _with_text(measures: dict[str, float]) -> dict[str, float]:
    """Geometric measures with neutral text measures, for scores_from."""
    return {**measures, "ctc": 0.0, "cosine_texts": 0.0, "cosine_name": 0.0}


def test_dense_cluster_wins_density_and_far_cluster_wins_pairwise() -> None:
    space, parts = blobs()
    index, start = {}, 0
    for name, part in parts.items():
        index[name] = np.arange(start, start + len(part))
        start += len(part)
    measures = {
        i: {**geometric_measures(space, index[name]), "ctc": 0.5, "cosine_texts": 0.5}
        | {"cosine_name": 0.5}
        for i, name in enumerate(parts)
    }
    assert all(set(MEASURES) == set(m) for m in measures.values())
    raw = {i: scores_from(m) for i, m in measures.items()}
    scored = with_weighted(raw)
    assert rank_clusters(scored, "density")[0] == 0  # dense
    assert rank_clusters(scored, "pairwise")[0] == 2  # far
    assert rank_clusters(scored, "geomedian")[0] == 2  # far from the rest: higher is better
    inside = Variants(geomedian="inside")
    tight = {i: scores_from(m, inside) for i, m in measures.items()}
    assert rank_clusters(tight, "geomedian", inside)[0] == 0  # tightest: lower is better
    choice = choose_cluster(scored, "density")
    assert choice is not None and choice.cluster == 0
    values = [s["density"] for s in raw.values()]
    ratio = raw[0]["density"] / np.mean(values)
    assert f"density {ratio:.2f}x the mean of all clusters" in choice.reason
    assert f"the minimum is {min(values) / np.mean(values):.2f}x the mean" in choice.reason
    weighted = choose_cluster(scored, "weighted")
    assert weighted.reason.startswith(f"best weighted score of 3 cluster(s) ({weighted.value:.3f})")
    assert "(adds 0.65 x " in weighted.reason and "cosine similarity" in weighted.reason
    heavy_cosine = Weights(cosine=1, pairwise=0, density=0)
    raw[1]["cosine"] = 0.9
    assert choose_cluster(with_weighted(raw, heavy_cosine), "weighted", heavy_cosine).cluster == 1
    assert choose_cluster({}, "weighted") is None
    alone = choose_cluster({7: scored[0]}, "density")
    assert alone.cluster == 7 and alone.reason == (
        f"the only cluster of mistakes (density {scored[0]['density']:.3f})"
    )


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


def test_ctc_preservation_on_the_default_encoder() -> None:
    a = np.array([[1.0, 0], [0, 1]])
    assert preservation(a, a) == pytest.approx(0.5)  # 1 * 1 / (1 + 1)
    assert preservation(a, -a) == 0.0

    from augtool.core.encoders import load_encoder

    encoder = load_encoder(cache=False)  # the embedded all-MiniLM-L6-v2
    texts = ["What is the capital city of France ?", "Which city is the capital of Peru ?"]
    matching = ctc_preservation("capital city country", texts, encoder.token_embeddings)
    unrelated = ctc_preservation("bees honey insects", texts, encoder.token_embeddings)
    assert 0 < unrelated < matching <= 0.5


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
    assert set(chosen.measures) == set(MEASURES) and chosen.measures["size"] == len(chosen.members)
    assert result.coords.shape == (len(rows), 2)
    assert all(c.error_rate <= 0.5 for c in result.clusters if not c.mistaken)
