"""``augtool pinr`` end to end: allocation, the baselines, condense with a tiny decoder
and a tiny refining LLM, evaluate, and the bad-input cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl

from augtool.errors import OptionError
from augtool.methods.pinr.allocate import allocate
from augtool.methods.pinr.refine import cosine_to


def test_allocation_is_proportional_even_and_checked() -> None:
    counts = {"a": 50, "b": 30, "c": 20}
    assert allocate(counts, 10) == {"a": 5, "b": 3, "c": 2}
    assert allocate(counts, 9, even=True) == {"a": 3, "b": 3, "c": 3}
    assert sum(allocate({"a": 97, "b": 2, "c": 1}, 10).values()) == 10
    assert allocate({"a": 97, "b": 2, "c": 1}, 10)["c"] == 1  # at least one each
    assert allocate({"a": 2, "b": 8}, 10, even=True) == {"a": 2, "b": 8}  # capped by size
    with pytest.raises(OptionError, match="--m: is 2 but class-wise"):
        allocate(counts, 2)
    with pytest.raises(OptionError, match="--m: is 101 but the data has only 100 rows"):
        allocate(counts, 101)


def test_cosine_to() -> None:
    vectors = np.array([[1.0, 0], [0, 2], [-1, 0]])
    assert np.allclose(cosine_to(vectors, np.array([2.0, 0])), [1, 0, -1])


def test_embedding_map_samples_large_groups_and_draws_an_empty_one(tmp_path, monkeypatch) -> None:
    from augtool.core import plotting

    monkeypatch.setattr(plotting, "MAX_POINTS", 10)
    vectors = np.random.default_rng(0).normal(size=(30, 5))
    labels = ["a", "b", None] * 10
    drawn = plotting.embedding_map(vectors, [], labels, [], tmp_path / "m.svg", title="t")
    assert drawn["points"] == {"original": 10, "generated": 0}
    assert drawn["rows"] == {"original": 30, "generated": 0}
    page = (tmp_path / "m.svg").read_text()
    assert "10 of 30, 0 of 0 shown" in page and "(no label)" in page


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rows = read_jsonl(EXAMPLES / "intents-train.jsonl")
    return write_jsonl(tmp_path_factory.mktemp("pinr") / "train.jsonl", rows)


def test_random_baseline_and_bad_m(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "random.jsonl"
    result = run_cli("pinr", "condense", corpus, "--m", 8, "--method", "random", "-o", out)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    originals = {r["id"]: r for r in read_jsonl(corpus)}
    assert len(rows) == 8 and all(originals[r["id"]]["text"] == r["text"] for r in rows)
    labels = [r["label"] for r in rows]
    assert {labels.count(label) for label in set(labels)} == {2}  # 24 rows per label
    again = tmp_path / "again.jsonl"
    run_cli("pinr", "condense", corpus, "--m", 8, "--method", "random", "-o", again)
    assert read_jsonl(again) == rows  # seeded
    meta = json.loads(out.with_name("random.jsonl.meta.json").read_text())
    assert meta["counts"]["per_label"] == {
        "account": 2,
        "billing": 2,
        "shipping": 2,
        "technical": 2,
    }

    for m, fragment in ((0, "--m: must be at least 1"), (500, "only 96 rows"), (3, "class-wise")):
        result = run_cli(
            "pinr", "condense", corpus, "--m", m, "--method", "random", "-o", tmp_path / "x.jsonl"
        )
        assert_one_line_error(result, fragment)
    assert not (tmp_path / "x.jsonl").exists()
    result = run_cli("pinr", "condense", corpus, "--m", 8, "-o", tmp_path / "y.jsonl")
    assert_one_line_error(result, "--decoder")


def test_mgd3_picks_the_real_row_nearest_each_mode() -> None:
    from augtool.data.records import Record
    from augtool.methods.pinr.condense import mode_rows
    from augtool.methods.pinr.config import CondenseConfig

    rng = np.random.default_rng(0)
    modes = np.eye(4)[:3] * 5  # three well-separated modes, sizes 6, 4 and 2
    sizes = (6, 4, 2)
    points = np.concatenate(
        [mode + rng.normal(scale=0.1, size=(n, 4)) for mode, n in zip(modes, sizes, strict=True)]
    )
    owner = np.repeat([0, 1, 2], sizes)
    records = [Record(id=f"r{i}", text=f"text {i}", label="x") for i in range(len(points))]
    rows = mode_rows(records, points, CondenseConfig(m=3, method="mgd3"))
    picked = [int(r.id[1:]) for r in rows]
    assert sorted(owner[picked].tolist()) == [0, 1, 2]  # one row from every mode
    assert [r.aug["mode_size"] for r in rows] == [6, 4, 2]  # largest mode first
    for row, index in zip(rows, picked, strict=True):
        members = np.flatnonzero(owner == owner[index])
        centre = points[members].mean(axis=0)
        unit = points[members] / np.linalg.norm(points[members], axis=1, keepdims=True)
        assert index == members[np.argmax(unit @ centre)]  # the member nearest the centre
        assert row.text == f"text {index}" and row.aug["method"] == "mgd3-mode-selection"


def test_mgd3_through_the_cli(corpus: Path, tiny_model_store, tmp_path: Path) -> None:
    out = tmp_path / "mgd3.jsonl"
    result = run_cli(
        "pinr",
        "condense",
        corpus,
        "--m",
        8,
        "--method",
        "mgd3",
        "--encoder",
        tiny_model_store["st"],
        "-o",
        out,
        "--plot",
        tmp_path / "mgd3.html",
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    originals = {r["id"]: r for r in read_jsonl(corpus)}
    assert len({r["id"] for r in rows}) == 8
    assert all(originals[r["id"]]["text"] == r["text"] for r in rows)
    labels = [r["label"] for r in rows]
    assert {labels.count(label) for label in set(labels)} == {2}
    meta = json.loads(out.with_name("mgd3.jsonl.meta.json").read_text())
    assert meta["models"]["encoder"]["name"] == str(tiny_model_store["st"])
    # --plot: the original and the condensed rows in the encoder's space, by label
    page = (tmp_path / "mgd3.html").read_text()
    for label in ("account", "billing", "shipping", "technical"):
        assert f'"name":"original: {label}"' in page
        assert f'"name":"condensed: {label}"' in page
    plot = meta["plot"]
    assert plot["path"] == str(tmp_path / "mgd3.html")
    assert plot["points"] == {"original": 96, "generated": 8}
    assert plot["legend"] == {"original": "original", "generated": "condensed"}


def test_random_condense_plot_and_bad_plot_suffix(
    corpus: Path, tiny_model_store, tmp_path: Path
) -> None:
    common = ("--m", 8, "--method", "random", "--encoder", tiny_model_store["st"])
    out, plot = tmp_path / "random.jsonl", tmp_path / "maps" / "random.png"
    result = run_cli("pinr", "condense", corpus, *common, "-o", out, "--plot", plot)
    assert result.exit_code == 0, result.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    meta = json.loads(out.with_name("random.jsonl.meta.json").read_text())
    assert meta["plot"]["points"] == {"original": 96, "generated": 8}
    assert meta["models"] == {}  # the plot's encoder is no model of the random baseline

    bad = tmp_path / "bad.jsonl"
    for name, fragment in (("map.bmp", "'.bmp' is not a plot format"), ("map", "no suffix")):
        result = run_cli("pinr", "condense", corpus, *common, "-o", bad, "--plot", tmp_path / name)
        assert_one_line_error(result, "--plot", fragment)
    assert not bad.exists()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """16 rows, 4 per label, for the decoder and condense tests."""
    rows = read_jsonl(EXAMPLES / "intents-train.jsonl")
    picked = [
        r
        for label in ("account", "billing", "shipping", "technical")
        for r in [x for x in rows if x["label"] == label][:4]
    ]
    return write_jsonl(tmp_path_factory.mktemp("pinr-small") / "small.jsonl", picked)


@pytest.fixture(scope="module")
def decoder(small: Path, tiny_model_store, tmp_path_factory, one_thread) -> Path:
    from tiny_models import build_tiny_t5

    root = tmp_path_factory.mktemp("pinr-decoder")
    t5 = build_tiny_t5(root / "t5")
    out = root / "decoder"
    result = run_cli(
        "pinr",
        "train-decoder",
        small,
        "-o",
        out,
        "--seq2seq",
        t5,
        "--encoder",
        tiny_model_store["st"],
        "--epochs",
        120,
        "--batch-size",
        16,
        "--lr",
        1e-2,
        "--num-tokens",
        8,
        "--max-length",
        32,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    assert (out / "meta.json").is_file()
    return out


def test_condense_refine_and_evaluate_through_the_cli(
    small: Path, decoder: Path, tiny_model_store, tiny_llama: Path, tmp_path: Path, one_thread
) -> None:
    out = tmp_path / "pinr.jsonl"
    common = (
        "--encoder",
        tiny_model_store["st"],
        "--decoder",
        decoder,
        "--device",
        "cpu",
        "--components",
        2,
        "--iterations",
        60,
    )
    result = run_cli(
        "pinr",
        "condense",
        small,
        "--m",
        4,
        "-o",
        out,
        *common,
        "--refine-llm",
        f"hf:{tiny_llama}",
        "--variants",
        2,
        "--max-new-tokens",
        16,
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert sorted(r["label"] for r in rows) == ["account", "billing", "shipping", "technical"]
    for row in rows:
        aug = row["aug"]
        assert aug["method"] == "pinr" and aug["refined"] and aug["L"] == 2
        assert (aug["K"], aug["T"]) == (1, 1)
        assert row["text"].strip() and aug["decoded"].strip()
        # Algorithm 1 with T = 1: round t=0 on the decoded text, round t=1 on the K = 1
        # kept variant; L + T*K*L = 4 requests; the output is round 1's closest variant
        assert [r["t"] for r in aug["rounds"]] == [0, 1] and aug["requests"] == 4
        assert [r["seeds"] for r in aug["rounds"]] == [1, 1]
        assert aug["rounds"][0]["kept"] == [max(aug["rounds"][0]["cosines"])]
        assert aug["cosine"] == max(aug["rounds"][1]["cosines"])
    meta = json.loads(out.with_name("pinr.jsonl.meta.json").read_text())
    assert meta["particles"]["account"]["m"] == 1 and "gmm" in meta["particles"]["account"]
    assert meta["models"]["refine_llm"]

    raw = tmp_path / "raw.jsonl"
    plot = tmp_path / "raw.png"
    result = run_cli(
        "pinr", "condense", small, "--m", 4, "-o", raw, *common, "--no-refine", "--plot", plot
    )
    assert result.exit_code == 0, result.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    meta = json.loads(raw.with_name("raw.jsonl.meta.json").read_text())
    assert meta["plot"]["points"] == {"original": 16, "generated": 4}
    unrefined = read_jsonl(raw)
    assert all(r["text"] == r["aug"]["decoded"] and not r["aug"]["refined"] for r in unrefined)
    assert [r["aug"]["decoded"] for r in unrefined] == [r["aug"]["decoded"] for r in rows]

    dallme = tmp_path / "dallme.jsonl"
    result = run_cli(
        "pinr", "condense", small, "--m", 4, "-o", dallme, *common, "--method", "dallme"
    )
    assert result.exit_code == 0, result.stderr
    assert {r["aug"]["method"] for r in read_jsonl(dallme)} == {"dallme"}

    metrics = tmp_path / "metrics.json"
    result = run_cli(
        "pinr",
        "evaluate",
        raw,
        "--reference",
        small,
        "-o",
        metrics,
        "--encoder",
        tiny_model_store["st"],
        "--mauve-seeds",
        2,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(metrics.read_text())
    assert {"fid", "kl", "tv", "wasserstein", "precision", "recall", "f1"} <= set(report)
    assert len(report["mauve"]["values"]) == 2 and 0 <= report["mauve"]["mean"] <= 1
    assert 0 <= report["leakage"]["unigram_mean"] <= 1 and len(report["leakage_rows"]) == 4
    same = run_cli(
        "pinr",
        "evaluate",
        small,
        "--reference",
        small,
        "--json",
        "--no-mauve",
        "--encoder",
        tiny_model_store["st"],
    )
    assert same.exit_code == 0, same.stderr
    ideal = json.loads(same.stdout)
    assert ideal["fid"] == pytest.approx(0, abs=1e-3) and ideal["precision"] == 1.0
    assert ideal["leakage"]["exact_copy_share"] == 1.0


def test_condense_errors(small: Path, decoder: Path, tiny_model_store, tmp_path: Path) -> None:
    result = run_cli(
        "pinr",
        "condense",
        small,
        "--m",
        4,
        "-o",
        tmp_path / "a.jsonl",
        "--decoder",
        decoder,
        "--encoder",
        tiny_model_store["hf"],
    )
    assert_one_line_error(result, "trained for encoder")
    result = run_cli(
        "pinr",
        "condense",
        small,
        "--m",
        4,
        "-o",
        tmp_path / "b.jsonl",
        "--decoder",
        decoder,
        "--encoder",
        tiny_model_store["st"],
        "--refine-llm",
        "openai:m",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--max-retries",
        0,
    )
    assert_one_line_error(result, "127.0.0.1:9")
    assert not (tmp_path / "b.jsonl").exists()
    result = run_cli(
        "pinr", "condense", small, "--m", 4, "-o", tmp_path / "c.jsonl", "--decoder", tmp_path
    )
    assert_one_line_error(result, str(tmp_path))


def test_a_prompt_prefix_reaches_training_condensing_and_scoring(
    small: Path, tiny_model_store, tiny_llama: Path, tmp_path: Path, monkeypatch, one_thread
) -> None:
    """psi(x) = encoder(prefix + x) everywhere: decoder training (and its corrector's
    hypotheses), the particles' data, the correction steps and the refinement scoring."""
    from tiny_models import build_tiny_t5

    from augtool.core.encoders.sentence_transformers import SentenceTransformerEncoder

    prefix = "Classify the support topic: "
    embedded: list[str] = []
    original = SentenceTransformerEncoder.encode_batch

    def spy(self, texts):
        embedded.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(SentenceTransformerEncoder, "encode_batch", spy)
    folder = tmp_path / "decoder"
    result = run_cli(
        "pinr",
        "train-decoder",
        small,
        "-o",
        folder,
        "--seq2seq",
        build_tiny_t5(tmp_path / "t5"),
        "--encoder",
        tiny_model_store["st"],
        "--prefix",
        prefix,
        "--epochs",
        2,
        "--correction-epochs",
        1,
        "--num-tokens",
        4,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    info = json.loads((folder / "augtool_decoder.json").read_text())
    assert info["encoder"]["prefix"] == prefix
    trained_on = len(embedded)
    assert trained_on > len(read_jsonl(small))  # the texts, then the corrector's hypotheses
    assert all(text.startswith(prefix) for text in embedded)

    embedded.clear()
    out = tmp_path / "pinr.jsonl"
    common = ("--encoder", tiny_model_store["st"], "--decoder", folder, "--device", "cpu")
    result = run_cli(
        "pinr",
        "condense",
        small,
        "--m",
        4,
        "-o",
        out,
        *common,
        "--iterations",
        20,
        "--components",
        1,
        "--correction-steps",
        1,
        "--refine-llm",
        f"hf:{tiny_llama}",
        "--variants",
        2,
        "--max-new-tokens",
        8,
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert len(rows) == 4
    # the data's vectors come from the cache filled by train-decoder (same prefix, same
    # fingerprint); the hypotheses being corrected and the LLM's variants were embedded now
    assert all(text.startswith(prefix) for text in embedded)
    seen = {t[len(prefix) :] for t in embedded}
    decoded = {r["aug"]["decoded"] for r in rows}
    assert decoded <= seen and {r["text"] for r in rows} <= seen
    assert seen - decoded - {r["text"] for r in read_jsonl(small)}  # variants were scored
    meta = json.loads(out.with_name("pinr.jsonl.meta.json").read_text())
    assert meta["models"]["encoder"]["prefix"] == prefix

    result = run_cli(
        "pinr", "condense", small, "--m", 4, "-o", tmp_path / "x.jsonl", *common, "--prefix", ""
    )
    assert_one_line_error(result, "trained with the prompt prefix", repr(prefix))
    assert not (tmp_path / "x.jsonl").exists()

    result = run_cli(
        "pinr",
        "evaluate",
        out,
        "--reference",
        small,
        "--json",
        "--no-mauve",
        "--encoder",
        tiny_model_store["st"],
        "--prefix",
        prefix,
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["encoder"]["prefix"] == prefix


def test_a_prefix_by_name_is_the_papers_task_prompt(corpus: Path, tiny_model_store, tmp_path):
    from augtool.core.generation.prompts import PINR_PREFIX_SOURCE, PINR_PREFIXES

    out = tmp_path / "mgd3.jsonl"
    result = run_cli(
        "pinr",
        "condense",
        corpus,
        "--m",
        4,
        "--method",
        "mgd3",
        "--prefix",
        "ag_news",
        "--encoder",
        tiny_model_store["st"],
        "-o",
        out,
    )
    assert result.exit_code == 0, result.stderr
    meta = json.loads(out.with_name("mgd3.jsonl.meta.json").read_text())
    text = PINR_PREFIXES["ag_news"] + " "  # joined to the text by one space
    assert meta["prefix"] == {"text": text, "name": "ag_news", "source": PINR_PREFIX_SOURCE}
    assert meta["models"]["encoder"]["prefix"] == text


# A small hand-written Q&A set (GSM8K's shape: question, answer with '#### N').
QA_ROWS = [
    ("Tom has 3 apples and buys 2 more. How many apples does he have?", "3 + 2 = 5\n#### 5"),
    ("A box holds 4 pens. How many pens are in 3 boxes?", "4 * 3 = 12\n#### 12"),
    ("Sara reads 10 pages a day. How many pages does she read in 6 days?", "10 * 6 = 60\n#### 60"),
    ("A bus has 20 seats and 7 are taken. How many are free?", "20 - 7 = 13\n#### 13"),
    ("Ben saves 5 dollars a week. How much does he save in 4 weeks?", "5 * 4 = 20\n#### 20"),
    ("There are 9 birds and 4 fly away. How many are left?", "9 - 4 = 5\n#### 5"),
    ("A cake is cut into 8 slices and 3 are eaten. How many remain?", "8 - 3 = 5\n#### 5"),
    ("Mia has 2 bags of 6 marbles. How many marbles does she have?", "2 * 6 = 12\n#### 12"),
]
QA = ("--question-field", "question", "--answer-field", "answer")


@pytest.fixture(scope="module")
def qa_file(tmp_path_factory) -> Path:
    rows = [{"id": f"qa-{i}", "question": q, "answer": a} for i, (q, a) in enumerate(QA_ROWS)]
    return write_jsonl(tmp_path_factory.mktemp("pinr-qa") / "qa.jsonl", rows)


def test_qa_rows_train_condense_refine_and_split_back(
    qa_file: Path, tiny_model_store, tmp_path: Path, monkeypatch, one_thread
) -> None:
    """Appendix A.1: 'question [SEP] answer' through decoder training, embedding,
    condensation and the GSM8K refinement prompt; the output rows are split back."""
    import re

    from test_pinr_augpe import FunctionStub
    from tiny_models import build_tiny_t5

    from augtool.core.encoders.sentence_transformers import SentenceTransformerEncoder
    from augtool.methods.pinr.qa import split_qa

    embedded: list[str] = []
    original = SentenceTransformerEncoder.encode_batch

    def spy(self, texts):
        embedded.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(SentenceTransformerEncoder, "encode_batch", spy)
    folder = tmp_path / "decoder"
    encoder = ("--encoder", tiny_model_store["st"], "--device", "cpu")
    result = run_cli(
        "pinr",
        "train-decoder",
        qa_file,
        "-o",
        folder,
        *QA,
        "--seq2seq",
        build_tiny_t5(tmp_path / "t5"),
        *encoder,
        "--epochs",
        40,
        "--batch-size",
        8,
        "--lr",
        1e-2,
        "--num-tokens",
        4,
        "--max-length",
        48,
    )
    assert result.exit_code == 0, result.stderr
    assert len(embedded) == len(QA_ROWS)  # the decoder learns to write the [SEP] pairs
    assert all(re.fullmatch(r".+ \[SEP\] .+", text, re.DOTALL) for text in embedded)
    assert f"{QA_ROWS[0][0]} [SEP] {QA_ROWS[0][1]}" in embedded

    def tutor(message: str, n: int) -> str:  # replies in the prompt's Q: ... A: ... format
        question, answer = re.search(r"Input Q: (.*) Input A: (.*)$", message, re.S).groups()
        return f"Q: *{question} v{n}* A: *{answer or 'no answer'}*"

    common = ("--decoder", folder, *encoder, "--no-class-wise", "--m", 2, "--iterations", 20)
    common = (*common, "--components", 1, *QA)
    out = tmp_path / "qa.jsonl"
    with FunctionStub(tutor) as stub:
        result = run_cli(
            "pinr",
            "condense",
            qa_file,
            *common,
            "--dataset-prompt",
            "gsm8k",
            "--refine-llm",
            "openai:stub",
            "--base-url",
            stub.base_url,
            "--variants",
            2,
            "-o",
            out,
        )
        sent = [r["body"]["messages"][-1]["content"] for r in stub.requests]
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert len(rows) == 2 and len(sent) == 2 * (2 + 1 * 1 * 2)  # L + T*K*L each
    assert all(s.startswith("You are a math tutor.") for s in sent)
    for row in rows:
        assert set(row) == {"id", "question", "answer", "aug"}
        aug = row["aug"]
        assert aug["sep_found"] and aug["requests"] == 4 and aug["prompt"] == "gsm8k"
        assert re.search(r" v[01] v[01]$", row["question"])  # a variant of a variant
        assert "[SEP]" not in row["question"] + row["answer"]
        question, answer, _ = split_qa(aug["decoded"])  # round t=0 saw the decoded pair
        assert sum(s.endswith(f"Input Q: {question} Input A: {answer}") for s in sent) == 2

    raw = tmp_path / "raw.jsonl"
    result = run_cli("pinr", "condense", qa_file, *common, "--no-refine", "-o", raw)
    assert result.exit_code == 0, result.stderr
    for row in read_jsonl(raw):
        question, answer, found = split_qa(row["aug"]["decoded"])
        assert (row["question"], row["answer"], row["aug"]["sep_found"]) == (
            question,
            answer,
            found,
        )

    subset = tmp_path / "random.jsonl"
    result = run_cli(
        "pinr", "condense", qa_file, "--m", 3, "--method", "random", "--no-class-wise", *QA,
        "-o", subset,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    originals = {f"qa-{i}": (q, a) for i, (q, a) in enumerate(QA_ROWS)}
    assert all(originals[r["id"]] == (r["question"], r["answer"]) for r in read_jsonl(subset))

    for condensed, copies in ((subset, 1.0), (out, 0.0)):  # pairs compared as joined texts
        result = run_cli(
            "pinr", "evaluate", condensed, "--reference", qa_file, *QA, "--json",
            "--no-mauve", "--encoder", tiny_model_store["st"],
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["leakage"]["exact_copy_share"] == copies


def test_qa_errors_are_one_line_before_any_model_loads(qa_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    random = ("pinr", "condense", qa_file, "--m", 2, "--method", "random", "-o", out)
    result = run_cli(*random, *QA)
    assert_one_line_error(result, "--class-wise", "--no-class-wise")
    result = run_cli(*random, "--question-field", "question", "--no-class-wise")
    assert_one_line_error(result, "--answer-field")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "question": "q?", "answer": "a"},
                                                {"id": "b", "question": "q2?"}])  # fmt: skip
    result = run_cli(
        "pinr", "condense", bad, "--m", 1, "--method", "random", "--no-class-wise", *QA, "-o", out
    )
    assert_one_line_error(result, f"{bad}:2", 'missing field "answer"')
    result = run_cli(*random, "--dataset-prompt", "gsm8k")
    assert_one_line_error(result, "--dataset-prompt", "gsm8k refines Q&A pairs")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Fix: Q: {question}")
    result = run_cli(
        "pinr", "condense", qa_file, "--m", 2, "--no-class-wise", *QA, "--decoder",
        tmp_path / "no-such-decoder", "--dataset-prompt", "gsm8k", "--prompt-file", prompt,
        "-o", out,
    )  # fmt: skip
    assert_one_line_error(result, "--prompt-file", "{answer}")
    assert not out.exists()


def test_particles_without_a_usable_variant_are_not_written_and_retried_on_rerun(
    small: Path, decoder: Path, tiny_model_store, tmp_path: Path, one_thread
) -> None:
    from test_pinr_augpe import FunctionStub

    broken = {"billing"}  # particles of this label get only empty replies the first time

    def answer(message: str, n: int) -> str:
        if any(f"(label: {label})" in message for label in broken):
            return "   "
        return f"variant {n} of: {message.rsplit('Text: ', 1)[1]}"

    out = tmp_path / "pinr.jsonl"
    args = (
        "pinr", "condense", small, "--m", 4, "--decoder", decoder, "--encoder",
        tiny_model_store["st"], "--device", "cpu", "--components", 1, "--iterations", 20,
        "--variants", 2, "--rounds", 0, "--concurrency", 1, "-o", out,
    )  # fmt: skip
    with FunctionStub(answer) as stub:
        llm = ("--refine-llm", "openai:stub", "--base-url", stub.base_url)
        first = run_cli(*args, *llm)
        assert_one_line_error(first, "1 particles got no usable LLM output", "rerun")
        failed = read_jsonl(out.with_name("pinr.jsonl.failed.jsonl"))
        assert [(f["id"], f["attempt"]) for f in failed] == [("pinr-billing-0", 0)]
        assert "all 2 variants failed (reply rejected: empty reply)" in failed[0]["error"]
        assert not out.exists()
        kept = read_jsonl(out.with_name("pinr.jsonl.partial"))
        assert sorted(r["label"] for r in kept) == ["account", "shipping", "technical"]
        assert len(stub.requests) == 4 * 2  # T = 0: L requests per particle
        broken.clear()
        second = run_cli(*args, *llm)
        assert second.exit_code == 0, second.stderr
    assert len(stub.requests) == 4 * 2 + 2  # only the failed particle, with new seeds
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert len(rows) == 4 and rows["pinr-billing-0"]["aug"]["attempt"] == 1
    assert rows["pinr-billing-0"]["text"].startswith("variant ")
    assert not out.with_name("pinr.jsonl.failed.jsonl").exists()
