"""LM-mixup rewards: format, alignment, the quality scorers and the TRL glue."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from augtool.core.generation.base import LLM
from augtool.core.generation.jobs import derive_seed
from augtool.core.generation.params import Failure, GenerationParams
from augtool.core.registry import UnknownNameError
from augtool.methods.lmmixup.config import QUALITY_SCORERS
from augtool.methods.lmmixup.rating import compress_overall, first_json_object
from augtool.methods.lmmixup.rewards import (
    QUALITY,
    AlignmentScorer,
    JudgeQuality,
    KNNQuality,
    QualityScorer,
    format_reward,
    load_quality,
    rating_reward,
    reward_functions,
    score_completions,
    weighted_score,
)

QA = "Q: What is 2 + 3?\nA: 5"


def unit(degrees: float) -> list[float]:
    """A 2-D unit vector at an angle."""
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


class FakeEmbed:
    """Texts -> hand-made vectors; records every call."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


# ---------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (QA, 0.0),  # no tags
        ("Sure, here it is.", 0.0),
        (f"Sure! <answer>{QA}</answer>", 0.5),  # fields fine, text outside the tags
        (f"<answer>{QA}</answer> Hope this helps.", 0.5),
        ("<answer>just a sentence with no fields</answer>", 0.5),  # tags, unparseable
        ("<answer>Q: What is 2 + 3?</answer>", 0.5),  # required field missing
        ("<answer>A: 5\nQ: What is 2 + 3?</answer>", 0.5),  # fields out of order
        (f"<think>Both ask the sum.</think>\n<answer>\n{QA}\n</answer>\n", 1.0),
        (f"  <answer>{QA}</answer>", 1.0),  # <think> is optional
        ("oops <answer>no fields</answer>", 0.0),
        (f"<think>unfinished <answer>{QA}", 0.0),
    ],
)
def test_format_reward_values(completion: str, expected: float) -> None:
    assert format_reward([completion], "qa") == [expected]


def test_format_reward_per_row_schema_and_chat_completions() -> None:
    instruction = "<answer>Instruction: Add the numbers.\nOutput: 5</answer>"  # no optional input
    no_output = "<answer>Instruction: Add the numbers.\nInput: 2, 3</answer>"
    chat = [{"role": "assistant", "content": f"<answer>{QA}</answer>"}]
    assert format_reward([instruction, no_output, chat], ["instruction", "instruction", "qa"]) == [
        1.0,
        0.5,
        1.0,
    ]
    # The same answer judged against the other schema only keeps the layout half-point.
    assert format_reward([instruction], "qa") == [0.5]
    with pytest.raises(ValueError, match="2 values for 1 completions"):
        format_reward([QA], ["qa", "qa"])
    with pytest.raises(ValueError, match="unknown schema 'yesno'"):
        format_reward([QA], "yesno")


# ------------------------------------------------------------------------- alignment

ALIGN_VECTORS = {
    "reference": [1.0, 0.0, 0.0],
    "close answer": [0.9, math.sqrt(1 - 0.81), 0.0],  # cosine 0.9 to the reference
    "far answer": [0.0, 3.0, 0.0],  # orthogonal, not unit length
    "input one": [2.0, 0.0, 0.0],
    "input two": [0.0, 0.0, 1.0],
    "opposite input": [-1.0, 0.0, 0.0],
}


def test_alignment_reference_threshold_in_one_embed_call() -> None:
    embed = FakeEmbed(ALIGN_VECTORS)
    scorer = AlignmentScorer(embed=embed, threshold=0.8)
    scores = scorer.score(
        ["close answer", "far answer", None], ["reference", "reference", "reference"], None
    )
    assert scores == [1.0, 0.0, 0.0]
    assert len(embed.calls) == 1
    assert sorted(embed.calls[0]) == ["close answer", "far answer", "reference"]  # deduplicated
    assert AlignmentScorer(embed=embed, threshold=0.95).score(["close answer"], ["reference"]) == [
        0.0
    ]


