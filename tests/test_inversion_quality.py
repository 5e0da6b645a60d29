"""The reconstruction scores of benchmarks/inversion_quality.py on sentences whose scores
are known: identical text, a case/spacing variant, a disjoint text, a partial overlap."""

from __future__ import annotations

import numpy as np
import pytest

from augtool.core.inversion.quality import (
    corpus_bleu,
    normalise,
    reconstruction_scores,
    token_f1,
    tokens,
)


def test_normalising_undoes_ptb_escapes_and_folds_space() -> None:
    assert normalise("a  well @-@ known  1 @,@ 000 rule") == "a well-known 1,000 rule"


def test_decoded_uncased_wordpiece_text_matches_its_original() -> None:
    original = "The U.N. met in Geneva, Switzerland."
    decoded = "the u. n. met in geneva , switzerland ."
    assert tokens("The cat sat.") == ["the", "cat", "sat", "."]
    assert token_f1("The cat sat.", "the cat sat .") == 1.0
    assert corpus_bleu(["The cat sat on the mat ."], ["the cat sat on the mat."]) == pytest.approx(
        100
    )
    assert token_f1(original, decoded) == 1.0  # case and spacing are not charged
    assert 0 < token_f1(original, decoded.replace("geneva", "paris")) < 1


def test_token_f1_of_a_partial_overlap() -> None:
    # 2 of 3 hypothesis tokens in a 4-token reference: P = 2/3, R = 2/4.
    assert token_f1("a b c d", "a b x") == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert token_f1("a b", "c d") == 0.0
    assert token_f1("", "") == 1.0


def test_scores_of_a_perfect_and_a_wrong_inversion() -> None:
    refs = ["the match ended in a draw .", "shares fell sharply on monday ."]
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0]])
    perfect = reconstruction_scores(refs, refs, embeddings, embeddings)
    assert perfect == {"n": 2, "bleu": 100.0, "token_f1": 1.0, "exact_match": 1.0, "cosine": 1.0}
    wrong = reconstruction_scores(
        refs, ["cats like milk", "dogs bark"], embeddings, np.array([[0.0, 1.0], [1.0, 0.0]])
    )
    assert wrong["bleu"] == 0.0 and wrong["token_f1"] == 0.0 and wrong["exact_match"] == 0.0
    assert wrong["cosine"] == 0.0
    half = reconstruction_scores(refs, [refs[0], "dogs bark"], embeddings, embeddings)
    assert half["exact_match"] == 0.5 and half["token_f1"] == 0.5


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="1 hypotheses for 2 references"):
        reconstruction_scores(["a", "b"], ["a"], np.ones((2, 2)), np.ones((1, 2)))
