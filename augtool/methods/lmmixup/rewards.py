"""The three LM-mixup rewards (quality, semantic alignment, format) and their TRL glue.

Every reward maps one completion to a number in ``[0, 1]``:

- ``format``: 0.5 when the completion is ``[<think>...</think>] <answer>...</answer>`` and
  nothing else, plus 0.5 when the text inside ``<answer>`` parses into the schema's fields
  (the two halves are independent, as in the public implementation).
- ``alignment``: the answer's embedding against the reference target's (1 when the cosine
  reaches a threshold, else 0), optionally mixed with how well the answer covers the
  group's inputs; coverage alone when there is no reference (an unlabelled pool).
- ``quality``: a pluggable scorer (:data:`QUALITY`): ``knn`` (a Bayesian k-NN over a bank
  of rated high-quality samples, or plain similarity to an unrated bank) or ``judge`` (an
  LLM rating the sample with a rubric).

:func:`reward_functions` wraps them as TRL ``GRPOTrainer`` reward functions (one per
reward with a positive weight, named after it) and :func:`score_completions` scores a
batch at once for ``distill``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from augtool.core.generation.jobs import derive_seed
from augtool.core.generation.params import Failure, GenerationParams, Message
from augtool.core.generation.prompts import LMMIXUP_JUDGE
from augtool.core.registry import Registry
from augtool.methods.lmmixup.config import REWARDS
from augtool.methods.lmmixup.rating import compress_overall, parse_rating
from augtool.methods.lmmixup.schema import FIELDS, FORMAT_RE, extract_answer, parse_fields

if TYPE_CHECKING:
    from augtool.core.encoders.base import Encoder
    from augtool.core.generation.base import LLM, RequestBudget

#: Texts -> a ``(len(texts), dim)`` array; an encoder's ``encode`` or a test's stand-in.
Embed = Callable[[list[str]], np.ndarray]
#: A completion as TRL hands it over: plain text, or chat messages (conversational data).
Completion = str | list[dict[str, Any]]
RewardFunction = Callable[..., list[float]]

#: Quality rewards of a 0-5 rating, the public code's rule: at least 4 -> 1.0, exactly 3 ->
#: 0.3, else 0 (an expected rating strictly between 3 and 4 gets 0, as there).
HIGH_RATING, MID_RATING, MID_REWARD = 4.0, 3.0, 0.3


def completion_text(completion: Completion) -> str:
    """The generated text of a completion: itself, or the content of the last assistant
    message of a conversational one (``[{"role": "assistant", "content": ...}]``)."""
    if isinstance(completion, str):
        return completion
    messages = [m for m in completion if isinstance(m, dict)]
    replies = [m for m in messages if m.get("role") == "assistant"] or messages
    if not replies:
        return ""
    content = replies[-1].get("content")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return content or ""


def _per_row(value: Sequence[str] | str, count: int, name: str) -> list[str]:
    """One value per completion: a single string repeated, or a list of matching length."""
    if isinstance(value, str):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{name}: got {len(values)} values for {count} completions")
    return values


def _check_schema(schema: str) -> str:
    if schema not in FIELDS:
        raise ValueError(f"unknown schema {schema!r} (known: {', '.join(FIELDS)})")
    return schema


# --------------------------------------------------------------------------- format


def format_reward(completions: Sequence[Completion], schemas: Sequence[str] | str) -> list[float]:
    """0, 0.5 or 1 per completion: 0.5 for the tag layout (optional ``<think>`` then
    ``<answer>``, nothing outside), 0.5 for an answer that parses into the schema's fields.
    """
    texts = [completion_text(c) for c in completions]
    rows = _per_row(schemas, len(texts), "schemas")
    scores = []
    for text, schema in zip(texts, rows, strict=True):
        _check_schema(schema)
        score = 0.5 if FORMAT_RE.fullmatch(text) else 0.0
        answer = extract_answer(text)
        if answer is not None and parse_fields(schema, answer) is not None:
            score += 0.5
        scores.append(score)
    return scores


# ------------------------------------------------------------------------ alignment


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), in float64."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _embedder(encoder: Encoder | None, embed: Embed | None, owner: str) -> Embed | None:
    if encoder is not None and embed is not None:
        raise ValueError(f"{owner}: give an encoder or an embed function, not both")
    if embed is not None:
        return embed
    if encoder is not None:
        return encoder.encode  # a bound method: picklable when the encoder is
    return None


class AlignmentScorer:
    """Semantic alignment of a fused sample with its reference and the group's inputs.

    With a reference: ``(1 - coverage_weight) * [cos(answer, reference) >= threshold]
    + coverage_weight * coverage``; without one: ``coverage``, where coverage is the mean
    over the group's inputs of ``max(0, cos(answer, input))``. A row with a reference but
    no inputs gets the reference term alone; a missing answer (``None``) gets 0.
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        embed: Embed | None = None,
        threshold: float = 0.8,
        coverage_weight: float = 0.0,
    ) -> None:
        embedder = _embedder(encoder, embed, "AlignmentScorer")
        if embedder is None:
            raise ValueError("AlignmentScorer needs an encoder or an embed function")
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine in [-1, 1], got {threshold}")
        if not 0.0 <= coverage_weight <= 1.0:
            raise ValueError(f"coverage_weight must be in [0, 1], got {coverage_weight}")
        self.embed = embedder
        self.threshold = threshold
        self.coverage_weight = coverage_weight

    def score(
        self,
        answers: Sequence[str | None],
        references: Sequence[str | None] | None = None,
        inputs: Sequence[Sequence[str] | None] | None = None,
    ) -> list[float]:
        """One alignment reward per answer; every text is embedded in a single call."""
        count = len(answers)
        refs = list(references) if references is not None else [None] * count
        groups = list(inputs) if inputs is not None else [None] * count
        if len(refs) != count or len(groups) != count:
            raise ValueError(
                f"alignment: {count} answers but {len(refs)} references and "
                f"{len(groups)} input groups"
            )
        refs = [r if isinstance(r, str) and r.strip() else None for r in refs]
        groups = [[t for t in g if isinstance(t, str)] if g else [] for g in groups]
        for answer, ref, group in zip(answers, refs, groups, strict=True):
            if answer is not None and ref is None and not group:
                raise ValueError(
                    "alignment needs a reference or the group's inputs for every completion"
                )

        index: dict[str, int] = {}
        for answer, ref, group in zip(answers, refs, groups, strict=True):
            if answer is None:
                continue
            for text in (answer, ref, *group):
                if text is not None:
                    index.setdefault(text, len(index))
        if not index:
            return [0.0] * count
        vectors = _unit_rows(self.embed(list(index)))
        if len(vectors) != len(index):
            raise ValueError(f"embed returned {len(vectors)} vectors for {len(index)} texts")

        def cosine(a: str, b: str) -> float:
            return float(vectors[index[a]] @ vectors[index[b]])

        scores = []
        for answer, ref, group in zip(answers, refs, groups, strict=True):
            if answer is None:
                scores.append(0.0)
                continue
            coverage = (
                float(np.mean([max(0.0, cosine(answer, text)) for text in group]))
                if group
                else None
            )
            if ref is None:
                scores.append(min(1.0, coverage or 0.0))
                continue
            aligned = 1.0 if cosine(answer, ref) >= self.threshold else 0.0
            if coverage is None:
                scores.append(aligned)
            else:
                weight = self.coverage_weight
                scores.append(min(1.0, (1.0 - weight) * aligned + weight * coverage))
        return scores


