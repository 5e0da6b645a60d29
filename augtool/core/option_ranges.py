"""The valid range of every numeric option, in one table, checked before any work.

Every command is wrapped by :func:`augtool.cli.common.handle_errors`, which checks the
parsed values of the command's options against :data:`RANGES` before the command body
runs; ``--config`` files go through the same check (:func:`augtool.core.config.build_config`).
A test walks every command and fails on a numeric option missing from the table, so a new
option cannot skip it. Method configs keep their own cross-field checks in
``__post_init__``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from augtool.errors import OptionError


@dataclass(frozen=True)
class Range:
    """``low <= x <= high`` (``<`` where open); ``None`` means unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range, or ``None`` when it is fine."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number (got {value})"
        closed = not (self.low_open or self.high_open)
        if closed and self.low is not None and self.high is not None:
            if not self.low <= value <= self.high:
                return f"must be between {_fmt(self.low)} and {_fmt(self.high)} (got {_fmt(value)})"
            return None
        if self.low is not None:
            if self.low_open and value <= self.low:
                return f"must be greater than {_fmt(self.low)} (got {_fmt(value)})"
            if not self.low_open and value < self.low:
                return f"must be at least {_fmt(self.low)} (got {_fmt(value)})"
        if self.high is not None:
            if self.high_open and value >= self.high:
                return f"must be less than {_fmt(self.high)} (got {_fmt(value)})"
            if not self.high_open and value > self.high:
                return f"must be at most {_fmt(self.high)} (got {_fmt(value)})"
        return None


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
FRACTION = Range(0, 1)  # probabilities, rates, thresholds on [0, 1] scores
FRACTION_BELOW_ONE = Range(0, 1, high_open=True)
ANY = Range()

_COUNTS = """adaptor_epochs batch_size bins bleu_sample components concurrency ctc_texts
    decode_batch_size grad_accum group group_size groups_per_sample iterations jobs
    k keep knn_k logging_steps lambda_bins lora_alpha lora_r mauve_seeds max_chars
    max_completion_length max_decode_tokens max_length max_new_tokens max_pairs
    max_requests max_samples max_steps max_target_tokens min_group min_samples n
    n_aug name_words num_beams num_tokens pairs pe_iterations pe_variations
    per_label save_every save_steps seeds soft_tokens task_batch_size task_epochs
    top_n_words variants"""
_NON_NEGATIVE = """adaptor_hidden checkpoint_every cluster cluster_selection_epsilon
    correction_epochs correction_steps head_hidden m max_errors max_outside max_retries
    noise_multiplier patience rpm seed shots temperature weight_decay beta xi
    rounds sample worst"""
_POSITIVE = "alpha head_lr lr max_eps max_minutes step_size task_lr timeout vllm_server_timeout"
_FRACTIONS = """alpha_ri alpha_rs alpha_sr align_threshold drop_rate duplicate_threshold
    error_threshold keep_min lam lora_dropout min_agreement min_confidence noise_rate
    overlap_threshold p_rd pe_mask_prob threshold warmup_ratio"""
_FRACTIONS_BELOW_ONE = "align_quantile dev_fraction dropout"
# Free-valued: scoring weights may be negative by design; thresholds on vote counts.
_UNBOUNDED = "coverage_weight pe_threshold w_cosine w_ctc w_density w_geomedian w_pairwise"

#: option name (the Python parameter name) -> its valid range
RANGES: dict[str, Range] = {
    **dict.fromkeys(_COUNTS.split(), AT_LEAST_ONE),
    **dict.fromkeys(_NON_NEGATIVE.split(), NON_NEGATIVE),
    **dict.fromkeys(_POSITIVE.split(), POSITIVE),
    **dict.fromkeys(_FRACTIONS.split(), FRACTION),
    **dict.fromkeys(_FRACTIONS_BELOW_ONE.split(), FRACTION_BELOW_ONE),
    **dict.fromkeys(_UNBOUNDED.split(), ANY),
    "top_p": Range(0, 1, low_open=True),
    "min_cluster_size": Range(2),
    "folds": Range(2),
    "epochs": POSITIVE,  # whole epochs for most trainers, fractional for lmmixup
}


def _numbers(value: Any) -> Iterable[float]:
    if isinstance(value, bool) or value is None:
        return ()
    if isinstance(value, (int, float)):
        return (value,)
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ()


def check_ranges(values: Mapping[str, Any], *, source: str | None = None) -> None:
    """Raise :class:`OptionError` for the first numeric value outside its range.

    ``source`` names where the values came from (a ``--config`` file) in the message.
    """
    for name, value in values.items():
        bounds = RANGES.get(name)
        if bounds is None:
            continue
        for number in _numbers(value):
            problem = bounds.problem(number)
            if problem is not None:
                where = f" (in {source})" if source else ""
                raise OptionError(name, problem + where)