def test_alignment_coverage_term() -> None:
    embed = FakeEmbed(ALIGN_VECTORS)
    inputs = [["input one", "input two"], ["input one", "opposite input"]]
    mixed = AlignmentScorer(embed=embed, coverage_weight=0.5)
    # coverage of "close answer": mean(0.9, 0.0) = 0.45; of "far answer": mean(0, max(0, 0)) = 0.
    scores = mixed.score(["close answer", "far answer"], ["reference", "reference"], inputs)
    assert scores == pytest.approx([0.5 * 1.0 + 0.5 * 0.45, 0.0])
    assert len(embed.calls) == 1
    # Negative cosines count as 0: "close answer" vs the opposite input is -0.9.
    assert mixed.score(["close answer"], ["reference"], [["input one", "opposite input"]]) == (
        pytest.approx([0.5 + 0.5 * 0.45])
    )
    # With no reference, coverage alone (whatever the weight).
    for weight in (0.0, 0.5):
        scorer = AlignmentScorer(embed=embed, coverage_weight=weight)
        assert scorer.score(["close answer", None], None, [inputs[0], inputs[0]]) == pytest.approx(
            [0.45, 0.0]
        )
    # A missing or blank reference in one row means coverage alone for that row.
    assert mixed.score(
        ["close answer", "close answer", "close answer"],
        [None, "  ", "reference"],
        [inputs[0]] * 3,
    ) == pytest.approx([0.45, 0.45, 0.725])
    # A row with a reference but no inputs keeps the reference term alone.
    assert mixed.score(["close answer"], ["reference"], [[]]) == [1.0]


def test_alignment_errors() -> None:
    embed = FakeEmbed(ALIGN_VECTORS)
    with pytest.raises(ValueError, match="reference or the group's inputs"):
        AlignmentScorer(embed=embed).score(["close answer"], None, None)
    with pytest.raises(ValueError, match="2 answers but 1 references"):
        AlignmentScorer(embed=embed).score(["close answer", "far answer"], ["reference"])
    with pytest.raises(ValueError, match="coverage_weight"):
        AlignmentScorer(embed=embed, coverage_weight=1.5)
    with pytest.raises(ValueError, match="needs an encoder or an embed"):
        AlignmentScorer()


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model_store: dict[str, Path]):
    from augtool.core.encoders import load_encoder

    return load_encoder(str(tiny_model_store["st"]), device="cpu", cache=False)


def test_alignment_with_real_encoder(tiny_encoder) -> None:
    scorer = AlignmentScorer(tiny_encoder, threshold=0.8)
    assert scorer.score([QA], [QA]) == [1.0]
    both = AlignmentScorer(tiny_encoder, coverage_weight=0.5)
    score = both.score([QA], [QA], [[QA, "Q: What is 2 + 2?\nA: 4"]])[0]
    assert 0.75 <= score <= 1.0 + 1e-6


# ------------------------------------------------------------------------------- knn


def test_rating_reward_bands_follow_the_public_code() -> None:
    # llm_mixup_bayes.py: >= 4 -> 1.0, == 3 -> 0.3, else 0 (3.999 gets 0 there too).
    assert [rating_reward(r) for r in (5, 4.0, 3.999, 3.5, 3.0, 3, 2.999, 0)] == [
        1.0,
        1.0,
        0.0,
        0.0,
        0.3,
        0.3,
        0.0,
        0.0,
    ]


def rated_bank() -> tuple[np.ndarray, list[int]]:
    """Two items rated 5 near 0 degrees, two rated 0 near 90 degrees."""
    return np.array([unit(0), unit(10), unit(90), unit(80)]), [5, 5, 0, 0]


def test_knn_bayes_posterior_by_hand() -> None:
    bank, ratings = rated_bank()
    knn = KNNQuality(k=2, k_t=1, embeddings=bank, ratings=ratings)
    assert knn.classes.tolist() == [0, 5]
    assert knn.prior == pytest.approx([0.5, 0.5])
    # Each item's one nearest other item has its own rating: counts 2 (+0.01 smoothing).
    assert knn.transition == pytest.approx(np.array([[2.01, 0.01], [0.01, 2.01]]) / 2.02)
    # Two neighbours rated 5: posterior odds 0:5 are (0.01 / 2.01) ** 2.
    odds = (0.01 / 2.01) ** 2
    expected = knn.expected_ratings(np.array([unit(3), unit(87)]))
    assert expected == pytest.approx([5 / (1 + odds), 5 * odds / (1 + odds)])
    assert knn.score_embeddings(np.array([unit(3), unit(87)])) == [1.0, 0.0]


