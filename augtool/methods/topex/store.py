"""The explore folder: what ``topex explore`` writes and ``score``/``augment`` read.

::

    clusters.json   labels, clusterer settings, every cluster (members, error rate,
                    centroid, name, keywords, measures, scores) and the chosen cluster
    scores.json     the ranking by the last scoring method and variants, the chosen cluster
    points.jsonl    one row per point: id, text, label, pred, correct, cluster, x, y
    space.npy       the normalised output space (rows in points.jsonl order)
    plot.html/.png  with --plot
    compare.json    with --compare
    meta.json       provenance
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from augtool.core.clustering.scores import (
    MEASURES,
    Choice,
    choose_cluster,
    rank_clusters,
    scores_from,
    with_weighted,
)
from augtool.data.records import Record
from augtool.data.writer import atomic_write_text, write_json
from augtool.errors import AugtoolError
from augtool.methods.topex.config import ScoreConfig
from augtool.methods.topex.explore import Cluster, Exploration

CLUSTERS_FILE = "clusters.json"
SCORES_FILE = "scores.json"
POINTS_FILE = "points.jsonl"
SPACE_FILE = "space.npy"
#: 2: clusters carry their ``measures`` and scores follow the paper's equations (1: the
#: earlier scores, which ``score`` cannot recompute).
FORMAT_VERSION = 2


def choice_dict(choice: Choice | None, exploration_clusters: list[dict[str, Any]]) -> Any:
    if choice is None:
        return None
    named = next((c for c in exploration_clusters if c["id"] == choice.cluster), {})
    return {
        "cluster": choice.cluster,
        "name": named.get("name", ""),
        "method": choice.method,
        "value": round(choice.value, 6),
        "reason": choice.reason,
    }


def _round(value: float) -> float:
    """Six significant digits past the point for small values, never rounding a large
    sum or density to nothing (scores are not bounded by 1)."""
    return float(f"{value:.10g}") if abs(value) >= 1000 else round(value, 6)


def _cluster_dict(cluster: Cluster, ids: list[str], correct: np.ndarray) -> dict[str, Any]:
    return {
        "id": cluster.id,
        "size": cluster.size,
        "error_rate": round(cluster.error_rate, 6),
        "mistaken": cluster.mistaken,
        "majority_label": cluster.majority_label,
        "majority_pred": cluster.majority_pred,
        "name": cluster.name,
        "keywords": [[word, round(weight, 6)] for word, weight in cluster.keywords],
        "centroid": cluster.centroid,
        "measures": {key: _round(value) for key, value in cluster.measures.items()},
        "scores": {key: _round(value) for key, value in cluster.scores.items()},
        "members": [ids[i] for i in cluster.members],
        "wrong_members": [ids[i] for i in cluster.members if not correct[i]],
    }


def save_exploration(
    folder: str | Path,
    exploration: Exploration,
    records: list[Record],
    *,
    settings: dict[str, Any],
    score_config: ScoreConfig,
) -> dict[str, Any]:
    """Write clusters.json, scores.json, points.jsonl and space.npy into ``folder``."""
    folder = Path(folder)
    ids = [r.id for r in records]
    correct = exploration.correct
    clusters = [_cluster_dict(c, ids, correct) for c in exploration.clusters]
    summary = {
        "format": FORMAT_VERSION,
        "labels": exploration.labels,
        "points": len(records),
        "wrong": int((~correct).sum()),
        "accuracy": round(float(correct.mean()), 6) if len(records) else 0.0,
        "noise": int((exploration.cluster_ids == -1).sum()),
        "settings": settings,
        "timings": exploration.timings,
        "clusters": clusters,
        "chosen": choice_dict(exploration.choice, clusters),
    }
    write_json(folder / CLUSTERS_FILE, summary)
    np.save(folder / SPACE_FILE, exploration.space.astype(np.float32))
    lines = []
    for i, record in enumerate(records):
        row: dict[str, Any] = {"id": record.id, "text": record.text}
        if record.text_pair is not None:
            row["text_pair"] = record.text_pair
        row.update(
            label=exploration.labels[int(exploration.gold[i])],
            pred=exploration.labels[int(exploration.pred[i])],
            correct=bool(correct[i]),
            cluster=int(exploration.cluster_ids[i]),
            x=round(float(exploration.coords[i, 0]), 6),
            y=round(float(exploration.coords[i, 1]), 6),
        )
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    atomic_write_text(folder / POINTS_FILE, "".join(lines))
    write_scores(folder, summary, score_config)
    return summary


@dataclass
class SavedExploration:
    """An explore folder read back."""

    folder: Path
    summary: dict[str, Any]
    points: list[dict[str, Any]]

    @property
    def clusters(self) -> list[dict[str, Any]]:
        return self.summary["clusters"]

    def mistaken(self) -> list[dict[str, Any]]:
        return [c for c in self.clusters if c["mistaken"]]

    def cluster(self, cluster_id: int) -> dict[str, Any] | None:
        return next((c for c in self.clusters if c["id"] == cluster_id), None)

    def chosen_id(self) -> int | None:
        """The cluster chosen by the last ``score`` (or by explore)."""
        path = self.folder / SCORES_FILE
        chosen = self.summary.get("chosen")
        if path.is_file():
            chosen = json.loads(path.read_text(encoding="utf-8")).get("chosen")
        return None if chosen is None else int(chosen["cluster"])


def load_exploration(folder: str | Path, *, option: str = "folder") -> SavedExploration:
    """Read an explore folder, with a clear error when it is not one."""
    folder = Path(folder)
    path = folder / CLUSTERS_FILE
    if not path.is_file():
        raise AugtoolError(
            f"{folder}: not a topex explore folder (no {CLUSTERS_FILE}; "
            "make one with `augtool topex explore`)"
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        points = [
            json.loads(line)
            for line in (folder / POINTS_FILE).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    except (OSError, ValueError) as exc:
        raise AugtoolError(f"{folder}: unreadable explore folder ({exc})") from exc
    if summary.get("format", 0) > FORMAT_VERSION:
        raise AugtoolError(f"{path}: written by a newer augtool; please upgrade")
    return SavedExploration(folder, summary, points)


def rescore(
    saved: SavedExploration, config: ScoreConfig
) -> tuple[dict[int, dict[str, float]], Choice | None]:
    """Every score of the clusters of mistakes and the choice under ``config`` (its
    variants and weights), from the measures explore stored."""
    mistaken = saved.mistaken()
    if mistaken and not all(set(MEASURES) <= set(c.get("measures", {})) for c in mistaken):
        raise AugtoolError(
            f"{saved.folder}: explored by an earlier augtool (format "
            f"{saved.summary.get('format', 0)}) whose scores were not the paper's equations; "
            "run `augtool topex explore` again to rescore it"
        )
    variants = config.variants()
    raw = {c["id"]: scores_from(c["measures"], variants) for c in mistaken}
    scores = with_weighted(raw, config.weights(), variants.normalise)
    return scores, choose_cluster(scores, config.method, config.weights(), variants)


def write_scores(folder: Path, summary: dict[str, Any], config: ScoreConfig) -> dict[str, Any]:
    """scores.json: the table, the ranking and the chosen cluster under ``config``."""
    saved = SavedExploration(folder, summary, [])
    scores, choice = rescore(saved, config)
    variants = config.variants()
    ranking = rank_clusters(scores, config.method, variants) if scores else []
    result = {
        "method": config.method,
        "weights": dict(config.weights().items()),
        "variants": variants.describe(),
        "lower_is_better": variants.lower_is_better(config.method),
        "ranking": ranking,
        "clusters": {
            str(cid): {
                "name": saved.cluster(cid)["name"],  # type: ignore[index]
                "size": saved.cluster(cid)["size"],  # type: ignore[index]
                **{k: _round(v) for k, v in scores[cid].items()},
            }
            for cid in ranking
        },
        "chosen": choice_dict(choice, summary["clusters"]),
    }
    write_json(folder / SCORES_FILE, result)
    return result
