"""TopEx explore on 5,000 and 20,000 points (precomputed logits and embeddings).

Targets (issue #7): with HDBSCAN, explore time grows at most about linearly,
t(20k) / t(5k) <= 5; OPTICS (the paper's default) is measured beside it. Naming uses
only the texts of the clusters of mistakes, and BERTopic is fitted once per explore
(counted here by wrapping ``BERTopic.fit_transform``).

Points: WikiText/WikiQA sentences from ../shared/data/unlabeled with synthetic outputs
of a 6-class classifier (gold one-hot plus noise) and planted confusions: 8 groups of
sentences sharing a keyword are mispredicted as one other class.

    python benchmarks/topex_explore.py [--sizes 5000 20000] [--optics-sizes 5000 20000]
        [--max-outside N] [--ctc-texts N]

By default the scores are computed as the paper prints them (every inside x outside pair
for the pairwise distance, every member text for CTC); ``--max-outside 5000
--ctc-texts 64`` measures the capped configuration the figures in docs/topex.md were
first taken with.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _common import dataset, offline, save_result, texts_of

KEYWORDS = ("film", "album", "river", "church", "species", "election", "team", "war")


def synthetic(texts: list[str], size: int, seed: int = 0):
    """Texts, gold ids and logits with planted confusions (keyword -> wrong class)."""
    rng = np.random.default_rng(seed)
    picked = [texts[i] for i in rng.choice(len(texts), size=size, replace=False)]
    classes = 6
    gold = rng.integers(0, classes, size=size)
    logits = np.eye(classes)[gold] * 3 + rng.normal(0, 0.7, (size, classes))
    for k, word in enumerate(KEYWORDS):
        wrong = (k % (classes - 1)) + 1
        for i, text in enumerate(picked):
            if f" {word} " in f" {text.lower()} ":
                gold[i] = k % classes
                logits[i] = np.eye(classes)[(gold[i] + wrong) % classes] * 3 + rng.normal(
                    0, 0.3, classes
                )
    return picked, gold, logits


def run(texts, gold, logits, embeddings, clusterer: str, embed_tokens, counter, caps) -> dict:
    from augtool.methods.topex.config import ExploreConfig
    from augtool.methods.topex.explore import explore

    config = ExploreConfig(clusterer=clusterer, min_samples=10, projection="pca", **caps)
    labels = [f"c{i}" for i in range(logits.shape[1])]
    counter["fits"] = 0
    counter["docs"] = 0
    start = time.perf_counter()
    result = explore(logits, gold, texts, embeddings, labels, config, embed_tokens=embed_tokens)
    seconds = time.perf_counter() - start
    mistaken = result.mistaken()
    return {
        "seconds": seconds,
        "stages": result.timings,
        "clusters": len(result.clusters),
        "mistaken": len(mistaken),
        "mistaken_points": sum(c.size for c in mistaken),
        "bertopic_fits": counter["fits"],
        "named_docs": counter["docs"],
        "chosen": result.cluster(result.choice.cluster).name if result.choice else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--optics-sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--max-outside", type=int, default=None, help="pairwise sample cap")
    parser.add_argument("--ctc-texts", type=int, default=None, help="CTC texts per cluster")
    parser.add_argument(
        "--save",
        default="topex_explore",
        help="Write the figures to benchmarks/results/<SAVE>.json ('' to only print).",
    )
    args = parser.parse_args()
    caps = {"max_outside": args.max_outside, "ctc_texts": args.ctc_texts}
    offline()
    os.environ["AUGTOOL_CACHE_DIR"] = tempfile.mkdtemp(prefix="augtool-topex-bench-")
    from bertopic import BERTopic

    from augtool.core.encoders import load_encoder

    counter = {"fits": 0, "docs": 0}
    original = BERTopic.fit_transform

    def counting(self, documents, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        counter["fits"] += 1
        counter["docs"] += len(documents)
        return original(self, documents, *a, **kw)

    BERTopic.fit_transform = counting  # type: ignore[method-assign]
    corpus = texts_of(dataset("unlabeled", "wiki_sentences.jsonl"))
    encoder = load_encoder()  # the embedded all-MiniLM-L6-v2, for CTC token embeddings
    encoder.load()
    results = {}
    for clusterer, sizes in (("hdbscan", args.sizes), ("optics", args.optics_sizes)):
        for size in sizes:
            texts, gold, logits = synthetic(corpus, size)
            embeddings = np.random.default_rng(1).normal(size=(size, 32)).astype(np.float32)
            row = run(
                texts, gold, logits, embeddings, clusterer, encoder.token_embeddings, counter, caps
            )
            results[(clusterer, size)] = row
            wrong = int((logits.argmax(1) != gold).sum())
            print(
                f"{clusterer:8s} n={size:6d}  {row['seconds']:7.2f} s  "
                f"({', '.join(f'{k} {v:.2f}' for k, v in row['stages'].items())})  "
                f"{row['clusters']} clusters, {row['mistaken']} of mistakes "
                f"({row['mistaken_points']} points; {wrong} wrong in all)  "
                f"BERTopic fits {row['bertopic_fits']} on {row['named_docs']} docs  "
                f"chosen: {row['chosen']!r}"
            )
    ratios = {}
    for clusterer, sizes in (("hdbscan", args.sizes), ("optics", args.optics_sizes)):
        if len(sizes) >= 2:
            small, large = results[(clusterer, sizes[0])], results[(clusterer, sizes[-1])]
            ratio = large["seconds"] / small["seconds"]
            scale = sizes[-1] / sizes[0]
            ratios[clusterer] = ratio
            print(
                f"{clusterer}: t({sizes[-1]}) / t({sizes[0]}) = {ratio:.2f} "
                f"(size ratio {scale:.0f}; target <= 5 for hdbscan)"
            )

    if args.save:
        figures = {
            "runs": [
                {"clusterer": clusterer, "points": size, **row}
                for (clusterer, size), row in results.items()
            ],
            "ratio_largest_over_smallest": ratios,
            "target_ratio_hdbscan": 5,
        }
        save_result(args.save, figures, {**caps, "min_samples": 10, "projection": "pca"})


if __name__ == "__main__":
    main()
