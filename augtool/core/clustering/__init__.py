"""Clustering, 2D projection, cluster scores and topic naming (TopEx's Explorer).

Every function takes precomputed arrays (outputs, embeddings, cluster assignments), so
each step can be tested and reused without a classifier or an encoder, as in BERTopic.
"""

from augtool.core.clustering.clusterers import CLUSTERERS, cluster_points
from augtool.core.clustering.geometry import (
    geometric_median,
    max_diameter,
    max_extent,
    mean_distance_to,
    mean_outside_distance,
    outside_distance_sum,
)
from augtool.core.clustering.normalise import minmax_normalise
from augtool.core.clustering.projection import PROJECTIONS, project_2d

__all__ = [
    "CLUSTERERS",
    "PROJECTIONS",
    "cluster_points",
    "geometric_median",
    "max_diameter",
    "max_extent",
    "mean_distance_to",
    "mean_outside_distance",
    "minmax_normalise",
    "outside_distance_sum",
    "project_2d",
]
