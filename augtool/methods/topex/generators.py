"""Directed augmentation without an LLM: new samples for the chosen cluster of mistakes
made from the cluster's own members by EDA, back-translation or invmix.

TopEx (§2.4) prompts an LLM with the cluster's name; offline, the direction can come from
the members instead: ``--generator eda`` / ``bt`` / ``invmix:MODEL_DIR`` applies that
method to the members that carry the target label, so the new samples stay in the
cluster's region of the task model's space. ``--n`` samples are spread over those members
in turn (member i makes samples i, i + m, i + 2m, ...), so ``--n`` = k x members gives
the "+k per member" of the paper's Tables 1-2. Each sample gets the target label and an
``aug`` field naming its method and parents; copies of the data or of another sample are
dropped (and counted), as in the LLM path.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from augtool.core.generation.jobs import derive_seed
from augtool.data.provenance import make_aug
from augtool.data.records import Record
from augtool.errors import AugtoolError, OptionError
from augtool.methods.topex.augment import Target, _joined, normalise
from augtool.methods.topex.config import AugmentConfig, GeneratorSpec
from augtool.methods.topex.store import SavedExploration

#: invmix's mixing coefficient lambda ~ Beta(alpha, alpha) (the paper's alpha).
INVMIX_ALPHA = 0.4


@dataclass
class LocalResult:
    """Rows made, and how many candidates were dropped as copies."""

    rows: list[Record]
    duplicates: int = 0


def members_with_label(target: Target) -> list[Record]:
    """The cluster's members that carry the target label, as records."""
    rows = [p for p in target.pool if p["label"] == target.label]
    if not rows:
        raise AugtoolError(
            f"cluster {target.cluster['id']} has no member labelled {target.label!r}: a "
            "generator that rewrites members needs some (use --generator llm, or choose "
            "another --target-label)"
        )
    return [Record(id=str(p["id"]), text=str(p.get("text") or ""), label=p["label"]) for p in rows]


