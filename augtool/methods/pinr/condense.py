"""Condensing a dataset to M rows: PInR and the paper's baselines.

- ``pinr``: per label (class-wise, the default) fit a Gaussian mixture to the sentence
  embeddings, move M_c particles by SVGD under its score, decode each particle with the
  embedding-to-text decoder, then refine the decoded text with an LLM (Algorithm 1).
- ``dallme``: the M_c k-means centres of each label, decoded (and refined) the same way.
- ``random``: a uniform random subset of M_c rows per label.
- ``mgd3``: MGD³-style mode-guided selection: the M_c k-means modes of each label, and for
  each mode the real row nearest its centre (selection instead of MGD³'s diffusion
  guidance, which has no counterpart for text).
- ``aug-pe``: Aug-PE's private evolution of LLM samples (see :mod:`.augpe`).

Rows are written as each chunk of particles finishes, so an interrupted run resumes with
the missing rows only (particles are seeded, LLM replies and embeddings cached). Q&A
rows travel as ``question [SEP] answer`` and are split back into their fields here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from augtool.core.progress import SILENT, Reporter
from augtool.data.provenance import make_aug
from augtool.data.records import Record
from augtool.methods.pinr.allocate import allocate
from augtool.methods.pinr.config import CondenseConfig
from augtool.methods.pinr.qa import QAFields, split_qa

#: Particles decoded and refined per written chunk.
CHUNK = 64


@dataclass
class Target:
    """One condensed row to make: an embedding-space point and its label."""

    key: str
    label: str | None
    vector: np.ndarray


def _slug(label: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", label or "all").strip("-") or "label"


def groups(records: list[Record], config: CondenseConfig) -> dict[str | None, list[int]]:
    """Row indices per label (one group of everything without class-wise mode)."""
    if not config.class_wise:
        return {None: list(range(len(records)))}
    out: dict[str | None, list[int]] = {}
    for i, record in enumerate(records):
        out.setdefault(record.label, []).append(i)
    return out


def plan(records: list[Record], config: CondenseConfig) -> dict[str | None, int]:
    """How many rows each group gets (checks M against N and the number of labels)."""
    found = groups(records, config)
    counts = {("" if k is None else k): len(v) for k, v in found.items()}
    shares = allocate(counts, config.m, even=config.even)
    return {(None if k == "" and None in found else k): v for k, v in shares.items()}


def particle_targets(
    records: list[Record],
    embeddings: np.ndarray,
    config: CondenseConfig,
    reporter: Reporter = SILENT,
) -> tuple[list[Target], dict[str, Any]]:
    """SVGD particles (pinr) or k-means centres (dallme) for every group."""
    import torch

    from augtool.core.particles import fit_gmm, init_particles, svgd

    shares = plan(records, config)
    targets: list[Target] = []
    info: dict[str, Any] = {}
    for label, indices in groups(records, config).items():
        m = shares[label]
        points = embeddings[indices]
        name = label if label is not None else "all"
        if config.method == "dallme":
            vectors = kmeans_centres(points, m, config.seed)
            info[name] = {"rows": len(indices), "m": m}
        else:
            reporter.log(f"{name}: {len(indices)} rows -> {m} particles")
            score = fit_gmm(
                points,
                config.components,
                covariance=config.covariance,
                seed=config.seed,
                reporter=reporter,
            )
            if config.init == "noise":  # privacy: start from the mixture, not from rows
                start = score.sample(m, seed=config.seed)
            else:
                start = init_particles(points, m, mode="real", seed=config.seed)
            result = svgd(
                start,
                score.score,
                iterations=config.iterations,
                step_size=config.step_size,
                optimizer=config.svgd_optimizer,
                reporter=reporter,
            )
            vectors = result.particles.detach().cpu().to(torch.float32).numpy()
            info[name] = {
                "rows": len(indices),
                "m": m,
                "gmm": score.describe(),
                "svgd_iterations": result.iterations_run,
                "svgd_history": result.history,
            }
        targets.extend(
            Target(f"{config.method}-{_slug(label)}-{i}", label, vector)
            for i, vector in enumerate(vectors)
        )
    return targets, info


def kmeans_centres(points: np.ndarray, m: int, seed: int) -> np.ndarray:
    """DaLLME's targets: the centres of k-means with k = m."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=m, n_init=4, random_state=seed).fit(points).cluster_centers_


