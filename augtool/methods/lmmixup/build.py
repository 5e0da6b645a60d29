"""Build MIXTURE-style training pairs for LM-mixup: groups of degraded variants of a clean
sample, each group mapped to the clean sample.

For every sample and group, the group size, each variant's hierarchy level (how many
degradations it stacks) and the degradations are drawn from a generator seeded by
``(seed, sample id, group)``, and each variant's degradations from one seeded by
``(seed, sample id, group, variant)``: a row does not depend on the other samples, their
order or the ``max_samples`` subset. With a paraphraser LLM, every paraphrase a build needs
is asked for up front in one :meth:`LLM.generate` call (batched and cached by the
backend); a failed or unusable reply falls back to the rule-based paraphrase.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from augtool.core.generation.base import LLM
from augtool.core.generation.jobs import ReplyRejected, derive_seed
from augtool.core.generation.params import Failure, Message
from augtool.core.progress import SILENT, Reporter
from augtool.data.provenance import make_aug
from augtool.methods.eda import STOP_WORDS, Sentence, Synonyms
from augtool.methods.lmmixup.config import BuildConfig
from augtool.methods.lmmixup.degrade import (
    USES_PARAPHRASE,
    DegradeSettings,
    clean_paraphrase,
    degrade_fields,
    force_typo,
    normalize,
    ordered,
    paraphrase_prompt,
    targets_of,
)
from augtool.methods.lmmixup.schema import FIELDS, SPECS, Sample, mixup_prompt, render_fields

METHOD = "lmmixup-build"


@dataclass
class BuildStats:
    """Counts of one build (filled in by :func:`build_mixture` when passed)."""

    samples: int = 0
    groups: int = 0
    variants: int = 0
    paraphrase_requests: int = 0
    paraphrase_failures: int = 0
    #: Variants that needed an extra degradation to differ from the clean sample.
    fallbacks: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Group:
    sample: Sample
    index: int
    plans: list[list[str]]


def select_samples(samples: list[Sample], max_samples: int | None, seed: int) -> list[Sample]:
    """A seeded random subset of ``max_samples`` samples, in their original order.

    Samples are ranked by a hash of ``(seed, id)``, so the subset does not depend on the
    order of the file.
    """
    if max_samples is None or max_samples >= len(samples):
        return list(samples)
    ranked = sorted(
        range(len(samples)), key=lambda i: derive_seed(seed, "lmmixup-subset", samples[i].id)
    )
    return [samples[i] for i in sorted(ranked[:max_samples])]


def plan_group(sample: Sample, group: int, config: BuildConfig) -> list[list[str]]:
    """The degradations of each variant of one group, in the order they are applied.

    The group size is uniform in ``config.sizes``; each variant's level is uniform in
    ``config.level_range`` and picks that many distinct degradations (all of them when
    fewer are configured).
    """
    rng = random.Random(f"{config.seed}-{sample.id}-{group}")
    names = list(dict.fromkeys(config.degradations))
    size = rng.randint(*config.sizes)
    plans = []
    for _ in range(size):
        level = rng.randint(*config.level_range)
        plans.append(ordered(rng.sample(names, min(level, len(names)))))
    return plans


def _vocabulary(samples: list[Sample]) -> set[str]:
    """Lowercased content words of every field value (what paraphrases look up)."""
    words = set()
    for sample in samples:
        for value in sample.fields.values():
            for _, core, _ in Sentence.parse(value or "").tokens:
                if len(core) >= 3 and not any(ch.isdigit() for ch in core):
                    words.add(core.lower())
    return words - STOP_WORDS


def _paraphrase_requests(
    groups: list[_Group], config: BuildConfig
) -> list[tuple[tuple[str, int, int, str, str], str, str, int]]:
    """``(key, schema, clean value, seed)`` of every LLM paraphrase the plans need; ``key`` is
    ``(sample id, group, variant, field, degradation)``."""
    requests = []
    for group in groups:
        sample = group.sample
        for variant, names in enumerate(group.plans):
            for name in names:
                if name not in USES_PARAPHRASE:
                    continue
                for target in targets_of(sample.schema, sample.fields, name):
                    key = (sample.id, group.index, variant, target, name)
                    seed = derive_seed(config.seed, METHOD, *key)
                    requests.append((key, sample.schema, sample.fields[target], seed))
    return requests


def _llm_paraphrases(
    groups: list[_Group],
    config: BuildConfig,
    llm: LLM,
    stats: BuildStats,
    reporter: Reporter,
) -> dict[tuple[str, int, int], dict[tuple[str, str], str]]:
    """LLM paraphrases by variant ``(sample id, group, variant)``, then by ``(field,
    degradation)``; failed requests and rejected replies are left out
    (the rule-based paraphrase replaces them) and counted in ``stats``."""
    requests = _paraphrase_requests(groups, config)
    stats.paraphrase_requests += len(requests)
    if not requests:
        return {}
    advance = reporter.task("paraphrasing", len(requests))
    results = llm.generate(
        [paraphrase_prompt(text) for _, _, text, _ in requests],
        config.params(),
        [seed for *_, seed in requests],
        on_results=lambda indices, _results, _cached: advance(len(indices)),
    )
    found: dict[tuple[str, int, int], dict[tuple[str, str], str]] = {}
    for (key, schema, text, _), result in zip(requests, results, strict=True):
        try:
            if isinstance(result, Failure):
                raise ReplyRejected(result.error)
            sample_id, group, variant, target, name = key
            cleaned = clean_paraphrase(result, text, schema)
            found.setdefault((sample_id, group, variant), {})[(target, name)] = cleaned
        except ReplyRejected as exc:
            stats.paraphrase_failures += 1
            stats.failures.append({"key": list(key), "error": str(exc)})
    if stats.paraphrase_failures:
        reporter.log(
            f"{stats.paraphrase_failures} of {len(requests)} paraphrases failed; "
            "used rule-based paraphrases instead"
        )
    return found


def _changed(schema: str, values: dict[str, str], clean: dict[str, str]) -> bool:
    return any(normalize(values[n]) != normalize(clean.get(n) or "") for n in FIELDS[schema])


def _build_variant(
    sample: Sample,
    names: list[str],
    rng: random.Random,
    config: BuildConfig,
    settings: DegradeSettings,
    rewrites: dict[tuple[str, str], str],
) -> tuple[str, list[str], bool]:
    """One variant's text, the degradations applied, and whether a fallback was needed.

    When the planned degradations leave the sample unchanged (one-word values, no
    synonyms...), the other configured degradations and then ``noise`` are tried in a
    random order; a doubled character in the main content field is the last resort.
    Inputs never equal the target.
    """
    schema = sample.schema
    names = list(names)
    values = degrade_fields(schema, sample.fields, names, rng, settings, rewrites)
    if _changed(schema, values, sample.fields):
        return render_fields(schema, values), names, False
    extras = [n for n in dict.fromkeys(config.degradations) if n not in names]
    rng.shuffle(extras)
    if "noise" not in extras and "noise" not in names:
        extras.append("noise")
    for extra in extras:
        candidate = degrade_fields(schema, values, [extra], rng, settings)
        if _changed(schema, candidate, sample.fields):
            return render_fields(schema, candidate), [*names, extra], True
    main = SPECS[schema].main  # never an answer letter or True/False
    values[main] = force_typo(values[main], rng)
    if "noise" not in names:
        names.append("noise")
    return render_fields(schema, values), names, True


def build_mixture(
    samples: list[Sample],
    config: BuildConfig,
    *,
    paraphraser: LLM | None = None,
    reporter: Reporter = SILENT,
    synonyms: Synonyms | None = None,
    stats: BuildStats | None = None,
) -> list[dict[str, Any]]:
    """MIXTURE rows: ``groups_per_sample`` groups of degraded variants per clean sample.

    Each row is ``{"id", "schema", "inputs", "target", "target_fields", "aug"}``; ``aug``
    records the group size, each variant's level and degradations, and the paraphraser.
    ``synonyms`` replaces the WordNet lookup of rule-based paraphrases; ``stats`` receives
    the counts of the build.
    """
    stats = stats if stats is not None else BuildStats()
    chosen = select_samples(samples, config.max_samples, config.seed)
    groups = [
        _Group(sample, g, plan_group(sample, g, config))
        for sample in chosen
        for g in range(config.groups_per_sample)
    ]
    wordnet = None
    if synonyms is None and USES_PARAPHRASE & set(config.degradations):
        from augtool.core.wordnet import WordNetSynonyms

        wordnet = WordNetSynonyms()
        synonyms = wordnet.synonyms
    try:
        if wordnet is not None and paraphraser is None:
            # Every paraphrase is rule-based: look all the words up at once.
            vocab = _vocabulary(chosen)
            advance = reporter.task("looking up synonyms", len(vocab))
            wordnet.prefetch(vocab)
            advance(len(vocab))
        settings = DegradeSettings.from_config(config, synonyms or (lambda word: ()))
        rows = _build_rows(groups, config, settings, paraphraser, stats, reporter)
    finally:
        if wordnet is not None:
            wordnet.close()
    stats.samples += len(chosen)
    return rows


def _build_rows(
    groups: list[_Group],
    config: BuildConfig,
    settings: DegradeSettings,
    paraphraser: LLM | None,
    stats: BuildStats,
    reporter: Reporter,
) -> list[dict[str, Any]]:
    label = config.paraphraser or "rule-based"
    llm_rewrites: dict[tuple[str, int, int], dict[tuple[str, str], str]] = {}
    if paraphraser is not None:
        label = config.paraphraser or f"{paraphraser.scheme}:{paraphraser.model}"
        llm_rewrites = _llm_paraphrases(groups, config, paraphraser, stats, reporter)
    rows = []
    advance = reporter.task("building groups", len(groups))
    for group in groups:
        sample = group.sample
        inputs, applied, fallbacks = [], [], 0
        for variant, names in enumerate(group.plans):
            rewrites = llm_rewrites.get((sample.id, group.index, variant), {})
            if paraphraser is not None:
                fallbacks += sum(
                    1
                    for name in names
                    if name in USES_PARAPHRASE
                    for target in targets_of(sample.schema, sample.fields, name)
                    if (target, name) not in rewrites
                )
            rng = random.Random(f"{config.seed}-{sample.id}-{group.index}-{variant}")
            text, used, fell_back = _build_variant(sample, names, rng, config, settings, rewrites)
            inputs.append(text)
            applied.append(used)
            stats.fallbacks += fell_back
        levels = [len(names) for names in applied]
        aug = make_aug(
            METHOD,
            [sample.id],
            seed=config.seed,
            group_size=len(inputs),
            levels=levels,
            degradations=applied,
            level=max(levels),
            paraphraser=label,
            paraphrase_fallbacks=fallbacks or None,
        )
        rows.append(
            {
                "id": f"mix-{sample.id}-{group.index}",
                "schema": sample.schema,
                "inputs": inputs,
                "target": sample.render(),
                "target_fields": dict(sample.fields),
                "aug": aug,
            }
        )
        stats.groups += 1
        stats.variants += len(inputs)
        advance(1)
    return rows


def mixture_prompt(row: dict[str, Any]) -> list[Message]:
    """The chat messages asking a model to fuse a MIXTURE row's inputs into one sample."""
    return mixup_prompt(row["inputs"], row["schema"])