def test_knn_transition_excludes_the_item_itself() -> None:
    # unit(0) rated 5; unit(20) and unit(90) rated 0. Nearest *other* items: 0 -> 20 (5 -> 0),
    # 20 -> 0 (0 -> 5), 90 -> 20 (0 -> 0).
    bank = np.array([unit(0), unit(20), unit(90)])
    knn = KNNQuality(k=1, k_t=1, embeddings=bank, ratings=[5, 0, 0])
    assert knn.prior == pytest.approx([2 / 3, 1 / 3])
    assert knn.transition == pytest.approx(
        np.array([[1.01 / 2.02, 1.01 / 2.02], [1.01 / 1.02, 0.01 / 1.02]])
    )


def test_knn_middle_rating_and_text_scoring() -> None:
    vectors = {
        "fine sample": unit(2),
        "fine sample 2": unit(8),
        "great sample": unit(88),
        "great sample 2": unit(82),
        "fine-looking answer": unit(5),
        "great-looking answer": unit(85),
    }
    embed = FakeEmbed(vectors)
    bank = ["fine sample", "fine sample 2", "great sample", "great sample 2"]
    knn = KNNQuality(embed=embed, k=2, k_t=1).fit(bank, ratings=[3, 3, 5, 5])
    # Near the items rated 3 the expected rating is just above 3, which the public rule
    # scores 0 (only exactly 3 gets 0.3); near those rated 5 -> 1.0.
    expected = knn.expected_ratings(embed(["fine-looking answer"]))
    assert 3.0 < expected[0] < 3.1
    assert knn.score(["fine-looking answer", "great-looking answer"]) == [0.0, 1.0]
    assert embed.calls[0] == bank
    assert embed.calls[-1] == ["fine-looking answer", "great-looking answer"]
    with pytest.raises(ValueError, match="not an integer 0-5"):
        KNNQuality(embed=embed).fit(bank, ratings=[3, 3, 5, 7])
    with pytest.raises(ValueError, match="3 ratings for a bank of 4"):
        KNNQuality(embed=embed).fit(bank, ratings=[3, 3, 5])


def test_knn_unrated_bank_is_mean_cosine() -> None:
    bank = np.array([unit(0), unit(90), unit(60)])
    knn = KNNQuality(k=2, embeddings=bank)
    # Nearest two of unit(0): itself (1.0) and unit(60) (0.5).
    assert knn.score_embeddings(np.array([unit(0)])) == pytest.approx([0.75])
    assert KNNQuality(k=1, embeddings=bank).score_embeddings(np.array([unit(75)])) == (
        pytest.approx([math.cos(math.radians(15))])
    )
    # Negative similarity clips to 0.
    lone = KNNQuality(k=4, embeddings=np.array([unit(0)]))
    assert lone.score_embeddings(np.array([unit(180)])) == [0.0]
    with pytest.raises(RuntimeError, match="call fit"):
        KNNQuality(embed=FakeEmbed({})).score_embeddings(np.array([unit(0)]))


def test_knn_with_real_encoder(tiny_encoder) -> None:
    bank = [
        "Q: What is photosynthesis?\nA: Plants turning light into chemical energy.",
        "Q: Why is the sky blue?\nA: Air scatters blue light more than red light.",
        "Q: What is 12 times 12?\nA: 144",
    ]
    unrated = KNNQuality(tiny_encoder, k=1, bank_texts=bank)
    assert unrated.score([bank[1]]) == pytest.approx([1.0], abs=1e-5)
    assert 0.0 <= unrated.score(["completely unrelated words"])[0] <= 1.0
    rated = KNNQuality(tiny_encoder, k=2, bank_texts=bank, ratings=[5, 5, 5])
    assert rated.score([bank[0], "anything at all"]) == [1.0, 1.0]
    low = KNNQuality(tiny_encoder, k=2, bank_texts=bank, ratings=[1, 0, 1])
    assert low.score([bank[0]]) == [0.0]


# ----------------------------------------------------------------------------- judge


