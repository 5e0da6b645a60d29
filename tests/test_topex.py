"""``augtool topex`` end to end through the CLI: a tiny task model (and a tiny Hugging Face
classifier) with planted mistakes, explore -> score -> augment on a tiny LLM, --compare
after retraining, the plot files, and the bad-input cases; ``score`` on a hand-made
explore folder whose winners are worked out by hand; the paper's prompts (§2.4,
appendix B) rendered exactly and their replies parsed."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import keyword_rows, read_jsonl, write_jsonl
from tiny_models import build_tiny_classifier

from augtool.core.generation.jobs import ReplyRejected
from augtool.core.generation.prompts import (
    TOPEX_FEWSHOT_OPEN,
    TOPEX_FEWSHOT_PREAMBLE,
    TOPEX_FEWSHOT_SHOT,
    TOPEX_PAIR_TASK,
    TOPEX_TASK,
)
from augtool.methods.topex.augment import build_prompt, parse_reply, pick_target
from augtool.methods.topex.config import AugmentConfig, ExploreConfig, ScoreConfig
from augtool.methods.topex.store import SavedExploration
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
    reason = summary["chosen"]["reason"]
    if len(mistaken) > 1:
        assert reason.startswith(f"best weighted score of {len(mistaken)} cluster(s) (")
        assert "x the mean of all clusters (adds 0.65 x " in reason
    else:
        assert reason.startswith("the only cluster of mistakes (weighted score ")
    assert chosen["measures"]["size"] == len(chosen["members"])
    assert summary["settings"]["variants"] == {
        "density": "extent",
        "pairwise": "outside",
        "geomedian": "outside",
        "cosine": "texts",
        "normalise": "none",
    }

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


def by_the_equations(folder: Path) -> dict[int, dict[str, float]]:
    """density, pairwise, geomedian and cosine of every cluster of mistakes, recomputed
    here from space.npy and points.jsonl, plainly, pair by pair, as the paper prints them."""
    from sklearn.feature_extraction.text import CountVectorizer

    from augtool.core.clustering import geometric_median

    space = np.load(folder / "space.npy").astype(np.float64)
    points = read_jsonl(folder / "points.jsonl")
    summary = json.loads((folder / "clusters.json").read_text())
    index = {p["id"]: i for i, p in enumerate(points)}
    out = {}
    for cluster in summary["clusters"]:
        if not cluster["mistaken"]:
            continue
        inside = [index[m] for m in cluster["members"]]
        outside = [i for i in range(len(points)) if i not in set(inside)]
        c, y = space[inside], space[outside]
        g = geometric_median(c)
        counts = CountVectorizer().fit_transform([points[i]["text"] for i in inside]).toarray()
        cosines = [
            counts[j] @ counts[k] / (np.linalg.norm(counts[j]) * np.linalg.norm(counts[k]))
            for j, k in product(range(len(inside)), repeat=2)
            if j != k and counts[j].any() and counts[k].any()
        ]
        out[cluster["id"]] = {
            "density": len(c) / max((c.max(0) - c.min(0)).max(), 1e-6),
            "pairwise": sum(np.linalg.norm(a - b) for a, b in product(c, y)) / len(y),
            "geomedian": sum(np.linalg.norm(g - b) for b in y) / len(y),
            "cosine": sum(cosines) / len(c),
        }
    return out


def test_score_ranks_by_any_method_and_augment_follows_it(explored: Path, tmp_path: Path) -> None:
    expected = by_the_equations(explored)
    assert expected
    for method in ("density", "pairwise", "geomedian", "cosine"):
        result = run_cli("topex", "score", explored, "--method", method, "--json")
        assert result.exit_code == 0, result.stderr
        scores = json.loads(result.stdout)
        for cid, values in expected.items():
            assert scores["clusters"][str(cid)][method] == pytest.approx(values[method], rel=1e-5)
        best = max(expected, key=lambda c: (expected[c][method], -c))
        assert scores["chosen"]["cluster"] == best == scores["ranking"][0], method
        assert scores["method"] == method
    table = run_cli("topex", "score", explored)  # back to the paper's weighted score
    assert table.exit_code == 0 and "density" in table.stdout and "ctc" in table.stdout
    assert "chosen: cluster" in table.stdout and "highest first" in table.stdout
    saved = json.loads((explored / "scores.json").read_text())
    assert saved["method"] == "weighted" and saved["weights"]["cosine"] == 0.68
    weighted = {
        cid: 0.68 * v["cosine"] + 0.65 * v["pairwise"] + 0.41 * v["density"]
        for cid, v in expected.items()
    }
    for cid, value in weighted.items():
        assert saved["clusters"][str(cid)]["weighted"] == pytest.approx(value, rel=1e-5)
    assert saved["chosen"]["cluster"] == max(weighted, key=lambda c: (weighted[c], -c))


def hand_made_folder(folder: Path) -> Path:
    """An explore folder over a 1-D output space, built with the real measuring code.

    x:        0    1    2  | 4 |  10  10.5  |  20   24
    cluster:  0    0    0  | - |   1    1   |   2    2     (4 is a correct noise point)
    """
    from augtool.data.records import Record
    from augtool.methods.topex.explore import Cluster, Exploration, measure_cluster
    from augtool.methods.topex.store import save_exploration

    x = [0.0, 1, 2, 4, 10, 10.5, 20, 24]
    texts = ["red apple", "red pear", "green pear", "noise", "blue sky", "grey rain"]
    texts += ["fast car", "fast car"]
    ids = [0, 0, 0, -1, 1, 1, 2, 2]
    names = {0: "red pear", 1: "blue sky", 2: "slow boat"}
    gold = np.array([0, 0, 0, 1, 0, 0, 0, 0])
    pred = np.array([1, 1, 1, 1, 1, 1, 1, 1])
    space = np.array(x)[:, None]
    clusters = []
    for cid in (0, 1, 2):
        members = [i for i, c in enumerate(ids) if c == cid]
        cluster = Cluster(cid, members, 1.0, True, "a", "b", [0.0], name=names[cid])
        cluster.measures = measure_cluster(cluster, space, texts, ExploreConfig())
        clusters.append(cluster)
    exploration = Exploration(
        ["a", "b"], space, np.zeros((8, 2)), np.array(ids), gold, pred, clusters, None, {}
    )
    pairs = enumerate(zip(texts, gold, strict=True))
    records = [Record(id=f"r{i}", text=t, label="ab"[g]) for i, (t, g) in pairs]
    folder.mkdir()
    save_exploration(folder, exploration, records, settings={}, score_config=ScoreConfig())
    return folder


# The winners, worked out by hand on hand_made_folder (|Y| = 8):
# density |C| / extent: c0 3/2 = 1.5, c1 2/0.5 = 4, c2 2/4 = 0.5 -> 1.
# pairwise, sum of |x_j - y_k| over inside x outside:
#   c0 {0,1,2} vs {4,10,10.5,20,24} (sum 68.5): (68.5-0)+(68.5-5)+(68.5-10) = 190.5, / 5 = 38.1
#   c1 {10,10.5} vs {0,1,2,4,20,24}: 57 + 58 = 115, / 6 = 19.17
#   c2 {20,24} vs {0,1,2,4,10,10.5} (sum 27.5): (120-27.5)+(144-27.5) = 209, / 6 = 34.83 -> 0;
#   variant pairs (/ |C|(|Y|-|C|)): 190.5/15 = 12.7, 115/12 = 9.58, 209/12 = 17.42 -> 2.
# geomedian, median g to the outside: c0 g=1: (3+9+9.5+19+23)/5 = 12.7; c1 g=10.25:
#   (10.25+9.25+8.25+6.25+9.75+13.75)/6 = 9.58; c2 g=22: (22+21+20+18+12+11.5)/6 = 17.42 -> 2;
#   variant inside (lower is better): 2/3, 0.25, 2 -> 1.
# cosine among texts: c0 ("red apple", "red pear", "green pear") 2*(1/2+0+1/2)/3 = 2/3;
#   c1 no shared word: 0; c2 two identical texts: 2*1/2 = 1 -> 2;
#   variant name: c0 "red pear" (1/2+1+1/2)/3 = 2/3, c1 "blue sky" (1+0)/2 = 1/2, c2 0 -> 0.
# weighted 0.68 cos + 0.65 pairwise + 0.41 density: c0 0.453+24.765+0.615 = 25.83,
#   c1 0+12.46+1.64 = 14.10, c2 0.68+22.64+0.205 = 23.53 -> 0;
#   normalised by the max (1, 38.1, 4): c0 0.453+0.65+0.154 = 1.257,
#   c1 0+0.327+0.41 = 0.737, c2 0.68+0.594+0.051 = 1.326 -> 2.
HAND_WINNERS = [
    (("--method", "density"), 1, 4.0),
    (("--method", "pairwise"), 0, 38.1),
    (("--method", "pairwise", "--pairwise-norm", "pairs"), 2, 209 / 12),
    (("--method", "geomedian"), 2, 104.5 / 6),
    (("--method", "geomedian", "--geomedian-to", "inside"), 1, 0.25),
    (("--method", "cosine"), 2, 1.0),
    (("--method", "cosine", "--cosine-among", "name"), 0, 2 / 3),
    (("--method", "weighted"), 0, 0.68 * 2 / 3 + 0.65 * 38.1 + 0.41 * 1.5),
    (
        ("--method", "weighted", "--weighted-normalise", "max"),
        2,
        0.68 + 0.65 * (209 / 6) / 38.1 + 0.41 * 0.5 / 4,
    ),
]


def test_score_picks_the_cluster_the_equations_say(tmp_path: Path) -> None:
    folder = hand_made_folder(tmp_path / "hand")
    for options, winner, value in HAND_WINNERS:
        result = run_cli("topex", "score", folder, *options, "--json")
        assert result.exit_code == 0, result.stderr
        scores = json.loads(result.stdout)
        assert scores["chosen"]["cluster"] == winner, options
        assert scores["chosen"]["value"] == pytest.approx(value, rel=1e-5), options
    # the reason reads like the paper's (appendix A): ratios to the mean of all clusters
    table = run_cli("topex", "score", folder, "--method", "density")
    assert table.exit_code == 0, table.stderr
    # density 4 against the mean (1.5 + 4 + 0.5) / 3 = 2 -> 2.00x; the minimum 0.5 -> 0.25x
    assert "best density of 3 cluster(s) (4.000): density 2.00x the mean of all" in table.stdout
    assert "the minimum is 0.25x the mean" in " ".join(table.stdout.split())
    lowest = run_cli("topex", "score", folder, "--method", "geomedian", "--geomedian-to", "inside")
    assert "lowest first" in lowest.stdout and "the maximum is" in " ".join(lowest.stdout.split())
    result = run_cli("topex", "score", folder, "--density-diameter", "widest")
    assert_one_line_error(result, "--density-diameter", "extent, euclidean")
    # a folder explored before the paper's equations (no measures) cannot be rescored
    summary = json.loads((folder / "clusters.json").read_text())
    for cluster in summary["clusters"]:
        del cluster["measures"]
    (folder / "clusters.json").write_text(json.dumps({**summary, "format": 1}))
    result = run_cli("topex", "score", folder)
    assert_one_line_error(result, "format 1", "run `augtool topex explore` again")


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
    assert meta["prompt"]["id"] == TOPEX_TASK.id and meta["shots"] == 2
    assert meta["prompt"]["style"] == "paper" and meta["prompt"]["verbatim"]
    assert meta["prompt"]["user"] == TOPEX_TASK.user
    assert meta["prompt"]["few_shot"]["preamble"] == TOPEX_FEWSHOT_PREAMBLE
    assert all(row["aug"]["prompt_id"] == TOPEX_TASK.id for row in rows)

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
            Reply("Premise: A cat sleeps on the pizza ./delim/\n\nHypothesis: A cat sleeps ."),
        )
        pair_out = tmp_path / "pairs.jsonl"
        result = run_cli(
            "topex", "augment", explored, "-o", pair_out, *common, "--n", 1, "--pair", "--seed", 9
        )
        assert result.exit_code == 0, result.stderr
        rows = read_jsonl(pair_out)
        assert rows[0]["text"] == "A cat sleeps on the pizza ."
        assert rows[0]["text_pair"] == "A cat sleeps ."
        failure = read_jsonl(pair_out.with_name("pairs.jsonl.failed.jsonl"))[0]
        assert "wrong format: no '/delim/'" in failure["error"]
        assert failure["reply"] == "no delimiter in this reply"
        cluster = json.loads((explored / "scores.json").read_text())["chosen"]["name"]
        prompt = stub.requests[-1]["body"]["messages"]
        assert prompt == [
            {
                "role": "user",
                "content": TOPEX_PAIR_TASK.user.format(
                    issue=cluster,
                    delimiter="/delim/",
                    label="music",
                    label_choices="'food', 'music' and 'sports'",
                ),
            }
        ]

        # augtool's wording keeps its own layout, with any delimiter
        stub.script(Reply("Premise: a cat sleeps ||| Hypothesis: an animal rests"))
        old_style = tmp_path / "augtool-style.jsonl"
        result = run_cli(
            "topex",
            "augment",
            explored,
            "-o",
            old_style,
            *common,
            "--n",
            1,
            "--pair",
            "--prompt-style",
            "augtool",
            "--delimiter",
            "|||",
        )
        assert result.exit_code == 0, result.stderr
        assert read_jsonl(old_style)[0]["text_pair"] == "an animal rests"
        prompt = stub.requests[-1]["body"]["messages"][-1]["content"]
        assert "premise and the hypothesis" in prompt and "'|||'" in prompt


def test_paper_few_shot_through_the_cli(explored: Path, tmp_path: Path) -> None:
    chosen = json.loads((explored / "scores.json").read_text())["chosen"]
    with StubOpenAIServer() as stub:
        stub.script(
            Reply(
                "Your answer:\n\n**Title: Pizza Chords**\n\nA song about pizza and guitars\n\n"
                "Task: Generate a music text, choose a title"
            )
        )
        out = tmp_path / "few.jsonl"
        args = ("--llm", "openai:stub", "--base-url", stub.base_url, "--n", 1, "--shots", 2)
        result = run_cli("topex", "augment", explored, "-o", out, *args)
        assert result.exit_code == 0, result.stderr
        row = read_jsonl(out)[0]
        assert row["text"] == "A song about pizza and guitars" and row["title"] == "Pizza Chords"
        assert row["label"] == "music" and len(row["aug"]["parents"]) == 2
        sent = stub.requests[-1]["body"]["messages"][-1]["content"]
        points = {p["id"]: p for p in read_jsonl(explored / "points.jsonl")}
        task = TOPEX_TASK.user.format(label="music", domain="text", issue=chosen["name"])
        blocks = [
            f"Task:\n\n{task}\n\nYour answer:\n\n{points[parent]['text']}"
            for parent in row["aug"]["parents"]
        ]
        assert sent == f"{TOPEX_FEWSHOT_PREAMBLE} " + "\n\n".join(
            [*blocks, f"Task: {task} Your answer:"]
        )


def paper_folder(pair: bool) -> SavedExploration:
    """An explore folder in memory, after the paper's HANS example (appendix B)."""
    labels = ["entailment", "non-entailment"] if pair else ["negative", "positive"]
    name = "The-play-the-the" if pair else "cinderella disney the and"
    texts = [
        (
            "The artists and the lawyers mentioned the doctors .",
            "The artists mentioned the doctors .",
        ),
        (
            "The doctors and the lawyers mentioned the artists .",
            "The doctors mentioned the artists .",
        ),
        ("The judge saw the actor .", "The actor saw the judge ."),
    ]
    points = [
        {
            "id": f"p{i}",
            "text": text if pair else f"Cinderella review {i}",
            **({"text_pair": second} if pair else {}),
            "label": labels[0] if i < 2 else labels[1],
        }
        for i, (text, second) in enumerate(texts)
    ]
    cluster = {
        "id": 3,
        "name": name,
        "members": [p["id"] for p in points],
        "majority_label": labels[0] if pair else labels[1],
        "mistaken": True,
        "error_rate": 1.0,
        "size": 3,
    }
    summary = {"labels": labels, "clusters": [cluster], "chosen": {"cluster": 3}}
    return SavedExploration(Path("paper"), summary, points)