def random_rows(records: list[Record], config: CondenseConfig) -> list[Record]:
    """The ``random`` baseline: a seeded uniform subset of each group."""
    rng = np.random.default_rng(config.seed)
    shares = plan(records, config)
    rows = []
    for label, indices in groups(records, config).items():
        picked = sorted(rng.choice(indices, size=shares[label], replace=False).tolist())
        for i in picked:
            original = records[i]
            rows.append(
                Record(
                    id=original.id,
                    text=original.text,
                    text_pair=original.text_pair,
                    label=original.label,
                    aug=make_aug("random-subset", [original.id], seed=config.seed),
                    extra=dict(original.extra),
                )
            )
    return rows


def mode_rows(
    records: list[Record], embeddings: np.ndarray, config: CondenseConfig
) -> list[Record]:
    """The ``mgd3`` baseline: per group, k-means modes (k = M_c), then for each mode the
    nearest real row (by cosine) not already taken by another mode."""
    from sklearn.cluster import KMeans

    shares = plan(records, config)
    rows = []
    for label, indices in groups(records, config).items():
        m = shares[label]
        points = embeddings[indices]
        fitted = KMeans(n_clusters=m, n_init=4, random_state=config.seed).fit(points)
        sizes = np.bincount(fitted.labels_, minlength=m)
        unit = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
        taken: set[int] = set()
        for mode in np.argsort(-sizes, kind="stable"):  # big modes choose first
            centre = fitted.cluster_centers_[mode]
            cosines = unit @ (centre / max(float(np.linalg.norm(centre)), 1e-12))
            for position in np.argsort(-cosines, kind="stable"):
                if int(position) not in taken:
                    taken.add(int(position))
                    break
            original = records[indices[int(position)]]
            rows.append(
                Record(
                    id=original.id,
                    text=original.text,
                    text_pair=original.text_pair,
                    label=original.label,
                    aug=make_aug(
                        "mgd3-mode-selection",
                        [original.id],
                        seed=config.seed,
                        mode=int(mode),
                        mode_size=int(sizes[mode]),
                        cosine_to_mode=round(float(cosines[position]), 6),
                    ),
                    extra=dict(original.extra),
                )
            )
    return rows


def chunks(targets: list[Target], size: int = CHUNK) -> Iterator[list[Target]]:
    for start in range(0, len(targets), size):
        yield targets[start : start + size]


def output_record(
    key: str,
    text: str,
    label: str | None,
    aug: dict[str, Any],
    qa: QAFields | None,
) -> Record:
    """An output row: ``text``, or for Q&A the question and answer split at ``[SEP]``
    (``aug["sep_found"]`` says whether the text had one; without it the answer is empty)."""
    if qa is None:
        return Record(id=key, text=text, label=label, aug=aug)
    question, answer, found = split_qa(text)
    aug["sep_found"] = found
    return Record(id=key, text=question, label=label, aug=aug, extra={qa.answer: answer})


def condensed_row(
    target: Target, refined: Any, config: CondenseConfig, qa: QAFields | None = None
) -> Record:
    """The output row of one particle, with its provenance (Algorithm 1's rounds,
    requests and cosines when refined)."""
    details: dict[str, Any] = {
        "particle": target.key,
        "cosine": round(refined.cosine, 6),
        "decoded": refined.decoded,
        "decoded_cosine": round(refined.decoded_cosine, 6),
        "refined": config.refining,
    }
    if config.refining:
        details.update(
            llm=config.refine_llm,
            prompt=config.dataset_prompt if not config.prompt_file else config.prompt_file,
            L=config.variants,
            K=config.keep,
            T=config.rounds,
            requests=refined.requests,
            failed_requests=refined.failures,
            rounds=refined.rounds,
        )
        if refined.attempt:
            details["attempt"] = refined.attempt
    aug = make_aug(config.method, [], seed=config.seed, **details)
    return output_record(target.key, refined.text, target.label, aug, qa)