def shares(n: int, members: int) -> list[int]:
    """How many of ``n`` samples each of ``members`` members makes (in turn)."""
    return [n // members + (1 if index < n % members else 0) for index in range(members)]


def _eda(members: list[Record], counts: list[int], config: AugmentConfig) -> list[Record]:
    from augtool.core.wordnet import WordNetSynonyms
    from augtool.methods.eda import EDAConfig, augment_record, vocabulary

    synonyms = WordNetSynonyms()
    synonyms.prefetch(vocabulary(members))
    rows: list[Record] = []
    for member, count in zip(members, counts, strict=True):
        if count:
            eda = EDAConfig(n_aug=count, seed=config.seed)
            rows.extend(augment_record(member, eda, synonyms.synonyms))
    return rows


def _bt(
    members: list[Record], counts: list[int], config: AugmentConfig, engine_name: str | None
) -> list[Record]:
    from augtool.methods.backtranslation import BTConfig, bt_rows, build_engine

    engine_name = engine_name or "apertium"
    most = max(counts)
    sample = engine_name == "marian" and most > 1
    bt_config = BTConfig(
        engine=engine_name,
        n=most if sample else 1,
        sample=sample,
        seed=config.seed,
        device=config.device,
    )
    engine = build_engine(bt_config)
    try:
        made = bt_rows([m for m, c in zip(members, counts, strict=True) if c], bt_config, engine)
    finally:
        close = getattr(engine, "close", None)
        if callable(close):
            close()
    wanted = {m.id: c for m, c in zip(members, counts, strict=True)}
    rows, per_parent = [], dict.fromkeys(wanted, 0)
    for row, _identical in made:
        parent = row.aug["parents"][0]
        if per_parent[parent] < wanted[parent]:
            per_parent[parent] += 1
            rows.append(row)
    return rows


def _invmix(
    members: list[Record], counts: list[int], config: AugmentConfig, folder: str, cluster: int
) -> list[Record]:
    import numpy as np

    from augtool.core.inversion.model import InversionModel

    if not Path(folder).is_dir():
        raise OptionError("generator", f"invmix model folder {folder!r} does not exist")
    model = InversionModel.load(folder, device=config.device)
    embeddings = model.embed([m.text or "" for m in members])
    plan = []
    for index, member in enumerate(members):
        others = [j for j in range(len(members)) if j != index] or [index]
        for variant in range(counts[index]):
            seed = derive_seed(config.seed, "topex-invmix", cluster, member.id, variant)
            rng = random.Random(seed)
            partner = rng.choice(others)
            lam = rng.betavariate(INVMIX_ALPHA, INVMIX_ALPHA)
            plan.append((index, partner, lam, seed, variant))
    mixed = np.stack([lam * embeddings[a] + (1 - lam) * embeddings[b] for a, b, lam, _, _ in plan])
    texts = model.invert(mixed, max_new_tokens=min(config.max_new_tokens, 64))
    rows = []
    for (a, b, lam, seed, variant), text in zip(plan, texts, strict=True):
        first, second = members[a], members[b]
        aug = make_aug("invmix", [first.id, second.id], seed=seed, lam=round(lam, 6), model=folder)
        rows.append(Record(id=f"{first.id}-invmix{variant}", text=text, label=first.label, aug=aug))
    return rows


def _made_by(
    spec: GeneratorSpec,
    members: list[Record],
    counts: list[int],
    config: AugmentConfig,
    cluster: int,
) -> list[Record]:
    if spec.method == "eda":
        return _eda(members, counts, config)
    if spec.method == "bt":
        return _bt(members, counts, config, spec.argument)
    if spec.method == "invmix":
        assert spec.argument is not None
        return _invmix(members, counts, config, spec.argument, cluster)
    raise AugtoolError(f"generator {spec.method} is not a local generator")


def _drop_copies(made: list[Record], known: set[str]) -> tuple[list[Record], int]:
    rows, duplicates = [], 0
    for row in made:
        key = normalise(row.text or "")
        if not key or key in known:
            duplicates += 1
            continue
        known.add(key)
        rows.append(row)
    return rows, duplicates


def undirected_samples(
    sample: list[Record], n: int, config: AugmentConfig, spec: GeneratorSpec
) -> LocalResult:
    """The peer of :func:`local_samples`: ``n`` samples by the same generator from rows
    drawn from the whole sample, not from a cluster (each keeps its parent's label).

    The parents are the sample in a seeded order, ``n`` spread over them in turn; invmix
    mixes each with a partner of the same label, so hard labels stay right.
    """
    order = list(sample)
    random.Random(derive_seed(config.seed, "topex-undirected")).shuffle(order)
    counts = dict(zip((r.id for r in order), shares(n, len(order)), strict=True))
    made: list[Record] = []
    for label in sorted({str(r.label) for r in order}):
        group = [r for r in order if str(r.label) == label]
        if any(counts[r.id] for r in group):
            made += _made_by(spec, group, [counts[r.id] for r in group], config, -1)
    rows, duplicates = _drop_copies(made, {normalise(r.text or "") for r in sample})
    for row in rows:
        row.id = f"undirected-{row.id}"
        row.aug = {**(row.aug or {}), "directed_by": "none"}
    return LocalResult(rows, duplicates)


def local_samples(
    saved: SavedExploration,
    target: Target,
    config: AugmentConfig,
    spec: GeneratorSpec,
    *,
    known: list[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> LocalResult:
    """``config.n`` samples (fewer when copies are dropped) for ``target`` by ``spec``."""
    if target.pair:
        raise OptionError(
            "generator", f"{spec.method} rewrites single texts; pair data needs --generator llm"
        )
    members = members_with_label(target)
    counts = shares(config.n, len(members))
    made = _made_by(spec, members, counts, config, int(target.cluster["id"]))
    seen = {normalise(text) for text in (known or [])}
    seen |= {normalise(_joined(p, config.delimiter)) for p in saved.points}
    rows, duplicates = _drop_copies(made, seen)
    for row in rows:
        row.id = f"topex-c{target.cluster['id']}-{row.id}"
        row.label = target.label
        row.aug = {**(row.aug or {}), "cluster": target.cluster["id"], "directed_by": "topex"}
    if duplicates and warn is not None:
        warn(f"{duplicates} {spec.method} sample(s) copied the data or another sample: dropped")
    return LocalResult(rows, duplicates)