class CannedJudge(LLM):
    """Replies by the sample text found in the prompt; records every batch."""

    scheme = "canned"

    def __init__(self, replies: dict[str, str | Failure]) -> None:
        super().__init__("canned-judge", cache=False)
        self.replies = replies
        self.batches: list[tuple[list, GenerationParams, list[int]]] = []

    def generate_batch(self, prompts, params, seeds):
        self.batches.append((prompts, params, seeds))
        out = []
        for prompt in prompts:
            user = prompt[-1]["content"]
            out.append(next(r for text, r in self.replies.items() if f"\n{text}\n" in user))
        return out


def rating(overall: int) -> str:
    return f'{{"Rarity": 5, "Complexity": 6, "Informativeness": 7, "Overall rating": {overall}}}'


JUDGE_REPLIES: dict[str, str | Failure] = {
    "sample nine": rating(9),
    "sample eight fenced": f"```json\n{rating(8)}\n```",
    "sample seven chatty": f"Sure! Here is my rating: {rating(7)} Let me know.",
    "sample six": rating(6),
    "sample two": rating(2),
    "sample twelve": rating(12),
    "sample garbage": "I would rather not rate this one.",
    "sample no overall": '{"Rarity": 9}',
    "sample failed": Failure("timeout after 5 retries"),
}


def test_compress_overall_mapping() -> None:
    assert [compress_overall(v) for v in range(1, 11)] == [0, 0, 0, 0, 1, 2, 3, 4, 5, 5]
    assert first_json_object('x {bad json} then {"a": 1} {"b": 2}') == {"a": 1}
    assert first_json_object("no object") is None