def test_paper_prompts_render_as_printed() -> None:
    # §2.4, zero-shot: the IMDb task, with --domain "movie review"
    saved = paper_folder(pair=False)
    config = AugmentConfig(llm="x", domain="movie review", target_label="positive")
    target = pick_target(saved, config)
    assert build_prompt(config, target.pair).render(target, config, []) == [
        {
            "role": "user",
            "content": "Generate a positive movie review, choose a title based on the topic: "
            "'cinderella disney the and'",
        }
    ]
    # two shots: appendix B's layout around the same task, each shot with its own label
    config = AugmentConfig(llm="x", domain="movie review", target_label="positive", shots=2)
    shots = [saved.points[2], saved.points[0]]
    task = (
        "Generate a {} movie review, choose a title based on the topic: 'cinderella disney the and'"
    )
    expected = (
        "You have to complete the following text according to the instructions in 'Task' "
        "where the desired answer is followed by 'Answer'. Task:\n\n"
        f"{task.format('positive')}\n\nYour answer:\n\nCinderella review 2\n\n"
        f"Task:\n\n{task.format('negative')}\n\nYour answer:\n\nCinderella review 0\n\n"
        f"Task: {task.format('positive')} Your answer:"
    )
    messages = build_prompt(config, False).render(target, config, shots)
    assert messages == [{"role": "user", "content": expected}]

    # the HANS pair task, one shot: appendix B's example, word for word
    saved = paper_folder(pair=True)
    config = AugmentConfig(llm="x", shots=1)
    target = pick_target(saved, config)
    assert target.pair and target.label == "entailment"
    hans = (
        "Generate a premise and a hypothesis based on The-play-the-the, delimited by "
        "'/delim/', in a Subject-Verb-Object sentence structure. The sentence pair of "
        "premise and hypothesis should have a entailment relation out of 'entailment' and "
        "'non-entailment' Generate exactly one pair of premise and hypothesis. Don't provide "
        "any post reasoning or explanation, just the hypothesis and premise. Remember to put "
        "the delimiter between premise and hypothesis, not at the end. The delimiter is "
        "/delim/, you should use the delimiter exactly once in your response, to delimit the "
        "premise you provide from the hypothesis you provide."
    )
    appendix_b = (
        "You have to complete the following text according to the instructions in 'Task' "
        f"where the desired answer is followed by 'Answer'. Task:\n\n{hans}\n\n"
        "Your answer:\n\nThe artists and the lawyers mentioned the doctors ./delim/\n\n"
        f"The artists mentioned the doctors .\n\nTask: {hans} Your answer:"
    )
    prompt = build_prompt(config, True)
    assert prompt.render(target, config, [saved.points[0]])[-1]["content"] == appendix_b
    assert prompt.render(target, config, [])[-1]["content"] == hans
    assert TOPEX_FEWSHOT_SHOT.startswith("Task:") and TOPEX_FEWSHOT_OPEN.endswith("Your answer:")

    # a labels file changes what the prompt calls a label, not the rows' labels
    config = AugmentConfig(llm="x", labels=str(Path("examples/labels/trec.json").resolve()))
    trec = SavedExploration(
        Path("trec"),
        {
            "labels": ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"],
            "clusters": [{**saved.clusters[0], "majority_label": "NUM"}],
            "chosen": {"cluster": 3},
        },
        [{**p, "label": "NUM"} for p in saved.points],
    )
    target = pick_target(trec, AugmentConfig(llm="x", labels=config.labels, pair=False))
    text = build_prompt(config, False).render(target, config, [])[-1]["content"]
    assert text.startswith("Generate a Numeric text, choose a title") and target.label == "NUM"