def failure_row(target: Target, refined: Any) -> dict[str, Any]:
    """A ``<out>.failed.jsonl`` line for a particle that got no usable variant."""
    return {
        "id": target.key,
        "label": target.label,
        "error": refined.error or "no usable variant",
        "attempt": refined.attempt,
        "decoded": refined.decoded,
        "rounds": refined.rounds,
    }


def decode_and_refine(
    targets: list[Target],
    decode: Callable[[np.ndarray], list[str]],
    refine_chunk: Callable[[list[Target], list[str]], list[Any]],
    write: Callable[[list[Record]], None],
    config: CondenseConfig,
    *,
    skip: set[str],
    qa: QAFields | None = None,
    reporter: Reporter = SILENT,
) -> tuple[int, list[dict[str, Any]]]:
    """Decode, refine and write the targets not in ``skip``, a chunk at a time; returns
    how many rows were written and the particles that failed (not written)."""
    todo = [t for t in targets if t.key not in skip]
    advance = reporter.task("condensing", len(targets), completed=len(targets) - len(todo))
    written = 0
    failed: list[dict[str, Any]] = []
    for part in chunks(todo):
        texts = decode(np.stack([t.vector for t in part]))
        results = refine_chunk(part, texts)
        rows = []
        for target, result in zip(part, results, strict=True):
            if result.failed:
                failed.append(failure_row(target, result))
            else:
                rows.append(condensed_row(target, result, config, qa))
        write(rows)
        written += len(rows)
        advance(len(part))
    return written, failed


def augpe_rows(
    records: list[Record],
    embeddings: np.ndarray,
    config: CondenseConfig,
    *,
    llm: Any,
    encoder: Any,
    label_texts: dict[str | None, str | None],
    descriptions: dict[str | None, str],
    write: Callable[[list[Record]], None],
    skip: set[str],
    qa: QAFields | None = None,
    budget: Any = None,
    reporter: Reporter = SILENT,
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Aug-PE label by label (each label's rows are written when it finishes); the real
    rows only vote, through their ``embeddings``. Returns the rows written, the labels
    that failed and per-label details for the meta."""
    from augtool.methods.pinr.augpe import GroupFailed, PESettings, evolve

    settings = PESettings(
        iterations=config.pe_iterations,
        variations=config.pe_variations,
        variation=config.pe_variation,
        mask_prob=config.pe_mask_prob,
        topic=config.pe_topic,
        noise_multiplier=config.noise_multiplier,
        threshold=config.pe_threshold,
        seed=config.seed,
    )
    shares = plan(records, config)
    written = 0
    failed: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for label, indices in groups(records, config).items():
        m = shares[label]
        keys = [f"aug-pe-{_slug(label)}-{i}" for i in range(m)]
        name = label if label is not None else "all"
        if all(key in skip for key in keys):
            continue
        try:
            result = evolve(
                name,
                embeddings[indices],
                m,
                label_text=label_texts.get(label),
                description=descriptions.get(label, ""),
                llm=llm,
                encoder=encoder,
                params=config.params(),
                settings=settings,
                qa=qa is not None,
                budget=budget,
                reporter=reporter,
            )
        except GroupFailed as exc:
            failed.append({"id": name, "label": label, "error": str(exc)})
            continue
        info[name] = {
            "rows": len(indices),
            "m": m,
            "requests": result.requests,
            "failed_requests": result.failures,
            "history": result.history,
        }
        rows = []
        for key, chosen in zip(keys, result.selected, strict=True):
            if key in skip:
                continue
            aug = make_aug(
                "aug-pe",
                [],
                seed=config.seed,
                llm=config.refine_llm,
                votes=chosen.votes,
                noisy_votes=round(chosen.noisy_votes, 4) if config.noise_multiplier else None,
                voters=len(indices),
                origin=chosen.sample.origin,
                born=chosen.sample.born,
                iterations=config.pe_iterations,
                variation=config.pe_variation,
                variations=config.pe_variations,
                noise_multiplier=config.noise_multiplier,
            )
            rows.append(output_record(key, chosen.sample.text, label, aug, qa))
        write(rows)
        written += len(rows)
    return written, failed, info
