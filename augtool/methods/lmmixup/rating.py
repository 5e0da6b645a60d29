"""``lmmixup rate``: an LLM judge rates clean samples into a quality bank.

The prompt is the public code's rubric, word for word (``prompts.LMMIXUP_RATE``): Rarity,
Complexity, Informativeness and Overall, 1-10 integers, as JSON. The overall rating is
compressed to 0-5 as the public code does (``min(9, max(4, overall)) - 4``: 1-4 -> 0,
5 -> 1 ... 9-10 -> 5); that ``rating`` is what the Bayesian k-NN quality reward reads.

Unlike the public code, a reply without a readable overall rating is never scored 0: the
sample is left out of the bank and counted (``<out>.failed.jsonl`` says why).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from augtool.core.generation.jobs import ReplyRejected, Task, derive_seed
from augtool.core.generation.prompts import LMMIXUP_RATE
from augtool.methods.lmmixup.schema import Sample

#: Schema -> the rubric's ``(task_desc, task_name)``, from the public code's ``task_map``
#: (``para`` there is our ``paragraph``); ``instruction`` gets the public fallback (QA).
RATING_TASKS: dict[str, tuple[str, str]] = {
    "qa": ("**single** QA pair", "QA Pair"),
    "mcq": ("**single** MCQ item", "MCQ Item"),
    "paragraph": ("**single** merged paragraph", "Paragraph"),
    "tfq": ("**single** True/False question", "TFQ"),
    "cs": ("**single** category–statement example", "CS Example"),
}
CRITERIA = ("Rarity", "Complexity", "Informativeness")


def rate_prompt(sample: Sample) -> list[dict[str, str]]:
    """The rubric for one sample (its text as it appears inside ``<answer>``)."""
    desc, name = RATING_TASKS.get(sample.schema, RATING_TASKS["qa"])
    return LMMIXUP_RATE.render(sample=sample.render(), task_desc=desc, task_name=name)


def first_json_object(reply: str) -> dict[str, Any] | None:
    """The first JSON object in a reply (code fences and surrounding text tolerated)."""
    decoder = json.JSONDecoder()
    start = reply.find("{")
    while start != -1:
        try:
            found, _ = decoder.raw_decode(reply, start)
        except json.JSONDecodeError:
            found = None
        if isinstance(found, dict):
            return found
        start = reply.find("{", start + 1)
    return None


def compress_overall(overall: int) -> int:
    """A 1-10 overall rating squeezed onto 0-5, as the public code does:
    ``min(9, max(4, overall)) - 4``."""
    return min(9, max(4, overall)) - 4


def _score(value: Any) -> int | None:
    """An integer 1-10 from a JSON value, or ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not number.is_integer() or not 1 <= number <= 10:
        return None
    return int(number)


def parse_rating(reply: str) -> dict[str, int] | None:
    """``{"Rarity", "Complexity", "Informativeness", "Overall", "Overall_compressed"}``
    from a judge's reply, or ``None`` when it holds no overall rating 1-10 (the other
    criteria are kept when readable, and left out otherwise)."""
    found = first_json_object(reply)
    if found is None:
        return None
    overall = _score(found.get("Overall rating", found.get("Overall")))
    if overall is None:
        return None
    detail = {name: value for name in CRITERIA if (value := _score(found.get(name))) is not None}
    detail["Overall"] = overall
    detail["Overall_compressed"] = compress_overall(overall)
    return detail


def sample_for_rating(samples: Sequence[Sample], size: int, seed: int) -> list[Sample]:
    """A seeded random sample of ``size`` samples in file order (all for 0 or fewer)."""
    if size == 0 or size >= len(samples):
        return list(samples)
    chosen = sorted(random.Random(seed).sample(range(len(samples)), size))
    return [samples[i] for i in chosen]


def rating_tasks(samples: Sequence[Sample], seed: int, judge: str) -> list[Task]:
    """One request per sample; its reply becomes the sample's row with ``rating``."""

    def builder(sample: Sample) -> Any:
        def build(reply: str) -> dict[str, Any]:
            detail = parse_rating(reply)
            if detail is None:
                raise ReplyRejected("no overall rating 1-10 in the reply (not guessed)")
            row = sample.to_row()
            row["rating"] = detail["Overall_compressed"]
            row["rating_detail"] = detail
            row["rated_by"] = judge
            return row

        return build

    return [
        Task(
            key=sample.id,
            prompt=rate_prompt(sample),
            seed=derive_seed(seed, "lmmixup-rate", sample.id),
            build=builder(sample),
        )
        for sample in samples
    ]