@pytest.mark.parametrize(
    ("reply", "pair", "expected"),
    [
        ("Title: Glass slippers\n\nI loved it.", False, ("I loved it.", None, "Glass slippers")),
        ("**Title:** Glass slippers\nI loved it.", False, ("I loved it.", None, "Glass slippers")),
        ('"Glass Slippers"\n\nI loved it.', False, ("I loved it.", None, "Glass Slippers")),
        ("## Glass Slippers\nI loved it.", False, ("I loved it.", None, "Glass Slippers")),
        (
            "Your answer: What does FBI stand for ?",
            False,
            ("What does FBI stand for ?", None, None),
        ),
        ("Review: I loved it.\n\nTask: Generate a ...", False, ("I loved it.", None, None)),
        ('"What is a fuel cell ?"', False, ("What is a fuel cell ?", None, None)),
        (
            "The doctors and the lawyers mentioned the artists ./delim/\n\n"
            "The doctors mentioned the artists .",
            True,
            (
                "The doctors and the lawyers mentioned the artists .",
                "The doctors mentioned the artists .",
                None,
            ),
        ),
        (
            '"The judge saw the actor ."\n/delim/\n"The actor saw the judge ."',
            True,
            ("The judge saw the actor .", "The actor saw the judge .", None),
        ),
    ],
)
def test_replies_to_the_paper_prompts_parse(reply: str, pair: bool, expected: tuple) -> None:
    got = parse_reply(reply, prompt="Task: x", pair=pair, delimiter="/delim/", max_chars=500)
    assert got == expected


