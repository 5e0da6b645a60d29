"""TopEx inside ``augtool bench``: find the cell's clusters of mistakes without extra
labels, then augment the chosen one.

A K-shot sample is all the labelled data a cell may use, and a model fits its own
training rows, so the Explorer runs on out-of-fold outputs: a logistic-regression probe
on the frozen sentence embeddings, trained on the other folds, scores each held-out row
(stratified k-fold). The rest is TopEx as on the command line: normalise, cluster, keep
clusters of mistakes, name, score, choose, and prompt the LLM with the chosen cluster.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from augtool.core.config import check
from augtool.core.hub import DEFAULT_ENCODER, ENCODER_HELP
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import Record
from augtool.methods.topex.config import CLUSTERERS, AugmentConfig

#: Where the samples come from: the chosen cluster, or random rows (the undirected peer).
DIRECTIONS = ("cluster", "random")


@dataclass
class TopexBenchOptions(AugmentConfig):
    """The options of the ``topex`` bench method (``methods: {topex: {...}}``)."""

    n: int = field(
        default=0, metadata={"help": "Samples to generate (0: per_original x cluster size)."}
    )
    encoder: str = field(default=DEFAULT_ENCODER, metadata={"help": ENCODER_HELP})
    folds: int = field(default=5, metadata={"help": "Folds of the out-of-fold probe."})
    clusterer: str = field(default="optics", metadata={"help": "optics or hdbscan."})
    min_samples: int = field(default=3, metadata={"help": "Clusterer neighbourhood size."})
    error_threshold: float = field(
        default=0.5, metadata={"help": "Clusters of mistakes have an error rate above this."}
    )
    method: str = field(default="weighted", metadata={"help": "Score that picks the cluster."})
    per_member: int = field(
        default=0,
        metadata={
            "help": "Samples per member of the chosen cluster (the paper's +1/3/5/10; "
            "0: the bench's per_original). Ignored when n is set."
        },
    )
    direction: str = field(
        default="cluster",
        metadata={
            "help": "cluster (TopEx: the chosen cluster's members) or random (the same "
            "number of samples by the same --generator from random rows of the sample: "
            "the undirected peer; not with the LLM generator)."
        },
    )

    def __post_init__(self) -> None:
        n, self.n = self.n, max(1, self.n)  # the shared checks want n >= 1
        super().__post_init__()
        self.n = n
        check(n >= 0, "n", "must be >= 0 (0: per_original x cluster size)")
        check(self.folds >= 2, "folds", "must be at least 2")
        check(self.clusterer in CLUSTERERS, "clusterer", f"one of {', '.join(CLUSTERERS)}")
        check(self.min_samples >= 2, "min_samples", "must be at least 2")
        check(self.per_member >= 0, "per_member", "must be >= 0")
        check(self.direction in DIRECTIONS, "direction", f"one of {', '.join(DIRECTIONS)}")
        check(
            self.direction == "cluster" or not self.generator_spec().uses_llm,
            "direction",
            "random needs a local --generator (eda, bt, invmix:DIR); llm-gen is the LLM's "
            "undirected peer",
        )


def out_of_fold_logits(
    embeddings: np.ndarray, gold: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    """Each row's logits from a probe trained without it (stratified when possible)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold

    classes = int(gold.max()) + 1
    smallest = np.bincount(gold, minlength=classes).min()
    splits = max(2, min(folds, len(gold)))
    splitter = (
        StratifiedKFold(min(splits, smallest), shuffle=True, random_state=seed)
        if smallest >= 2
        else KFold(splits, shuffle=True, random_state=seed)
    )
    logits = np.zeros((len(gold), classes))
    for train, held in splitter.split(embeddings, gold):
        probe = LogisticRegression(max_iter=2000)
        probe.fit(embeddings[train], gold[train])
        scores = probe.decision_function(embeddings[held])
        if scores.ndim == 1:  # binary: one margin for the second class
            scores = np.stack([-scores, scores], axis=1) / 2
        full = np.full((len(held), classes), scores.min() - 1.0)
        full[:, probe.classes_] = scores
        logits[held] = full
    return logits


def augment_with_topex(
    sample: list[Record],
    options: TopexBenchOptions,
    per_original: int,
    reporter: Reporter = SILENT,
) -> list[Record]:
    """Explore ``sample`` out of fold, then generate for the chosen cluster."""
    from augtool.core.encoders import load_encoder
    from augtool.core.generation import load_llm
    from augtool.data import RecordSpec, labels_of, read_records
    from augtool.data.writer import JsonlWriter
    from augtool.methods.topex.augment import pick_target, run_augment
    from augtool.methods.topex.config import ExploreConfig
    from augtool.methods.topex.explore import explore
    from augtool.methods.topex.store import load_exploration, save_exploration

    labels = labels_of(sample)
    gold = np.array([labels.index(r.label) for r in sample])
    encoder = load_encoder(options.encoder, device=options.device)
    texts = [r.text or "" for r in sample]
    embeddings = encoder.encode(texts)
    logits = out_of_fold_logits(embeddings, gold, options.folds, options.seed)
    config = ExploreConfig(
        clusterer=options.clusterer,
        min_samples=min(options.min_samples, len(sample)),
        error_threshold=options.error_threshold,
        method=options.method,
        projection="pca",
        seed=options.seed,
    )
    result = explore(
        logits,
        gold,
        texts,
        embeddings,
        labels,
        config,
        embed_tokens=getattr(encoder, "token_embeddings", None),
        reporter=reporter,
    )
    if result.choice is None:
        reporter.log("topex: no cluster of mistakes in this sample; no rows added")
        return []
    chosen = result.cluster(result.choice.cluster)
    assert chosen is not None
    n = options.n or (options.per_member or per_original) * chosen.size
    augment = TopexBenchOptions(**{**options.__dict__, "n": n})
    spec = augment.generator_spec()
    if options.direction == "random":
        from augtool.methods.topex.generators import undirected_samples

        made = undirected_samples(sample, n, augment, spec)
        reporter.log(
            f"topex: {len(made.rows)} undirected {spec.method} rows (as many as cluster "
            f"{chosen.id}, {chosen.size} rows, would get)"
        )
        return made.rows
    with tempfile.TemporaryDirectory(prefix="augtool-topex-") as scratch:
        folder = Path(scratch) / "explore"
        folder.mkdir()
        save_exploration(folder, result, sample, settings={}, score_config=config)
        saved = load_exploration(folder)
        target = pick_target(saved, augment)
        reporter.log(
            f"topex: cluster {chosen.id} ({chosen.name!r}, {chosen.size} rows) -> label "
            f"{target.label}, {n} {spec.method} samples"
        )
        if not spec.uses_llm:
            from augtool.methods.topex.generators import local_samples

            return local_samples(saved, target, augment, spec, warn=reporter.log).rows
        llm = load_llm(augment.llm, **augment.backend_options())
        out = Path(scratch) / "topex.jsonl"
        try:
            llm.check()
            with JsonlWriter(out, run_key="bench") as writer:
                run_augment(saved, target, llm, augment, writer, reporter=reporter)
                writer.commit()
        finally:
            llm.close()
        return read_records(out, RecordSpec()) if out.stat().st_size else []