def test_judge_scores_compression_and_failures() -> None:
    llm = CannedJudge(JUDGE_REPLIES)
    judge = JudgeQuality(llm, seed=7)
    texts = list(JUDGE_REPLIES) + ["sample nine"]  # a repeated text is asked once
    scores = judge.score(texts)
    # an overall rating of 12 is outside the rubric's 1-10: unparsed, never guessed
    assert scores == [1.0, 1.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert (judge.rated, judge.unparsed, judge.failed) == (5, 3, 1)
    prompts = [p for batch in llm.batches for p in batch[0]]
    assert len(prompts) == len(JUDGE_REPLIES)
    params = llm.batches[0][1]
    assert (params.max_new_tokens, params.temperature) == (64, 0.0)
    system, user = prompts[0]
    assert system["role"] == "system" and user["role"] == "user"
    for word in ("Rarity", "Complexity", "Informativeness", "Overall rating", "JSON"):
        assert word in system["content"]
    assert "sample nine" in user["content"]
    seeds = [s for batch in llm.batches for s in batch[2]]
    assert seeds == [derive_seed(7, "lmmixup-judge", t) for t in JUDGE_REPLIES]
    # Deterministic: a fresh judge asks with the same seeds.
    again = CannedJudge(JUDGE_REPLIES)
    JudgeQuality(again, seed=7).score(list(JUDGE_REPLIES))
    assert [s for batch in again.batches for s in batch[2]] == seeds
    assert judge.ratings(["sample seven chatty", "sample failed"]) == [3, None]


def test_quality_registry() -> None:
    assert QUALITY.names() == sorted(QUALITY_SCORERS)
    judge = load_quality("judge", llm=CannedJudge(JUDGE_REPLIES))
    assert isinstance(judge, JudgeQuality)
    knn = load_quality("knn", k=1, embeddings=np.array([unit(0)]))
    assert isinstance(knn, KNNQuality) and knn.score_embeddings(np.array([unit(0)])) == [1.0]
    with pytest.raises(
        UnknownNameError, match=r"unknown quality scorer 'bleu' \(known: cosine, judge, knn\)"
    ):
        load_quality("bleu")


# -------------------------------------------------------------------------- TRL glue


class LengthQuality(QualityScorer):
    """Quality = len(text) / 100; records what it was asked."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def score(self, texts: list[str]) -> list[float]:
        self.seen.extend(texts)
        return [len(t) / 100 for t in texts]


GOOD = "Q: What is 2 + 3?\nA: 5"
GLUE_VECTORS = {GOOD: [1.0, 0.0], "Q: Sum?\nA: 5": [1.0, 0.0], "noise words": [0.0, 1.0]}


def test_reward_functions_names_order_and_weights() -> None:
    align = AlignmentScorer(embed=FakeEmbed(GLUE_VECTORS))
    quality = LengthQuality()
    funcs, weights = reward_functions(
        {"format": 0.1, "alignment": 0.2, "quality": 0.7}, alignment=align, quality=quality
    )
    assert [f.__name__ for f in funcs] == ["quality", "alignment", "format"]
    assert weights == [0.7, 0.2, 0.1]
    funcs, weights = reward_functions(
        {"quality": 0.0, "alignment": 0.0, "format": 1.0}, alignment=None, quality=None
    )
    assert [f.__name__ for f in funcs] == ["format"] and weights == [1.0]
    with pytest.raises(ValueError, match="unknown reward 'length'"):
        reward_functions({"length": 1.0}, alignment=None, quality=None)
    with pytest.raises(ValueError, match="quality reward has a weight"):
        reward_functions({"quality": 1.0}, alignment=align, quality=None)
    with pytest.raises(ValueError, match="alignment reward has a weight"):
        reward_functions({"alignment": 1.0}, alignment=None, quality=quality)


def test_reward_functions_with_trl_keywords() -> None:
    quality = LengthQuality()
    align = AlignmentScorer(embed=FakeEmbed(GLUE_VECTORS))
    funcs, _ = reward_functions(
        {"quality": 0.7, "alignment": 0.2, "format": 0.1}, alignment=align, quality=quality
    )
    completions = [
        [{"role": "assistant", "content": f"<think>sum</think><answer>{GOOD}</answer>"}],
        [{"role": "assistant", "content": "noise words, no tags"}],
        [{"role": "assistant", "content": "<answer>noise words</answer>"}],
    ]
    prompts = [[{"role": "user", "content": "merge"}]] * 3
    logged: list = []
    columns = {
        "reference": ["Q: Sum?\nA: 5"] * 3,
        "inputs": [["noise words"], ["noise words"], ["noise words"]],
        "schema": ["qa"] * 3,
        "completion_ids": [[1, 2], [3], [4]],
        "trainer_state": object(),
        "log_extra": lambda *a, **k: logged.append(a),
        "log_metric": lambda *a, **k: logged.append(a),
    }
    values = {f.__name__: f(prompts=prompts, completions=completions, **columns) for f in funcs}
    assert values["quality"] == pytest.approx([len(GOOD) / 100, 0.0, len("noise words") / 100])
    assert quality.seen == [GOOD, "noise words"]  # only extracted answers are rated
    assert values["alignment"] == [1.0, 0.0, 0.0]
    assert values["format"] == [1.0, 0.0, 0.5]
    # Plain-text completions, and the schema given once when the data has no such column.
    fmt = reward_functions({"format": 1.0}, alignment=None, quality=None, schema="qa")[0][0]
    assert fmt(["p"], [f"<answer>{GOOD}</answer>"], trainer_state=None) == [1.0]
    assert pickle.loads(pickle.dumps(fmt))(["p"], ["nothing"]) == [0.0]


def test_weighted_score_and_score_completions() -> None:
    weights = {"quality": 0.7, "alignment": 0.2, "format": 0.1}
    scores = {"quality": [1.0, 0.3], "alignment": [1.0, 0.0], "format": [0.5, 1.0]}
    assert weighted_score(scores, weights) == pytest.approx([0.7 + 0.2 + 0.05, 0.21 + 0.1])
    assert weighted_score(scores, {"format": 2.0, "quality": 0.0}) == pytest.approx([1.0, 2.0])
    with pytest.raises(ValueError, match="no values for weighted reward alignment"):
        weighted_score({"quality": [1.0]}, weights)

    quality = LengthQuality()
    result = score_completions(
        [f"<answer>{GOOD}</answer>", "no answer"],
        schema="qa",
        weights={"quality": 0.0, "alignment": 0.5, "format": 0.5},
        alignment=AlignmentScorer(embed=FakeEmbed(GLUE_VECTORS)),
        quality=quality,
        inputs=[["Q: Sum?\nA: 5", "noise words"], ["noise words"]],
    )
    assert set(result) == {"alignment", "format", "total"}
    assert quality.seen == []  # weight 0: never computed
    assert result["alignment"] == pytest.approx([0.5, 0.0])  # coverage: mean(1, 0)
    assert result["format"] == [1.0, 0.0]
    assert result["total"] == pytest.approx([0.75, 0.0])