def test_faulty_replies_to_the_paper_prompts_are_rejected() -> None:
    def parse(reply: str, pair: bool = False) -> None:
        parse_reply(reply, prompt=TOPEX_TASK.user, pair=pair, delimiter="/delim/", max_chars=80)

    # appendix C's faulty IMDb generation restates the task and runs on
    with pytest.raises(ReplyRejected, match="over-long"):
        parse("and then write the review. The review should be at least 250 words long. " * 2)
    with pytest.raises(ReplyRejected, match="repeats the prompt"):
        parse("Generate a positive movie review, choose a title based on the topic: 'x'")
    with pytest.raises(ReplyRejected, match="two parts"):
        parse("a /delim/ b /delim/ c", pair=True)
    with pytest.raises(ReplyRejected, match="empty"):
        parse("Your answer:")


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
    common = ("topex", "augment", explored, "-o", out, "--llm", "openai:m", "--dry-run")
    result = run_cli(*common, "--domain", "sentence", "--shots", 1)
    assert result.exit_code == 0, result.stderr
    shown = " ".join(result.stdout.split())
    assert "Generate a music sentence, choose a title based on the topic: '" in shown
    assert shown.count("Your answer:") == 2 and "paper prompt" in shown
    assert "You have to complete the following text according to the instructions" in shown
    result = run_cli(*common, "--domain", "sentence", "--shots", 1, "--prompt-style", "augtool")
    assert result.exit_code == 0, result.stderr
    assert "Examples of music sentences on this topic:" in " ".join(result.stdout.split())
    assert not out.exists()

    # a prompt file replaces the task; appendix B's frame still wraps it
    task = tmp_path / "task.txt"
    task.write_text("Write a {label} {domain} about '{issue}'.")
    result = run_cli(*common, "--shots", 1, "--prompt-file", task)
    assert result.exit_code == 0, result.stderr
    shown = " ".join(result.stdout.split())
    assert "Task: Write a music text about '" in shown and "You have to complete" in shown


