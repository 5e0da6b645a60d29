"""Building the reward scorers a command needs from its :class:`RewardConfig`.

Only rewards with a positive weight are built: no encoder is loaded for ``format`` alone,
and the judge LLM is checked (reachable, key set) before any training or generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augtool.errors import DataError, OptionError
from augtool.methods.lmmixup.config import RewardConfig
from augtool.methods.lmmixup.rewards import AlignmentScorer, QualityScorer, load_quality


@dataclass
class Scorers:
    """The alignment and quality scorers (``None`` where the weight is 0)."""

    alignment: AlignmentScorer | None
    quality: QualityScorer | None
    describe: dict[str, Any] = field(default_factory=dict)
    closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for item in self.closers:
            item.close()


def read_bank(path: str | Path) -> tuple[list[str], list[int] | None]:
    """A quality bank file: sample texts and, when its rows carry one, their ``rating``
    (an integer 0-5, as ``lmmixup rate`` writes). Ratings on some rows only, or outside
    0-5, are a one-line error naming the file and line."""
    from augtool.data.jsonl import iter_json_lines
    from augtool.methods.lmmixup.schema import read_samples

    samples, _ = read_samples(path)
    texts = [s.render() for s in samples]
    lines = [(n, row) for n, _, row in iter_json_lines(path) if isinstance(row, dict)]
    ratings = [row.get("rating") for _, row in lines]
    if all(r is None for r in ratings):
        return texts, None
    for (number, _row), rating in zip(lines, ratings, strict=True):
        if rating is None:
            raise DataError(
                path, 'no "rating" while other rows have one (rate it with lmmixup rate)', number
            )
        if (
            isinstance(rating, bool)
            or not isinstance(rating, (int, float))
            or rating != int(rating)
            or not 0 <= rating <= 5
        ):
            raise DataError(path, f'"rating" must be an integer 0-5, got {rating!r}', number)
    return texts, [int(r) for r in ratings]  # type: ignore[arg-type]


NEEDS_RATED_BANK = (
    "--quality knn (the public code's Bayesian k-NN) needs a rated bank: rate good "
    "samples with `augtool lmmixup rate` and pass it as --quality-bank, or ask for "
    "--quality cosine (similarity to unrated samples) by name"
)


def make_scorers(
    config: RewardConfig,
    *,
    default_bank: list[str] | None,
    device: str = "auto",
    judge_options: dict[str, Any] | None = None,
    threshold: float | None = None,
    calibration: Any = None,
) -> Scorers:
    """Alignment and quality scorers for ``config``'s weights.

    ``knn`` needs a rated ``--quality-bank`` and refuses an unrated one; ``cosine`` takes
    any bank, by default ``default_bank`` (the clean targets of a mixture file).
    ``threshold`` is the alignment threshold (``None``: the config's number; with
    ``--align-threshold auto``, ``calibration(encoder)`` returns ``(threshold, figures)``).
    """
    weights = config.weights
    need_quality = weights.get("quality", 0) > 0
    need_encoder = weights.get("alignment", 0) > 0 or (
        need_quality and config.quality in ("knn", "cosine")
    )
    bank = None
    if need_quality and config.quality in ("knn", "cosine"):
        bank = _bank(config, default_bank)
    encoder = None
    if need_encoder:
        from augtool.core.encoders import load_encoder

        encoder = load_encoder(config.encoder, device=device)
    described: dict[str, Any] = {}
    alignment = None
    if weights.get("alignment", 0) > 0:
        chosen = threshold if threshold is not None else config.fixed_threshold
        figures: dict[str, Any] = {"source": "option"}
        if chosen is None:
            if calibration is None:
                raise OptionError(
                    "align_threshold", "auto needs a mixture with references; give a number"
                )
            chosen, figures = calibration(encoder)
        alignment = AlignmentScorer(
            encoder, threshold=chosen, coverage_weight=config.coverage_weight
        )
        described["alignment"] = {
            "encoder": encoder.describe() if encoder is not None else None,
            "threshold": chosen,
            "calibration": figures,
            "coverage_weight": config.coverage_weight,
        }
    quality = None
    closers: list[Any] = []
    if bank is not None:
        texts, ratings, source = bank
        quality = load_quality(config.quality, encoder=encoder, k=config.knn_k)
        quality.fit(texts, ratings)  # type: ignore[attr-defined]
        described["quality"] = {
            "scorer": config.quality,
            "bank": source,
            "bank_size": len(texts),
            "rated": config.quality == "knn",
            "k": config.knn_k,
        }
    elif need_quality:
        from augtool.core.generation import load_llm

        llm = load_llm(str(config.judge_llm), **(judge_options or {}))
        llm.check()
        closers.append(llm)
        quality = load_quality("judge", llm=llm)
        described["quality"] = {"scorer": "judge", "llm": llm.identity()}
    return Scorers(alignment, quality, described, closers)


def _bank(
    config: RewardConfig, default_bank: list[str] | None
) -> tuple[list[str], list[int] | None, str]:
    """The quality bank's texts, ratings and source; ``knn`` refuses an unrated one."""
    if config.quality_bank:
        texts, ratings = read_bank(config.quality_bank)
        source = str(config.quality_bank)
        if config.quality == "knn" and ratings is None:
            raise DataError(config.quality_bank, f"has no ratings; {NEEDS_RATED_BANK}")
        return texts, ratings, source
    if config.quality == "knn":
        raise OptionError("quality_bank", NEEDS_RATED_BANK)
    if default_bank:
        return default_bank, None, "the training file's clean targets"
    raise OptionError(
        "quality_bank",
        "--quality cosine needs a bank of good samples here (--quality-bank file.jsonl), "
        "or give quality weight 0",
    )