# -------------------------------------------------------------------------- quality


class QualityScorer(ABC):
    """Rates sample texts; every score is in ``[0, 1]``."""

    @abstractmethod
    def score(self, texts: list[str]) -> list[float]:
        """One quality reward per text."""


def rating_reward(rating: float) -> float:
    """The reward of a 0-5 rating as the public code maps it (``llm_mixup_bayes.py``):
    1.0 from 4 up, 0.3 at exactly 3, else 0. For the Bayesian k-NN's expected rating the
    0.3 branch almost never fires (an expectation is rarely exactly 3); for a judge's
    integer rating it does."""
    if rating >= HIGH_RATING:
        return 1.0
    if rating == MID_RATING:
        return MID_REWARD
    return 0.0


def _coerce_rating(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"rating {value!r} is not an integer 0-5")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"rating {value!r} is not an integer 0-5") from None
    if not number.is_integer() or not 0 <= number <= 5:
        raise ValueError(f"rating {value!r} is not an integer 0-5")
    return int(number)


class KNNQuality(QualityScorer):
    """Quality as the neighbourhood of a text in a bank of high-quality samples.

    With ratings (integers 0-5), the Bayesian k-NN of the public LM-mixup code: a class
    prior ``p`` and a class transition matrix ``T`` (how often an item of rating ``i`` has
    neighbours of rating ``j``, from each item's ``k_t`` nearest other items, smoothed by
    0.01) give, for the histogram ``h`` of a text's ``k`` nearest bank ratings, the
    posterior ``log P(i) = log p_i + sum_j h_j log T_ij``; its expected rating maps to the
    reward by :func:`rating_reward`. Without ratings (a bank of only good samples), the
    reward is the mean cosine of the ``k`` nearest items, clipped to ``[0, 1]``.

    Bank vectors may be given precomputed (``embeddings``); texts to score are embedded
    with ``encoder`` or ``embed``.
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        embed: Embed | None = None,
        k: int = 16,
        k_t: int = 3,
        bank_texts: Sequence[str] | None = None,
        ratings: Sequence[int] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> None:
        if k < 1 or k_t < 1:
            raise ValueError(f"k and k_t must be at least 1 (got k={k}, k_t={k_t})")
        self.embed = _embedder(encoder, embed, "KNNQuality")
        self.k = k
        self.k_t = k_t
        self.bank: np.ndarray | None = None
        self.ratings: np.ndarray | None = None
        self.classes: np.ndarray | None = None
        self.prior: np.ndarray | None = None
        self.transition: np.ndarray | None = None
        self._class_index = np.zeros(0, dtype=np.int64)
        if bank_texts is not None or embeddings is not None:
            self.fit(bank_texts, ratings=ratings, embeddings=embeddings)

    def fit(
        self,
        bank_texts: Sequence[str] | None,
        ratings: Sequence[int] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> KNNQuality:
        """Index the bank (embedding its texts unless ``embeddings`` are given) and, with
        ratings, estimate the prior and transition matrix."""
        if embeddings is None:
            if bank_texts is None:
                raise ValueError("fit needs the bank's texts or its embeddings")
            if self.embed is None:
                raise ValueError("KNNQuality needs an encoder or embed to embed the bank")
            embeddings = self.embed(list(bank_texts))
        bank = _unit_rows(embeddings)
        if len(bank) == 0:
            raise ValueError("the quality bank is empty")
        if bank_texts is not None and len(bank_texts) != len(bank):
            raise ValueError(f"{len(bank_texts)} bank texts but {len(bank)} embeddings")
        self.bank = bank
        self.ratings = self.classes = self.prior = self.transition = None
        if ratings is None:
            return self
        values = np.array([_coerce_rating(r) for r in ratings], dtype=np.int64)
        if len(values) != len(bank):
            raise ValueError(f"{len(values)} ratings for a bank of {len(bank)} items")
        classes, index = np.unique(values, return_inverse=True)
        counts = np.bincount(index, minlength=len(classes)).astype(np.float64)
        transition = np.full((len(classes), len(classes)), 1e-2)
        k_t = min(self.k_t, len(bank) - 1)
        if k_t > 0:
            sims = bank @ bank.T
            np.fill_diagonal(sims, -np.inf)  # an item is not its own neighbour
            neighbours = np.argsort(-sims, axis=1, kind="stable")[:, :k_t]
            for centre, row in enumerate(neighbours):
                np.add.at(transition[index[centre]], index[row], 1.0)
        self.ratings = values
        self.classes = classes
        self.prior = counts / counts.sum()
        self.transition = transition / transition.sum(axis=1, keepdims=True)
        self._class_index = index
        return self

    def _neighbours(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosines of each vector's ``k`` nearest bank items."""
        if self.bank is None:
            raise RuntimeError("KNNQuality has no bank: call fit() first")
        queries = _unit_rows(vectors)
        if queries.shape[1] != self.bank.shape[1]:
            raise ValueError(
                f"vectors of size {queries.shape[1]} against a bank of size {self.bank.shape[1]}"
            )
        sims = queries @ self.bank.T
        k = min(self.k, len(self.bank))
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(sims, order, axis=1)

    def expected_ratings(self, vectors: np.ndarray) -> np.ndarray:
        """The posterior expected rating (0-5) of each vector; needs a rated bank."""
        if self.transition is None:
            raise RuntimeError("expected ratings need a bank with ratings")
        assert self.prior is not None and self.classes is not None
        order, _ = self._neighbours(vectors)
        n_classes = len(self.classes)
        hist = np.stack([np.bincount(self._class_index[row], minlength=n_classes) for row in order])
        log_post = (
            np.log(self.prior + 1e-12) + hist.astype(np.float64) @ np.log(self.transition + 1e-12).T
        )
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        post /= post.sum(axis=1, keepdims=True)
        return post @ self.classes.astype(np.float64)

    def score_embeddings(self, vectors: np.ndarray) -> list[float]:
        """Quality rewards of already embedded texts."""
        vectors = np.asarray(vectors)
        if len(vectors) == 0:
            return []
        if self.transition is not None:
            return [rating_reward(float(r)) for r in self.expected_ratings(vectors)]
        _, sims = self._neighbours(vectors)
        return [float(np.clip(row.mean(), 0.0, 1.0)) for row in sims]

    def score(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        if self.embed is None:
            raise ValueError("KNNQuality needs an encoder or embed to score texts")
        return self.score_embeddings(self.embed(list(texts)))


class CosineQuality(KNNQuality):
    """Quality as the mean cosine of a text's ``k`` nearest bank samples, clipped to
    ``[0, 1]``: similarity to good samples, for a bank without ratings (``--quality
    cosine``). Ratings given to :meth:`fit` are ignored."""

    def fit(
        self,
        bank_texts: Sequence[str] | None,
        ratings: Sequence[int] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> KNNQuality:
        return super().fit(bank_texts, None, embeddings)


JUDGE_PARAMS = GenerationParams(max_new_tokens=64, temperature=0.0)


def judge_prompt(text: str) -> list[Message]:
    """The chat messages asking the judge to rate one sample."""
    return LMMIXUP_JUDGE.render(sample=text.strip())


def parse_overall(reply: str) -> int | None:
    """The integer overall rating (1-10) of a judge's reply, or ``None``: read as
    ``lmmixup rate`` reads it (:func:`augtool.methods.lmmixup.rating.parse_rating`)."""
    detail = parse_rating(reply)
    return None if detail is None else detail["Overall"]


class JudgeQuality(QualityScorer):
    """Quality rated by an LLM with a rubric (Rarity, Complexity, Informativeness and an
    Overall rating, 1-10); the overall rating, compressed to 0-5, maps to the reward by
    :func:`rating_reward`. Failed requests and unreadable replies score 0 and are counted
    in :attr:`failed` and :attr:`unparsed`."""

    def __init__(
        self,
        llm: LLM,
        *,
        seed: int = 0,
        params: GenerationParams = JUDGE_PARAMS,
        budget: RequestBudget | None = None,
    ) -> None:
        self.llm = llm
        self.seed = seed
        self.params = params
        self.budget = budget
        self.failed = 0
        self.unparsed = 0
        self.rated = 0

    def ratings(self, texts: list[str]) -> list[int | None]:
        """The compressed 0-5 rating of each text (``None`` when the judge gave none);
        identical texts are asked once."""
        unique = list(dict.fromkeys(texts))
        replies = self.llm.generate(
            [judge_prompt(text) for text in unique],
            self.params,
            [derive_seed(self.seed, "lmmixup-judge", text) for text in unique],
            budget=self.budget,
        )
        by_text: dict[str, int | None] = {}
        for text, reply in zip(unique, replies, strict=True):
            if isinstance(reply, Failure):
                self.failed += 1
                by_text[text] = None
                continue
            overall = parse_overall(reply)
            if overall is None:
                self.unparsed += 1
                by_text[text] = None
            else:
                self.rated += 1
                by_text[text] = compress_overall(overall)
        return [by_text[text] for text in texts]

    def score(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        return [0.0 if r is None else rating_reward(r) for r in self.ratings(list(texts))]


QUALITY: Registry[type[QualityScorer]] = Registry("quality scorer")
QUALITY.register("knn", KNNQuality)
QUALITY.register("cosine", CosineQuality)
QUALITY.register("judge", JudgeQuality)


def load_quality(name: str, **kwargs: Any) -> QualityScorer:
    """Build the quality scorer registered as ``name`` with its keyword arguments."""
    return QUALITY.get(name)(**kwargs)


# ---------------------------------------------------------------------- combination


def _active(weights: dict[str, float]) -> list[str]:
    """The rewards with a positive weight, in the fixed order quality, alignment, format."""
    unknown = [name for name in weights if name not in REWARDS]
    if unknown:
        raise ValueError(
            f"unknown reward {', '.join(map(repr, unknown))} (known rewards: {', '.join(REWARDS)})"
        )
    return [name for name in REWARDS if weights.get(name, 0.0) > 0]


def _quality_values(answers: list[str | None], quality: QualityScorer) -> list[float]:
    """Quality of each answer text; 0 where there is none."""
    present = [i for i, a in enumerate(answers) if a]
    scores = [0.0] * len(answers)
    if present:
        found = quality.score([answers[i] for i in present])  # type: ignore[misc]
        for i, value in zip(present, found, strict=True):
            scores[i] = float(value)
    return scores


def _compute(
    name: str,
    texts: list[str],
    *,
    schemas: Sequence[str] | str | None,
    alignment: AlignmentScorer | None,
    quality: QualityScorer | None,
    references: Sequence[str | None] | None,
    inputs: Sequence[Sequence[str] | None] | None,
) -> list[float]:
    """One reward's values for completion texts."""
    if name == "format":
        if schemas is None:
            raise ValueError("the format reward needs each row's schema")
        return format_reward(texts, schemas)
    answers = [extract_answer(text) or None for text in texts]  # an empty answer is none
    if name == "alignment":
        if alignment is None:
            raise ValueError("the alignment reward has a weight but no AlignmentScorer")
        return alignment.score(answers, references, inputs)
    if quality is None:
        raise ValueError("the quality reward has a weight but no quality scorer")
    return _quality_values(answers, quality)


def reward_functions(
    weights: dict[str, float],
    *,
    alignment: AlignmentScorer | None,
    quality: QualityScorer | None,
    schema: str | None = None,
) -> tuple[list[RewardFunction], list[float]]:
    """TRL GRPO reward functions and their weights (for ``GRPOConfig.reward_weights``).

    One function per reward with a positive weight, in the order quality, alignment,
    format, each named after its reward so TRL logs ``rewards/<name>/mean``. They read the
    dataset columns TRL passes as keyword lists: ``reference`` (optional), ``inputs`` and
    ``schema`` (``schema`` here is the fallback when there is no such column); any other
    keyword (``trainer_state``, ``completion_ids``, ``log_metric``...) is ignored.
    """
    names = _active(weights)
    if "alignment" in names and alignment is None:
        raise ValueError("the alignment reward has a weight but no AlignmentScorer")
    if "quality" in names and quality is None:
        raise ValueError("the quality reward has a weight but no quality scorer")
    functions: list[RewardFunction] = [
        TRLReward(name, alignment=alignment, quality=quality, schema=schema) for name in names
    ]
    return functions, [float(weights[name]) for name in names]


class TRLReward:
    """One LM-mixup reward with TRL's reward-function signature, ``f(prompts, completions,
    **columns) -> list[float]``; a callable object rather than a closure so it pickles
    (TRL's async rollout workers need that) when its scorers do."""

    def __init__(
        self,
        name: str,
        *,
        alignment: AlignmentScorer | None = None,
        quality: QualityScorer | None = None,
        schema: str | None = None,
    ) -> None:
        if name not in REWARDS:
            raise ValueError(f"unknown reward {name!r} (known rewards: {', '.join(REWARDS)})")
        self.name = self.__name__ = name
        self.alignment = alignment
        self.quality = quality
        self.schema = schema

    def __call__(
        self, prompts: list[Any], completions: list[Completion], **kwargs: Any
    ) -> list[float]:
        return _compute(
            self.name,
            [completion_text(c) for c in completions],
            schemas=kwargs.get("schema", self.schema),
            alignment=self.alignment,
            quality=self.quality,
            references=kwargs.get("reference"),
            inputs=kwargs.get("inputs"),
        )

    def __repr__(self) -> str:
        return f"TRLReward({self.name!r})"


def weighted_score(scores: dict[str, list[float]], weights: dict[str, float]) -> list[float]:
    """Per completion, the sum of ``weight * reward`` over the rewards with a positive weight."""
    names = _active(weights)
    missing = [name for name in names if name not in scores]
    if missing:
        raise ValueError(f"no values for weighted reward {', '.join(missing)}")
    lengths = {len(scores[name]) for name in names}
    if len(lengths) > 1:
        raise ValueError(f"rewards have different lengths: {sorted(lengths)}")
    count = lengths.pop() if lengths else 0
    return [sum(weights[name] * float(scores[name][i]) for name in names) for i in range(count)]


def score_completions(
    completions: Sequence[Completion],
    *,
    schema: Sequence[str] | str,
    weights: dict[str, float],
    alignment: AlignmentScorer | None,
    quality: QualityScorer | None,
    references: Sequence[str | None] | None = None,
    inputs: Sequence[Sequence[str] | None] | None = None,
) -> dict[str, list[float]]:
    """Each weighted reward's values for ``completions`` plus their weighted ``total``;
    rewards of weight 0 are not computed."""
    texts = [completion_text(c) for c in completions]
    scores = {
        name: _compute(
            name,
            texts,
            schemas=schema,
            alignment=alignment,
            quality=quality,
            references=references,
            inputs=inputs,
        )
        for name in _active(weights)
    }
    scores["total"] = weighted_score(scores, weights)
    return scores