def test_bad_prompt_options_fail_before_any_model(explored: Path, tmp_path: Path) -> None:
    common = ("topex", "augment", explored, "-o", tmp_path / "a.jsonl", "--llm", "hf:nowhere")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("Generate a {label} text about {issue}. {examples}")
    assert_one_line_error(
        run_cli(*common, "--prompt-file", wrong),
        "--prompt-file",
        "unknown placeholder",
        "{examples}",
    )
    missing = tmp_path / "missing.txt"
    missing.write_text("Generate a {label} text.")
    assert_one_line_error(
        run_cli(*common, "--prompt-file", missing), "--prompt-file", "must use", "{issue}"
    )
    pair = tmp_path / "pair.txt"
    pair.write_text("Generate a {label} pair about {issue}.")
    assert_one_line_error(
        run_cli(*common, "--pair", "--prompt-file", pair), "--prompt-file", "{delimiter}"
    )
    assert_one_line_error(run_cli(*common, "--prompt-style", "fancy"), "--prompt-style", "paper")
    labels = tmp_path / "labels.json"
    labels.write_text('{"food": "meals"}')
    assert_one_line_error(run_cli(*common, "--labels", labels), "music", "sports")
    assert not (tmp_path / "a.jsonl").exists()


def planted_bench_config(tmp_path: Path, encoder: Path, methods: dict, **extra) -> Path:
    """A one-cell-per-method bench config on planted keyword data (tiny task model)."""
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
                "task_model": {"encoder": str(encoder), "epochs": 2},
                "methods": methods,
                **extra,
            }
        )
    )
    return config


