"""``augtool topex`` end to end through the CLI: a tiny task model (and a tiny Hugging Face
classifier) with planted mistakes, explore -> score -> augment on a tiny LLM, --compare
after retraining, the plot files, and the bad-input cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import keyword_rows, read_jsonl, write_jsonl
from tiny_models import build_tiny_classifier

from augtool.testing.stub_openai import Reply, StubOpenAIServer

TRAIN_OPTS = ("--epochs", 10, "--lr", 1e-3, "--head-lr", 1e-2, "--batch-size", 8, "--seed", 1)


def planted(rows: list[dict]) -> tuple[list[dict], set[str]]:
    """The rows with every "pizza" food row relabelled music (the model will say food)."""
    out, ids = [], set()
    for row in rows:
        if row["label"] == "food" and "pizza" in row["text"]:
            row = {**row, "label": "music"}
            ids.add(row["id"])
        out.append(row)
    return out, ids


@pytest.fixture(scope="module")
def setup(tiny_model_store, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("topex")
    rows = keyword_rows(30, seed=1, prefix="kw")
    train = write_jsonl(root / "train.jsonl", rows)
    explore_rows, ids = planted(rows)
    data = write_jsonl(root / "explore.jsonl", explore_rows)
    model = root / "model"
    result = run_cli("train", train, "-o", model, "--encoder", tiny_model_store["st"], *TRAIN_OPTS)
    assert result.exit_code == 0, result.stderr
    return {"root": root, "train": train, "data": data, "model": model, "planted": ids}


@pytest.fixture(scope="module")
def explored(setup: dict) -> Path:
    out = setup["root"] / "run"
    result = run_cli(
        "topex", "explore", setup["data"], "--model", setup["model"], "-o", out, "--plot"
    )
    assert result.exit_code == 0, result.stderr
    assert "chosen: cluster" in result.stdout
    return out


def plot_traces(html: Path) -> dict[str, int]:
    """Trace name -> number of points, read back from the plotly HTML."""
    text = html.read_text(encoding="utf-8")
    start = text.index("[", text.index("Plotly.newPlot("))
    data, _ = json.JSONDecoder().raw_decode(text[start:])
    return {trace["name"]: len(trace["customdata"]) for trace in data}


def test_explore_finds_the_planted_cluster_and_writes_everything(
    setup: dict, explored: Path
) -> None:
    summary = json.loads((explored / "clusters.json").read_text())
    assert summary["points"] == 90 and summary["labels"] == ["food", "music", "sports"]
    mistaken = [c for c in summary["clusters"] if c["mistaken"]]
    assert mistaken and all(c["error_rate"] > 0.5 for c in mistaken)
    chosen = next(c for c in summary["clusters"] if c["id"] == summary["chosen"]["cluster"])
    assert chosen["majority_label"] == "music" and chosen["majority_pred"] == "food"
    assert len(set(chosen["wrong_members"]) & setup["planted"]) >= 0.8 * len(chosen["members"])
    assert "pizza" in chosen["name"] and chosen["keywords"][0][1] > 0
    assert len(chosen["centroid"]) == 6  # 3 normalised logits + 3 normalised labels
    assert set(chosen["scores"]) == {
        "density",
        "pairwise",
        "geomedian",
        "ctc",
        "cosine",
        "weighted",
    }
    assert "x the mean of all clusters" in summary["chosen"]["reason"]

    points = read_jsonl(explored / "points.jsonl")
    assert len(points) == 90 and {"x", "y", "pred", "correct", "cluster"} <= set(points[0])
    wrong = sum(not p["correct"] for p in points)
    assert wrong == summary["wrong"] >= len(setup["planted"]) - 2

    traces = plot_traces(explored / "plot.html")
    assert sum(traces.values()) == 90
    assert traces["correct"] == 90 - wrong
    assert any(name.endswith("(chosen)") and "pizza" in name for name in traces)
    png = (explored / "plot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    meta = json.loads((explored / "meta.json").read_text())
    assert meta["command"] == "topex explore" and meta["plot"] == traces
    assert meta["counts"]["wrong"] == wrong and "encoder" in meta["models"]
    assert set(meta["stage_seconds"]) >= {"cluster", "name", "project", "score"}
    assert meta["timings"]["wall_seconds"] > 0
    assert not (explored.parent / "run.partial").exists()


def test_score_ranks_by_any_method_and_augment_follows_it(explored: Path, tmp_path: Path) -> None:
    result = run_cli("topex", "score", explored, "--method", "density", "--json")
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    ranking = scores["ranking"]
    densities = [scores["clusters"][str(c)]["density"] for c in ranking]
    assert densities == sorted(densities, reverse=True)
    assert scores["chosen"]["cluster"] == ranking[0] and scores["method"] == "density"
    table = run_cli("topex", "score", explored)  # back to the paper's weighted score
    assert table.exit_code == 0 and "density" in table.stdout and "ctc" in table.stdout
    assert "chosen: cluster" in table.stdout
    saved = json.loads((explored / "scores.json").read_text())
    assert saved["method"] == "weighted" and saved["weights"]["cosine"] == 0.68


def test_augment_on_a_tiny_llm_writes_labelled_rows_with_provenance(
    explored: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    out = tmp_path / "aug.jsonl"
    args = ("--llm", f"hf:{tiny_llama}", "--n", 3, "--shots", 2, "--device", "cpu", "--seed", 4)
    result = run_cli("topex", "augment", explored, "-o", out, *args, "--max-new-tokens", 24)
    assert result.exit_code == 0, result.stderr
    chosen = json.loads((explored / "scores.json").read_text())["chosen"]
    rows = read_jsonl(out)
    failed = out.with_name("aug.jsonl.failed.jsonl")
    failed_ids = {f["id"] for f in read_jsonl(failed)} if failed.exists() else set()
    expected = {f"topex-c{chosen['cluster']}-{i}" for i in range(3)}
    assert {r["id"] for r in rows} | failed_ids == expected
    for row in rows:
        assert row["label"] == "music" and row["text"].strip()
        assert row["aug"]["method"] == "topex" and row["aug"]["cluster"] == chosen["cluster"]
        assert row["aug"]["cluster_name"] == chosen["name"] and len(row["aug"]["parents"]) == 2
    meta = json.loads(out.with_name("aug.jsonl.meta.json").read_text())
    assert meta["target_label"] == "music" and meta["cluster"]["id"] == chosen["cluster"]
    assert meta["prompt"]["id"] == "topex.augment" and meta["shots"] == 2
    assert "choose a title based on the topic" in meta["prompt"]["user"]

    again = tmp_path / "again.jsonl"
    assert (
        run_cli("topex", "augment", explored, "-o", again, *args, "--max-new-tokens", 24).exit_code
        == 0
    )
    assert read_jsonl(again) == rows  # same seed, same rows


def test_augment_filters_faulty_replies_and_parses_pairs(explored: Path, tmp_path: Path) -> None:
    points = read_jsonl(explored / "points.jsonl")
    with StubOpenAIServer() as stub:
        stub.script(
            Reply("Generate a music text, choose a title based on the topic: 'pizza'."),
            Reply("   "),
            Reply(points[0]["text"].upper()),  # a duplicate of the data, case aside
            Reply("la " * 400),
            Reply("Title: Pizza songs\nA new song about pizza and guitars"),
        )
        out = tmp_path / "aug.jsonl"
        common = ("--llm", "openai:stub", "--base-url", stub.base_url, "--concurrency", 1)
        result = run_cli("topex", "augment", explored, "-o", out, *common, "--n", 2)
        assert result.exit_code == 0, result.stderr
        assert "only 1 of 2 samples passed the checks" in result.stderr
        rows = read_jsonl(out)
        assert [r["text"] for r in rows] == ["A new song about pizza and guitars"]
        assert rows[0]["title"] == "Pizza songs"
        failures = read_jsonl(out.with_name("aug.jsonl.failed.jsonl"))
        reasons = " | ".join(f["error"] for f in failures)
        for reason in ("repeats the prompt", "empty reply", "duplicate", "over-long"):
            assert reason in reasons
        assert {f["attempt"] for f in failures} == {0, 1, 2} and all("reply" in f for f in failures)

        stub.script(
            Reply("no delimiter in this reply"),
            Reply("Premise: a cat sleeps ||| Hypothesis: an animal rests"),
        )
        pair_out = tmp_path / "pairs.jsonl"
        result = run_cli(
            "topex", "augment", explored, "-o", pair_out, *common, "--n", 1, "--pair", "--seed", 9
        )
        assert result.exit_code == 0, result.stderr
        rows = read_jsonl(pair_out)
        assert rows[0]["text"] == "a cat sleeps" and rows[0]["text_pair"] == "an animal rests"
        failure = read_jsonl(pair_out.with_name("pairs.jsonl.failed.jsonl"))[0]
        assert (
            "wrong format" in failure["error"] and failure["reply"] == "no delimiter in this reply"
        )
        prompt = stub.requests[-1]["body"]["messages"][-1]["content"]
        assert "premise and the hypothesis" in prompt and "'|||'" in prompt


def test_compare_after_retraining_reports_the_cluster_dissolved(
    setup: dict, explored: Path, tiny_model_store, tmp_path: Path
) -> None:
    retrained = tmp_path / "after"
    result = run_cli(
        "train", setup["data"], "-o", retrained, "--encoder", tiny_model_store["st"], *TRAIN_OPTS
    )
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "run-after"
    result = run_cli(
        "topex",
        "explore",
        setup["data"],
        "--model",
        retrained,
        "-o",
        out,
        "--plot",
        "--compare",
        explored,
    )
    assert result.exit_code == 0, result.stderr
    comparison = json.loads((out / "compare.json").read_text())
    assert comparison["dissolved"] and "dissolved" in result.stdout
    assert comparison["fixed"] >= 0.8 * comparison["was_wrong"] > 0
    assert comparison["error_rate_after"] < comparison["error_rate_before"]
    traces = plot_traces(out / "plot.html")
    assert traces["in the previous chosen cluster"] == comparison["members"]


def test_hf_classifier_labels_are_checked_and_mapped(setup: dict, tmp_path: Path) -> None:
    rows = read_jsonl(setup["train"])
    anonymous = build_tiny_classifier(tmp_path / "anon", rows, None, steps=80)
    out = tmp_path / "run"
    result = run_cli("topex", "explore", setup["data"], "--classifier", anonymous, "-o", out)
    assert_one_line_error(result, "LABEL_0, LABEL_1, LABEL_2", "--label-order")
    assert not out.exists()
    result = run_cli(
        "topex",
        "explore",
        setup["data"],
        "--classifier",
        anonymous,
        "-o",
        out,
        "--label-order",
        "food,music,sports",
        "--clusterer",
        "hdbscan",
        "--projection",
        "pca",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "clusters.json").read_text())
    assert summary["settings"]["clusterer"] == "hdbscan" and summary["wrong"] >= 1
    assert any(c["mistaken"] for c in summary["clusters"])
    # the predictions are the classifier's own argmax, mapped through --label-order
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    points = read_jsonl(out / "points.jsonl")
    model = AutoModelForSequenceClassification.from_pretrained(anonymous).eval()
    tokens = AutoTokenizer.from_pretrained(anonymous)(
        [p["text"] for p in points], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        argmax = model(**tokens).logits.argmax(dim=1).tolist()
    assert [p["pred"] for p in points] == [["food", "music", "sports"][i] for i in argmax]

    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [{**r, "text_pair": "a second sentence"} for r in read_jsonl(setup["data"])],
    )
    named = build_tiny_classifier(tmp_path / "named", rows, ["food", "music", "sports"], steps=80)
    result = run_cli("topex", "explore", pairs, "--classifier", named, "-o", tmp_path / "p")
    assert result.exit_code == 0, result.stderr
    assert read_jsonl(tmp_path / "p" / "points.jsonl")[0]["text_pair"] == "a second sentence"


def test_no_mistakes_and_all_mistakes(setup: dict, tmp_path: Path) -> None:
    predictions = tmp_path / "pred.jsonl"
    assert run_cli("predict", setup["model"], setup["data"], "-o", predictions).exit_code == 0
    predicted = read_jsonl(predictions)
    perfect = write_jsonl(
        tmp_path / "perfect.jsonl",
        [{"id": r["id"], "text": r["text"], "label": r["pred_label"]} for r in predicted],
    )
    out = tmp_path / "none"
    result = run_cli("topex", "explore", perfect, "--model", setup["model"], "-o", out, "--plot")
    assert result.exit_code == 0, result.stderr
    assert "no misclassified points" in result.stdout
    summary = json.loads((out / "clusters.json").read_text())
    assert summary["clusters"] == [] and summary["chosen"] is None
    assert plot_traces(out / "plot.html") == {"correct": 90}
    result = run_cli("topex", "augment", out, "-o", tmp_path / "a.jsonl", "--llm", "hf:x")
    assert_one_line_error(result, "no cluster of mistakes")

    labels = ["food", "music", "sports"]
    shifted = [{**r, "label": labels[(labels.index(r["pred_label"]) + 1) % 3]} for r in predicted]
    wrong = write_jsonl(
        tmp_path / "wrong.jsonl",
        [{"id": r["id"], "text": r["text"], "label": r["label"]} for r in shifted],
    )
    out = tmp_path / "all"
    result = run_cli("topex", "explore", wrong, "--model", setup["model"], "-o", out)
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "clusters.json").read_text())
    assert summary["wrong"] == 90 and summary["clusters"]
    assert all(c["mistaken"] and c["error_rate"] == 1.0 for c in summary["clusters"])


def test_bad_input(setup: dict, explored: Path, tmp_path: Path) -> None:
    few = write_jsonl(
        tmp_path / "few.jsonl",
        [{"id": f"f{i}", "text": "pizza pasta", "label": "music"} for i in range(3)],
    )
    result = run_cli("topex", "explore", few, "--model", setup["model"], "-o", tmp_path / "o1")
    assert_one_line_error(result, "--min-samples", "only 3 points")
    assert not (tmp_path / "o1").exists()

    unknown = write_jsonl(tmp_path / "unknown.jsonl", [{"text": "sunny", "label": "weather"}])
    result = run_cli("topex", "explore", unknown, "--model", setup["model"], "-o", tmp_path / "o2")
    assert_one_line_error(result, "weather")

    result = run_cli("topex", "explore", setup["data"], "-o", tmp_path / "o3")
    assert_one_line_error(result, "--model", "--classifier")
    result = run_cli(
        "topex",
        "explore",
        setup["data"],
        "--model",
        setup["model"],
        "-o",
        tmp_path / "o4",
        "--clusterer",
        "kmeans",
    )
    assert_one_line_error(result, "--clusterer")
    result = run_cli(
        "topex", "explore", setup["data"], "--model", tmp_path / "nope", "-o", tmp_path / "o5"
    )
    assert_one_line_error(result, "nope")

    for n in (0, -2):
        result = run_cli(
            "topex", "augment", explored, "-o", tmp_path / "a.jsonl", "--llm", "hf:x", "--n", n
        )
        assert_one_line_error(result, "--n", "at least 1")
    result = run_cli(
        "topex",
        "augment",
        explored,
        "-o",
        tmp_path / "a.jsonl",
        "--llm",
        "hf:x",
        "--target-label",
        "weather",
    )
    assert_one_line_error(result, "--target-label", "weather")
    result = run_cli(
        "topex", "augment", explored, "-o", tmp_path / "a.jsonl", "--llm", "hf:x", "--cluster", 999
    )
    assert_one_line_error(result, "--cluster", "999")
    result = run_cli("topex", "score", tmp_path)
    assert_one_line_error(result, "not a topex explore folder")
    result = run_cli(
        "topex",
        "augment",
        explored,
        "-o",
        tmp_path / "a.jsonl",
        "--llm",
        "openai:m",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--max-retries",
        0,
    )
    assert_one_line_error(result, "127.0.0.1:9")
    assert not (tmp_path / "a.jsonl").exists()


def test_dry_run_shows_the_prompt_and_sends_nothing(explored: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug.jsonl"
    result = run_cli(
        "topex",
        "augment",
        explored,
        "-o",
        out,
        "--llm",
        "openai:m",
        "--dry-run",
        "--domain",
        "sentence",
        "--shots",
        1,
    )
    assert result.exit_code == 0, result.stderr
    assert "Generate a music sentence, choose a title based on the topic: '" in result.stdout
    assert "Examples of music sentences on this topic:" in result.stdout
    assert not out.exists()


def test_topex_is_a_bench_method(tiny_model_store, tiny_llama: Path, tmp_path: Path) -> None:
    import yaml

    rows, _ = planted(keyword_rows(12, seed=3, prefix="b"))
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    config = tmp_path / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "datasets": {"kw": {"train": str(data), "test": str(data)}},
                "k": [6],
                "seeds": [1],
                "task_model": {"encoder": str(tiny_model_store["st"]), "epochs": 2},
                "methods": {
                    "base": {},
                    "topex": {
                        "llm": f"hf:{tiny_llama}",
                        "encoder": str(tiny_model_store["st"]),
                        "n": 3,
                        "error_threshold": 0.25,  # 18 rows: clusters of mistakes are small
                        "max_new_tokens": 16,
                        "device": "cpu",
                    },
                },
                "per_original": 1,
            }
        )
    )
    run = tmp_path / "run"
    result = run_cli("bench", config, "-o", run)
    assert result.exit_code == 0, result.stderr
    cell = json.loads((run / "cells" / "kw__k6__s1__topex.json").read_text())
    assert cell["status"] == "ok" and 1 <= cell["n_augmented"] <= 3, cell
    log = (run / "logs" / "kw__k6__s1__topex.log").read_text()
    assert "topex: cluster" in log
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("n: 3", "n: -1"))
    assert_one_line_error(run_cli("bench", bad, "-o", tmp_path / "run2"), "--n")


def test_a_missing_extra_is_a_one_line_error(explored: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "plotly", None)  # as if augtool[topex] were not installed
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    from augtool.methods.topex.plot import write_html

    with pytest.raises(ModuleNotFoundError):
        write_html([], explored / "x.html", "t")
    data = explored.parent / "explore.jsonl"
    result = run_cli(
        "topex",
        "explore",
        data,
        "--model",
        explored.parent / "model",
        "-o",
        explored.parent / "np",
        "--plot",
    )
    assert_one_line_error(result, "pip install 'augtool[topex]'")
    assert not (explored.parent / "np").exists() and not (explored.parent / "np.partial").exists()
