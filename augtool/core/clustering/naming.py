"""Naming clusters with BERTopic: c-TF-IDF over each cluster's texts.

BERTopic is fitted once, on precomputed embeddings and the given cluster assignment
(its dimensionality reduction and clustering steps are replaced by pass-throughs), so
it names the clusters the Explorer found instead of finding its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from augtool.errors import AugtoolError


@dataclass
class ClusterName:
    """A cluster's name (its top words) and the c-TF-IDF weight of each keyword."""

    name: str
    keywords: list[tuple[str, float]]


def name_clusters(
    texts: Sequence[str],
    cluster_ids: Sequence[int],
    embeddings: np.ndarray,
    *,
    top_n_words: int = 10,
    name_words: int = 4,
    stop_words: str | None = "english",
) -> dict[int, ClusterName]:
    """Names of the clusters in ``cluster_ids`` (one id per text; -1 rows are ignored)."""
    from bertopic import BERTopic
    from bertopic.cluster import BaseCluster
    from bertopic.dimensionality import BaseDimensionalityReduction
    from sklearn.feature_extraction.text import CountVectorizer

    ids = np.asarray(cluster_ids)
    keep = ids >= 0
    docs = [t for t, k in zip(texts, keep, strict=True) if k]
    if not docs:
        return {}
    clusters = sorted(set(ids[keep].tolist()))
    dense = np.array([clusters.index(c) for c in ids[keep]])
    model = BERTopic(
        embedding_model=None,
        umap_model=BaseDimensionalityReduction(),
        hdbscan_model=BaseCluster(),
        vectorizer_model=_vectorizer(docs, stop_words, CountVectorizer),
        top_n_words=top_n_words,
        calculate_probabilities=False,
    )
    topics, _ = model.fit_transform(docs, embeddings=np.asarray(embeddings)[keep], y=dense)
    names: dict[int, ClusterName] = {}
    for position, cluster in enumerate(clusters):
        # BERTopic renumbers topics by size: find where this cluster's documents went.
        topic = Counter(t for t, d in zip(topics, dense, strict=True) if d == position)
        words = [(w, float(s)) for w, s in (model.get_topic(topic.most_common(1)[0][0]) or [])]
        words = [(w, s) for w, s in words if w and s > 0]
        names[cluster] = ClusterName(
            name=" ".join(w for w, _ in words[:name_words]) or f"cluster {cluster}",
            keywords=words,
        )
    return names


def _vectorizer(docs: list[str], stop_words: str | None, cls: type) -> object:
    """A CountVectorizer that keeps stop words when a corpus has nothing else."""
    vectorizer = cls(stop_words=stop_words)
    try:
        vectorizer.fit(docs)
    except ValueError:
        vectorizer = cls()
        try:
            vectorizer.fit(docs)
        except ValueError as exc:
            raise AugtoolError(f"cannot name clusters: the texts have no words ({exc})") from exc
    return cls(stop_words=vectorizer.stop_words, token_pattern=vectorizer.token_pattern)
