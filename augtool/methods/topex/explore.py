"""The Explorer: from a classifier's outputs to named, scored clusters of mistakes.

:func:`explore` takes precomputed outputs, gold labels, texts and sentence embeddings
(BERTopic-style), so it runs and is tested without any model:

1. min-max normalise the logits to [-1, 1] per dimension (and the one-hot gold labels
   likewise, appended when ``with_labels``);
2. cluster the space (OPTICS or HDBSCAN);
3. keep the clusters whose error rate exceeds the threshold (clusters of mistakes);
4. name them with BERTopic, fitted once on those clusters' texts only;
5. project the whole space to 2D (SparsePCA, UMAP or PCA) for the plot;
6. measure and score the clusters of mistakes (the paper's six scores, see
   :mod:`augtool.core.clustering.scores`) and choose the highest-scoring one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from augtool.core.clustering import cluster_points, minmax_normalise, project_2d
from augtool.core.clustering.naming import name_clusters
from augtool.core.clustering.scores import (
    Choice,
    choose_cluster,
    geometric_measures,
    scores_from,
    with_weighted,
)
from augtool.core.clustering.text_scores import (
    TokenEmbedder,
    count_cosine_name,
    count_cosine_texts,
    ctc_preservation,
)
from augtool.core.progress import SILENT, Reporter
from augtool.methods.topex.config import ExploreConfig


@dataclass
class Cluster:
    """One cluster of the output space."""

    id: int
    members: list[int]
    error_rate: float
    mistaken: bool
    majority_label: str
    majority_pred: str
    centroid: list[float]
    name: str = ""
    keywords: list[tuple[str, float]] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass
class Exploration:
    """Everything :func:`explore` found; indices refer to the input order."""

    labels: list[str]
    space: np.ndarray
    coords: np.ndarray
    cluster_ids: np.ndarray
    gold: np.ndarray
    pred: np.ndarray
    clusters: list[Cluster]
    choice: Choice | None
    timings: dict[str, float]

    @property
    def correct(self) -> np.ndarray:
        return self.gold == self.pred

    def mistaken(self) -> list[Cluster]:
        return [c for c in self.clusters if c.mistaken]

    def cluster(self, cluster_id: int) -> Cluster | None:
        return next((c for c in self.clusters if c.id == cluster_id), None)


def output_space(
    logits: np.ndarray, gold: np.ndarray, num_labels: int, *, with_labels: bool = True
) -> np.ndarray:
    """Min-max normalised logits, with the normalised one-hot gold labels appended."""
    space = minmax_normalise(np.asarray(logits, dtype=np.float64))
    if with_labels:
        onehot = np.eye(num_labels)[np.asarray(gold, dtype=np.int64)]
        space = np.hstack([space, minmax_normalise(onehot)])
    return space


def explore(
    logits: np.ndarray,
    gold: Sequence[int],
    texts: Sequence[str],
    embeddings: np.ndarray,
    labels: Sequence[str],
    config: ExploreConfig,
    *,
    embed_tokens: TokenEmbedder | None = None,
    reporter: Reporter = SILENT,
) -> Exploration:
    """Run the Explorer over precomputed outputs (see the module docstring).

    ``embed_tokens`` gives contextual token embeddings for the CTC score; without it
    that score is 0 for every cluster.
    """
    labels = list(labels)
    logits = np.asarray(logits, dtype=np.float64)
    gold_ids = np.asarray(gold, dtype=np.int64)
    if logits.shape != (len(gold_ids), len(labels)):
        raise ValueError(
            f"logits of shape {logits.shape} for {len(gold_ids)} rows, {len(labels)} labels"
        )
    timings: dict[str, float] = {}

    with _timed(timings, "normalise"):
        pred_ids = logits.argmax(axis=1)
        space = output_space(logits, gold_ids, len(labels), with_labels=config.with_labels)
    if (pred_ids == gold_ids).all():
        reporter.log("no misclassified points: nothing to cluster")
        cluster_ids = np.full(len(space), -1, dtype=np.int64)
    else:
        reporter.log(f"clustering {len(space)} points with {config.clusterer}")
        with _timed(timings, "cluster"):
            cluster_ids = cluster_points(space, config.clusterer, **config.clusterer_params())
    with _timed(timings, "summarise"):
        clusters = _summarise(cluster_ids, gold_ids, pred_ids, space, labels, config)
    mistaken = [c for c in clusters if c.mistaken]
    if mistaken:
        reporter.log(f"naming {len(mistaken)} cluster(s) of mistakes with BERTopic")
        with _timed(timings, "name"):
            _name(mistaken, texts, embeddings, config)
    reporter.log(f"projecting to 2D with {config.projection}")
    with _timed(timings, "project"):
        coords = project_2d(space, config.projection, seed=config.seed)
    with _timed(timings, "score"):
        variants = config.variants()
        for c in mistaken:
            c.measures = measure_cluster(c, space, texts, config, embed_tokens=embed_tokens)
        raw = {c.id: scores_from(c.measures, variants) for c in mistaken}
        scored = with_weighted(raw, config.weights(), variants.normalise)
        for c in mistaken:
            c.scores = scored[c.id]
        choice = choose_cluster(scored, config.method, config.weights(), variants)
    return Exploration(
        labels, space, coords, cluster_ids, gold_ids, pred_ids, clusters, choice, timings
    )


def measure_cluster(
    cluster: Cluster,
    space: np.ndarray,
    texts: Sequence[str],
    config: ExploreConfig,
    *,
    embed_tokens: TokenEmbedder | None = None,
) -> dict[str, float]:
    """The measures of one named cluster (:data:`~augtool.core.clustering.scores.MEASURES`):
    the geometric ones in ``space``, CTC preservation against its name and both
    count-vector cosines."""
    members = np.asarray(cluster.members)
    measures = geometric_measures(space, members, max_outside=config.max_outside, seed=config.seed)
    member_texts = [texts[i] for i in cluster.members]
    measures["ctc"] = (
        ctc_preservation(
            cluster.name, member_texts, embed_tokens, max_texts=config.ctc_texts, seed=config.seed
        )
        if embed_tokens is not None
        else 0.0
    )
    measures["cosine_texts"] = count_cosine_texts(member_texts)
    measures["cosine_name"] = count_cosine_name(cluster.name, member_texts)
    return measures


def _summarise(
    cluster_ids: np.ndarray,
    gold: np.ndarray,
    pred: np.ndarray,
    space: np.ndarray,
    labels: list[str],
    config: ExploreConfig,
) -> list[Cluster]:
    clusters = []
    for cluster_id in sorted(set(cluster_ids.tolist()) - {-1}):
        members = np.flatnonzero(cluster_ids == cluster_id)
        error_rate = float((gold[members] != pred[members]).mean())
        clusters.append(
            Cluster(
                id=int(cluster_id),
                members=members.tolist(),
                error_rate=error_rate,
                mistaken=error_rate > config.error_threshold,
                majority_label=labels[_majority(gold[members])],
                majority_pred=labels[_majority(pred[members])],
                centroid=[round(float(v), 6) for v in space[members].mean(axis=0)],
            )
        )
    return clusters


def _majority(values: np.ndarray) -> int:
    counts = Counter(values.tolist())
    return min(counts, key=lambda v: (-counts[v], v))


def _name(
    clusters: list[Cluster], texts: Sequence[str], embeddings: np.ndarray, config: ExploreConfig
) -> None:
    """Name the clusters of mistakes: one BERTopic fit over their texts only."""
    index = [i for c in clusters for i in c.members]
    assignment = [c.id for c in clusters for _ in c.members]
    names = name_clusters(
        [texts[i] for i in index],
        assignment,
        np.asarray(embeddings)[index],
        top_n_words=config.top_n_words,
        name_words=config.name_words,
    )
    for c in clusters:
        c.name = names[c.id].name
        c.keywords = names[c.id].keywords


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``timings[stage]``."""
    start = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - start, 4)