def test_topex_is_a_bench_method(tiny_model_store, tiny_llama: Path, tmp_path: Path) -> None:
    methods = {
        "base": {},
        "topex": {
            "llm": f"hf:{tiny_llama}",
            "encoder": str(tiny_model_store["st"]),
            "n": 3,
            "error_threshold": 0.25,  # 18 rows: clusters of mistakes are small
            "max_new_tokens": 16,
            "device": "cpu",
        },
    }
    config = planted_bench_config(tmp_path, tiny_model_store["st"], methods, per_original=1)
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


def _cluster_members(explored: Path, label: str) -> tuple[int, set[str]]:
    chosen = json.loads((explored / "scores.json").read_text())["chosen"]["cluster"]
    clusters = json.loads((explored / "clusters.json").read_text())
    cluster = next(c for c in clusters["clusters"] if c["id"] == chosen)
    points = {p["id"]: p for p in read_jsonl(explored / "points.jsonl")}
    return chosen, {m for m in cluster["members"] if points[m]["label"] == label}


def test_augment_with_eda_needs_no_llm_and_stays_in_the_cluster(
    explored: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eda.jsonl"
    args = ("--generator", "eda", "--n", 7, "--seed", 3)
    result = run_cli("topex", "augment", explored, "-o", out, *args)
    assert result.exit_code == 0, result.stderr
    cluster, members = _cluster_members(explored, "music")
    rows = read_jsonl(out)
    assert 0 < len(rows) <= 7 and len({r["id"] for r in rows}) == len(rows)
    points = {p["text"].lower() for p in read_jsonl(explored / "points.jsonl")}
    for row in rows:
        assert row["label"] == "music" and row["id"].startswith(f"topex-c{cluster}-")
        assert row["aug"]["method"] == "eda" and row["aug"]["cluster"] == cluster
        assert set(row["aug"]["parents"]) <= members  # made from the cluster's own members
        assert row["text"].lower() not in points
    meta = json.loads(out.with_name("eda.jsonl.meta.json").read_text())
    assert meta["generator"] == {"method": "eda"} and meta["counts"]["kept"] == len(rows)
    assert meta["counts"]["members"] == len(members) and sum(meta["per_member"]) == 7
    again = tmp_path / "again.jsonl"
    assert run_cli("topex", "augment", explored, "-o", again, *args).exit_code == 0
    assert read_jsonl(again) == rows  # same seed, same rows


def test_augment_with_invmix_inverts_mixed_member_embeddings(
    explored: Path, tiny_st: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    from augtool.core.inversion.model import InversionModel

    folder = tmp_path / "inverter"
    InversionModel.create(str(tiny_st), f"hf:{tiny_llama}").save(folder)
    out = tmp_path / "invmix.jsonl"
    args = ("--generator", f"invmix:{folder}", "--n", 4, "--max-new-tokens", 8)
    result = run_cli("topex", "augment", explored, "-o", out, *args, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    cluster, members = _cluster_members(explored, "music")
    rows = read_jsonl(out)
    meta = json.loads(out.with_name("invmix.jsonl.meta.json").read_text())
    assert len(rows) + meta["counts"]["duplicates_dropped"] == 4
    for row in rows:
        assert row["label"] == "music" and row["aug"]["method"] == "invmix"
        assert set(row["aug"]["parents"]) <= members and 0 <= row["aug"]["lam"] <= 1
    assert meta["models"]["generator"]["method"] == "invmix"
    assert meta["models"]["generator"]["fingerprint"]


@pytest.mark.skipif(
    __import__("shutil").which("lt-proc") is None,
    reason="Apertium is not installed: apt-get install apertium apertium-en-es (CI does)",
)
def test_augment_with_back_translation(explored: Path, tmp_path: Path) -> None:
    out = tmp_path / "bt.jsonl"
    result = run_cli("topex", "augment", explored, "-o", out, "--generator", "bt", "--n", 3)
    assert result.exit_code == 0, result.stderr
    _, members = _cluster_members(explored, "music")
    for row in read_jsonl(out):
        assert row["label"] == "music" and row["aug"]["method"] == "bt"
        assert set(row["aug"]["parents"]) <= members


def test_bad_generators_are_one_line_errors(explored: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    cases = [
        (("--generator", "gpt"), "--generator", "unknown generator"),
        (("--generator", "invmix"), "--generator", "invmix:MODEL_DIR"),
        (("--generator", f"invmix:{tmp_path / 'nope'}"), "--generator", "does not exist"),
        (("--generator", "bt:google"), "--generator", "apertium or marian"),
        (("--generator", "eda", "--target-label", "food"), "no member labelled"),
        (("--generator", "llm"), "--llm", "required"),
    ]
    for args, *fragments in cases:
        result = run_cli("topex", "augment", explored, "-o", out, *args)
        assert_one_line_error(result, *fragments)
        assert not out.exists()


def test_bench_compares_directed_and_undirected_eda_as_variants(
    tiny_model_store, tmp_path: Path
) -> None:
    """``topex@...`` entries run the topex method with their own options: EDA on the chosen
    cluster's members against as many EDA rows from random rows of the sample."""
    shared = {
        "generator": "eda",
        "encoder": str(tiny_model_store["st"]),
        "error_threshold": 0.25,
        "per_member": 2,
    }
    methods = {
        "base": {},
        "topex@eda-2": shared,
        "topex@eda-2-random": {**shared, "direction": "random"},
    }
    compare = [["topex@eda-2", "topex@eda-2-random"]]
    config = planted_bench_config(tmp_path, tiny_model_store["st"], methods, compare=compare)
    run = tmp_path / "run"
    result = run_cli("bench", config, "-o", run)
    assert result.exit_code == 0, result.stderr
    directed = json.loads((run / "cells" / "kw__k6__s1__topex@eda-2.json").read_text())
    undirected = json.loads((run / "cells" / "kw__k6__s1__topex@eda-2-random.json").read_text())
    assert directed["status"] == undirected["status"] == "ok"
    log = (run / "logs" / "kw__k6__s1__topex@eda-2.log").read_text()
    size = int(log.split(" rows) -> label")[0].rsplit(", ", 1)[1])
    assert 0 < directed["n_augmented"] <= 2 * size
    assert 0 < undirected["n_augmented"] <= 2 * size
    random_log = run / "logs" / "kw__k6__s1__topex@eda-2-random.log"
    assert "undirected eda rows" in random_log.read_text()
    report = run_cli("bench", "report", run)
    assert report.exit_code == 0 and "topex@eda-2-random" in report.stdout

    bad = tmp_path / "bad.yaml"
    text = config.read_text().replace("direction: random", "direction: sideways")
    bad.write_text(text)
    assert_one_line_error(run_cli("bench", bad, "-o", tmp_path / "r2"), "direction")
    bad.write_text(config.read_text().replace("topex@eda-2-random", "nosuch@x"))
    assert_one_line_error(run_cli("bench", bad, "-o", tmp_path / "r3"), "nosuch")
