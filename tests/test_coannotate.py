"""augtool coannotate: aggregation quality on simulated annotators, the CLI end to end on
real tiny annotators (hf:, openai: on `transformers serve`, a trained task model, a
person's field), review/merge/report, exports, resume and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import keyword_rows, read_jsonl, write_jsonl

from augtool.data.records import Record
from augtool.methods.coannotate import coannotate
from augtool.testing.stub_openai import Reply, StubOpenAIServer

LABELS = ["sports", "food", "music"]


def simulate(
    count: int, accuracies: dict[str, float], labels: list[str], seed: int = 0
) -> tuple[list[str], dict[str, list[str]]]:
    """True labels and, per annotator, answers wrong on exactly ``(1 - accuracy) * count``
    rows (a uniformly drawn other label)."""
    rng = random.Random(seed)
    truth = [rng.choice(labels) for _ in range(count)]
    answers = {}
    for name, accuracy in accuracies.items():
        wrong = set(rng.sample(range(count), round((1 - accuracy) * count)))
        answers[name] = [
            rng.choice([x for x in labels if x != y]) if i in wrong else y
            for i, y in enumerate(truth)
        ]
    return truth, answers


ACCURACIES = {"a1": 0.95, "a2": 0.8, "a3": 0.65, "a4": 0.55, "a5": 0.45}


def test_dawid_skene_beats_majority_and_estimates_each_annotators_accuracy() -> None:
    labels = ["billing", "shipping", "account", "technical"]
    truth, answers = simulate(600, ACCURACIES, labels)
    records = [Record(id=f"r{i}", text=f"row {i}") for i in range(len(truth))]

    def accuracy(method: str) -> tuple[float, dict]:
        result = coannotate(records, answers, method=method)
        got = [row["label"] for row in result.rows]
        return sum(g == t for g, t in zip(got, truth, strict=True)) / len(truth), result

    majority, _ = accuracy("majority")
    dawid_skene, result = accuracy("dawid-skene")
    assert dawid_skene > majority + 0.02, (dawid_skene, majority)
    for name, simulated in ACCURACIES.items():
        estimated = result.aggregation.estimated_accuracy[name]
        assert abs(estimated - simulated) <= 0.05, (name, estimated, simulated)
    # weighted vote and GLAD weigh the better annotators up too (GLAD is slow: fewer rows)
    truth, answers = simulate(200, ACCURACIES, labels)
    records = records[:200]
    majority = accuracy("majority")[0]
    assert accuracy("weighted")[0] > majority and accuracy("glad")[0] > majority


def test_review_file_holds_exactly_the_rows_under_the_threshold(tmp_path: Path) -> None:
    truth, answers = simulate(120, {"f1": 0.9, "f2": 0.7, "f3": 0.6}, LABELS, seed=3)
    rows = []
    for i in range(len(truth)):
        row = {"id": f"r{i}", "text": f"text {i}"}
        row.update({name: values[i] for name, values in answers.items()})
        if i % 10 == 0:
            del row["f3"]  # not every field on every row
        rows.append(row)
    rows.append({"id": "nobody", "text": "no annotator answered this one"})
    pool = write_jsonl(tmp_path / "pool.jsonl", rows)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(LABELS))
    out, review = tmp_path / "out.jsonl", tmp_path / "review.jsonl"
    result = run_cli(
        "coannotate", pool, "-o", out, "--labels", labels,
        "--annotator", "field:f1", "--annotator", "field:f2", "--annotator", "field:f3",
        "--review", review, "--min-agreement", 0.7, "--min-confidence", 0.9,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    written = read_jsonl(out)
    assert [r["id"] for r in written] == [r["id"] for r in rows]

    def agreement(row: dict, label: str | None) -> float | None:
        given = [row[f] for f in ("f1", "f2", "f3") if f in row]
        return sum(g == label for g in given) / len(given) if given and label else None

    expected = {
        r["id"]
        for r in written
        if agreement(r, r["label"]) is None
        or agreement(r, r["label"]) < 0.7
        or r["confidence"] < 0.9
    }
    for row in written:
        if row["label"] is not None:
            assert row["agreement"] == pytest.approx(agreement(row, row["label"]), abs=1e-4)
    reviewed = read_jsonl(review)
    assert {r["id"] for r in reviewed} == expected
    assert 0 < len(expected) < len(written)
    assert "nobody" in expected
    first = next(r for r in reviewed if r["id"] != "nobody")
    assert first["label"] is None and first["suggested_label"] in LABELS
    assert set(first["annotations"]) == {"field:f1", "field:f2", "field:f3"}


def _pool(tmp_path: Path) -> tuple[Path, Path, list[dict]]:
    rows = keyword_rows(4, seed=5, prefix="pool")
    for index, row in enumerate(rows):
        label = row.pop("label")
        if index % 3 == 0:
            row["human"] = label  # a person labelled a third of the pool
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(LABELS))
    return write_jsonl(tmp_path / "pool.jsonl", rows), labels, rows


def test_cli_end_to_end_with_four_kinds_of_annotator(
    tiny_llama: Path, keyword_task_model: Path, transformers_server: dict, tmp_path: Path
) -> None:
    pool, labels, rows = _pool(tmp_path)
    out, review = tmp_path / "labelled.jsonl", tmp_path / "review.jsonl"
    annotators = [
        f"llama=hf:{tiny_llama}",
        f"served=openai:{transformers_server['model']}",
        f"clf=model:{keyword_task_model}",
        "person=field:human",
    ]
    result = run_cli(
        "coannotate", pool, "-o", out, "--labels", labels,
        *[part for spec in annotators for part in ("--annotator", spec)],
        "--base-url", transformers_server["base_url"], "--concurrency", 2,
        "--aggregate", "dawid-skene", "--review", review, "--min-agreement", 0.67,
        "--export", "label-studio",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    written = read_jsonl(out)
    assert [r["id"] for r in written] == [r["id"] for r in rows]
    names = {"llama", "served", "clf", "person"}
    for row in written:
        assert set(row["annotations"]) == names
        assert row["label"] in LABELS
        assert row["annotations"]["llama"] in LABELS  # log-likelihood always picks one
        assert row["annotations"]["clf"] in LABELS
        served = row["annotations"]["served"]
        assert served is None or served in LABELS  # a toy model's reply is often unparsed
        if served is None:
            assert row["coannotation"]["no_answer"]["served"] in ("unparsed", "failed")
        assert 0 < row["agreement"] <= 1 and 0 < row["confidence"] <= 1
        assert row["coannotation"]["method"] == "dawid-skene"
        assert row["coannotation"]["source"] == "aggregate"
        assert (row["annotations"]["person"] is None) == ("human" not in row)
    # the trained classifier learned the keyword task
    truth = {r["id"]: r["label"] for r in keyword_rows(4, seed=5, prefix="pool")}
    right = sum(r["annotations"]["clf"] == truth[r["id"]] for r in written)
    assert right >= 0.75 * len(written)

    reviewed = read_jsonl(review)
    expected = [r["id"] for r in written if r["agreement"] < 0.67]
    assert [r["id"] for r in reviewed] == expected and len(expected) >= 2
    for row in reviewed:
        assert row["label"] is None and set(row["annotations"]) == names
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    kinds = {a["name"]: a["kind"] for a in meta["annotators"]}
    assert kinds == {"llama": "llm", "served": "llm", "clf": "model", "person": "human"}
    assert meta["labels"] == LABELS and meta["counts"]["rows"] == len(rows)
    assert not Path(f"{out}.answers.jsonl.partial").exists()  # the checkpoint is gone
    tasks = json.loads((tmp_path / "review.label-studio.json").read_text())
    assert len(tasks) == len(reviewed)
    config = (tmp_path / "review.label-studio.xml").read_text()
    assert all(f'<Choice value="{label}"/>' in config for label in LABELS)

    # people decide every review row but the last (left null): human wins, recorded so
    decided = [{"id": r["id"], "label": "music"} for r in reviewed]
    decided[-1]["label"] = None
    decisions = write_jsonl(tmp_path / "decided.jsonl", decided)
    final = tmp_path / "final.jsonl"
    result = run_cli("coannotate", "merge", out, decisions, "-o", final)
    assert result.exit_code == 0, result.stderr
    merged = {r["id"]: r for r in read_jsonl(final)}
    assert len(merged) == len(written)
    for row in written:
        after = merged[row["id"]]
        if row["id"] in expected[:-1]:
            assert after["label"] == "music"
            assert after["coannotation"]["source"] == "human"
            assert after["coannotation"]["aggregate_label"] == row["label"]
        else:
            assert after == row

    report, plot = tmp_path / "report.json", tmp_path / "confusion.png"
    result = run_cli("coannotate", "report", final, "-o", report, "--plot", plot)
    assert result.exit_code == 0, result.stderr
    figures = json.loads(report.read_text())
    assert figures["humans"] == ["person"]
    assert figures["per_annotator"]["clf"]["compared"] >= 1
    assert plot.stat().st_size > 0 and "Fleiss" in result.stdout


def _stub_pool(tmp_path: Path) -> tuple[Path, Path]:
    rows = keyword_rows(3, seed=7, prefix="s")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(LABELS))
    return write_jsonl(tmp_path / "pool.jsonl", rows), labels


def _script_labels(server: StubOpenAIServer, pool: Path, repeats: int = 1) -> None:
    """The stub answers each row with its true label, except "food" rows, where it says
    something naming no label."""
    for row in read_jsonl(pool):
        reply = row["label"] if row["label"] != "food" else "I would rather not say"
        server.script(*[Reply(reply)] * repeats, when=row["text"])


def test_unparsed_replies_are_counted_never_guessed(tmp_path: Path) -> None:
    pool, labels = _stub_pool(tmp_path)
    out = tmp_path / "out.jsonl"
    with StubOpenAIServer() as server:
        _script_labels(server, pool)
        result = run_cli(
            "coannotate", pool, "-o", out, "--labels", labels,
            "--annotator", "stub=openai:stub", "--annotator", "gold=field:label",
            "--base-url", server.base_url, "--aggregate", "majority",
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    for row in read_jsonl(out):
        if row["annotations"]["gold"] == "food":
            assert row["annotations"]["stub"] is None
            assert row["coannotation"]["no_answer"] == {"stub": "unparsed"}
            assert row["agreement"] == 1.0  # only the one answer counts
        else:
            assert row["annotations"]["stub"] == row["annotations"]["gold"]
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    stub = next(a for a in meta["annotators"] if a["name"] == "stub")
    assert stub["answers"] == {"answered": 6, "unparsed": 3}
    assert "stub: 3 replies named no label" in result.stderr


def test_interrupted_run_resumes_without_asking_again_or_duplicating(tmp_path: Path) -> None:
    pool, labels = _stub_pool(tmp_path)
    out = tmp_path / "out.jsonl"
    args = [
        "coannotate", pool, "-o", out, "--labels", labels,
        "--annotator", "stub=openai:stub", "--annotator", "gold=field:label",
        "--no-cache", "--concurrency", 1,
    ]  # fmt: skip
    with StubOpenAIServer() as server:
        _script_labels(server, pool, repeats=2)
        stopped = run_cli(*args, "--base-url", server.base_url, "--max-requests", 4)
        assert stopped.exit_code == 3, stopped.stderr
        assert "--max-requests 4 reached" in stopped.stderr
        assert not out.exists()  # nothing half-written
        assert len(read_jsonl(Path(f"{out}.answers.jsonl.partial"))) == 4
        # another aggregation does not change the answers: they are kept
        resumed = run_cli(*args, "--base-url", server.base_url, "--aggregate", "majority")
        assert resumed.exit_code == 0, resumed.stderr
        assert "resuming: 4 answers kept" in resumed.stderr
        asked = [r["body"]["messages"][-1]["content"] for r in server.requests]
    # nine rows, each asked once over both runs, although the cache was off
    assert len(asked) == 9 and len(set(asked)) == 9
    rows = read_jsonl(out)
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in read_jsonl(pool))
    assert not Path(f"{out}.answers.jsonl.partial").exists()


def test_report_figures_match_hand_computed_values(tmp_path: Path) -> None:
    # A, B: machines; H: a person. Row 5 was reviewed (people said y; the aggregate said x).
    table = [
        ("x", "x", "x", "x"),
        ("x", "y", "x", "x"),
        ("y", "y", "y", "y"),
        ("y", "x", "y", "y"),
        ("x", "x", "y", "x"),
        ("y", "y", "y", "y"),
        ("x", "x", None, "x"),
    ]
    rows = []
    for i, (a, b, h, label) in enumerate(table, start=1):
        row = {
            "id": str(i),
            "text": f"t{i}",
            "label": label,
            "annotations": {"A": a, "B": b, "H": h},
        }
        row["coannotation"] = {"method": "majority", "source": "aggregate"}
        rows.append(row)
    rows[4]["label"] = "y"
    rows[4]["coannotation"] = {"method": "majority", "source": "human", "aggregate_label": "x"}
    labelled = write_jsonl(tmp_path / "labelled.jsonl", rows)
    result = run_cli("coannotate", "report", labelled, "--human", "H", "--json")
    assert result.exit_code == 0, result.stderr
    figures = json.loads(result.stdout)
    per = figures["per_annotator"]
    # against H (and the reviewed y of row 5): A right on 5 of 6 rows, B on 3 of 6
    assert (per["A"]["accuracy"], per["A"]["compared"]) == (0.8333, 6)
    assert (per["B"]["accuracy"], per["B"]["compared"]) == (0.5, 6)
    assert (per["H"]["accuracy"], per["H"]["compared"]) == (1.0, 1)  # only the reviewed row
    assert figures["aggregate"] == {"accuracy": 0.8333, "compared": 6, "reviewed_rows": 1}
    # Cohen's kappa A-B on 7 rows: p_o = 5/7, p_e = 25/49, kappa = 10/24
    pair = next(k for k in figures["cohen_kappa"] if (k["a"], k["b"]) == ("A", "B"))
    assert pair == {"a": "A", "b": "B", "kappa": round(10 / 24, 4), "items": 7}
    # Fleiss on the 6 complete rows: per-row P = 1, 1/3, 1, 1/3, 1/3, 1, so P = 2/3;
    # p_x = 8/18, p_y = 10/18, P_e = 164/324; kappa = (216 - 164) / (324 - 164) = 0.325
    assert figures["fleiss_kappa"] == {"kappa": 0.325, "items": 6}
    # Krippendorff (nominal): o_xy = o_yx = 3 of n = 20 values, n_x = n_y = 10:
    # D_o = 6/20, D_e = 200/380, alpha = 1 - 0.3 / (200/380) = 0.43
    assert figures["krippendorff_alpha"] == {"alpha": 0.43, "items": 7}
    assert figures["confusion"]["labels"] == ["x", "y"]
    assert figures["confusion"]["matrices"]["A"] == [[2, 0], [1, 3]]


def test_exports_are_the_tools_import_formats_and_merge_reads_their_exports(
    tmp_path: Path,
) -> None:
    pool, labels = _stub_pool(tmp_path)
    rows = read_jsonl(pool)
    for index, row in enumerate(rows):  # two people who disagree on every other row
        row["p1"] = row["label"]
        row["p2"] = row["label"] if index % 2 else LABELS[(LABELS.index(row["label"]) + 1) % 3]
    pool = write_jsonl(tmp_path / "pool2.jsonl", rows)
    out, review = tmp_path / "out.jsonl", tmp_path / "review.jsonl"
    common = [pool, "-o", out, "--labels", labels, "--annotator", "field:p1",
              "--annotator", "field:p2", "--review", review, "--aggregate", "majority"]  # fmt: skip
    assert run_cli("coannotate", *common, "--export", "argilla").exit_code == 0
    reviewed = read_jsonl(review)
    assert len(reviewed) == 5  # rows 0, 2, 4, 6, 8
    records = json.loads((tmp_path / "review.argilla.json").read_text())
    first = records[0]
    assert set(first) == {"id", "fields", "metadata", "suggestions", "responses", "vectors",
                          "_server_id"}  # fmt: skip
    assert first["id"] == reviewed[0]["id"]
    assert first["fields"]["text"] == reviewed[0]["text"]
    assert "field:p1: " in first["fields"]["annotations"]
    assert first["suggestions"]["label"]["value"] == reviewed[0]["suggested_label"]
    assert first["metadata"] == {"agreement": 0.5, "confidence": 0.5}

    result = run_cli("coannotate", *common, "--export", "label-studio", "--overwrite")
    assert result.exit_code == 0, result.stderr
    tasks = json.loads((tmp_path / "review.label-studio.json").read_text())
    task = tasks[0]
    assert task["data"]["row_id"] == reviewed[0]["id"] and task["data"]["text"]
    versions = [p["model_version"] for p in task["predictions"]]
    assert versions == ["aggregate (majority)", "field:p1", "field:p2"]
    choice = task["predictions"][1]["result"][0]
    assert choice["from_name"] == "label" and choice["to_name"] == "text"
    assert choice["type"] == "choices" and choice["value"]["choices"] == [rows[0]["p1"]]

    # what the tools hand back after people labelled: Label Studio's JSON export ...
    for number, task in enumerate(tasks):
        task["id"] = number + 1
        task["annotations"] = [
            {"id": 7, "completed_by": 3, "was_cancelled": False,
             "result": [{**choice, "value": {"choices": ["music"]}}]}
        ]  # fmt: skip
    exported = tmp_path / "ls-export.json"
    exported.write_text(json.dumps(tasks))
    final = tmp_path / "final.jsonl"
    result = run_cli("coannotate", "merge", out, exported, "-o", final)
    assert result.exit_code == 0, result.stderr
    merged = {r["id"]: r for r in read_jsonl(final)}
    for row in reviewed:
        assert merged[row["id"]]["label"] == "music"
        assert merged[row["id"]]["coannotation"]["reviewers"] == ["3"]
    # ... and Argilla's records.to_json, where two reviewers disagree on the first record
    for record in records:
        record["responses"] = {"label": [{"value": "food", "user_id": "u1"}]}
    records[0]["responses"]["label"].append({"value": "sports", "user_id": "u2"})
    argilla = tmp_path / "argilla-export.json"
    argilla.write_text(json.dumps(records))
    result = run_cli("coannotate", "merge", out, argilla, "-o", final, "--overwrite")
    assert result.exit_code == 0, result.stderr
    merged = {r["id"]: r for r in read_jsonl(final)}
    assert merged[reviewed[0]["id"]]["coannotation"]["source"] == "aggregate"  # undecided
    assert all(merged[r["id"]]["label"] == "food" for r in reviewed[1:])
    assert "1 left undecided" in result.stdout


def test_bad_input_is_one_line_and_writes_nothing(keyword_task_model: Path, tmp_path: Path) -> None:
    pool, labels = _stub_pool(tmp_path)
    out = tmp_path / "out" / "labelled.jsonl"
    two = ["--annotator", "field:label", "--annotator", f"model:{keyword_task_model}"]

    def fails(*args: object, fragments: tuple[str, ...]) -> None:
        assert_one_line_error(run_cli("coannotate", *args), *fragments)
        left = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
        assert left == [], left

    narrow = tmp_path / "narrow.json"
    narrow.write_text(json.dumps(["sports", "food"]))
    # the model predicts "music", which this labels file does not name
    fails(pool, "-o", out, "--labels", narrow, *two, fragments=("--annotator", "music"))
    # a person's label the labels file does not name: file and line
    fails(
        pool, "-o", out, "--labels", narrow, "--annotator", "field:label",
        "--annotator", "field:text", fragments=(f"{pool}:", "music"),
    )  # fmt: skip
    fails(pool, "-o", out, "--labels", labels, "--annotator", "field:label",
          "--annotator", "field:label", fragments=("--annotator", "given twice"))  # fmt: skip
    fails(pool, "-o", out, "--labels", labels, *two, "--export", "argilla",
          fragments=("--export", "--review"))  # fmt: skip
    gold = ["--annotator", "field:label"]
    fails(pool, "-o", out, "--labels", labels, *gold, "--annotator", "openai:m,scoring=loglik",
          fragments=("--annotator", "loglik"))  # fmt: skip
    fails(pool, "-o", out, "--labels", labels, *gold, "--annotator", "model:x,style=paper",
          fragments=("--annotator", "LLM annotators only"))  # fmt: skip
    fails(pool, "-o", out, "--labels", labels, *gold, "--annotator", "hf:m,temp=0",
          fragments=("--annotator", "unknown annotator option"))  # fmt: skip
    fails(pool, "-o", out, "--labels", labels, *two, "--aggregate", "median",
          fragments=("--aggregate", "dawid-skene"))  # fmt: skip
    fails(pool, "-o", out, "--labels", labels, *two, "--min-agreement", 1.5,
          fragments=("--min-agreement",))  # fmt: skip

    # merge: review ids must be rows of the labelled file (named by file and line)
    labelled = tmp_path / "labelled.jsonl"
    result = run_cli("coannotate", pool, "-o", labelled, "--labels", labels, *two)
    assert result.exit_code == 0, result.stderr
    decisions = write_jsonl(
        tmp_path / "decided.jsonl",
        [{"id": "s-sports-0", "label": "food"}, {"id": "nope", "label": "food"}],
    )
    fails("merge", labelled, decisions, "-o", out, fragments=(f"{decisions}:2", '"nope"'))
    unknown = write_jsonl(tmp_path / "unknown.jsonl", [{"id": "s-sports-0", "label": "chess"}])
    fails("merge", labelled, unknown, "-o", out, fragments=(f"{unknown}:1", '"chess"'))
    twice = write_jsonl(
        tmp_path / "twice.jsonl",
        [{"id": "s-food-1", "label": "food"}, {"id": "s-food-1", "label": "music"}],
    )
    fails("merge", labelled, twice, "-o", out, fragments=(f"{twice}:2", "decided twice"))
    fails("report", labelled, "--human", "nobody", fragments=("--human", "nobody"))
    fails("report", pool, fragments=(f"{pool}:1", "not a file written by"))


def test_checkpoint_keeps_answers_given_before_a_crash(tmp_path: Path) -> None:
    """Orchestration: an annotator killed half-way (Ctrl-C) keeps what it answered."""
    from augtool.methods.coannotate import Annotator, AnnotatorSpec, Answer, collect_answers
    from augtool.methods.coannotate.pipeline import AnswerCheckpoint

    class Counting(Annotator):
        kind = "llm"

        def __init__(self, crash_after: int | None = None) -> None:
            super().__init__(AnnotatorSpec("counting", "hf", "m"))
            self.asked: list[str] = []
            self.crash_after = crash_after

        def annotate(self, records, sink=None):
            answers = []
            for index, record in enumerate(records):
                if self.crash_after is not None and len(self.asked) == self.crash_after:
                    raise KeyboardInterrupt
                self.asked.append(record.id)
                answers.append(Answer("food"))
                sink([index], [answers[-1]])
            return answers

    records = [Record(id=f"r{i}", text=f"t{i}") for i in range(6)]
    out = tmp_path / "out.jsonl"
    first = Counting(crash_after=4)
    checkpoint = AnswerCheckpoint(out, "key-1")
    with pytest.raises(KeyboardInterrupt):
        collect_answers(records, [first], checkpoint=checkpoint)
    checkpoint.close()
    second = Counting()
    checkpoint = AnswerCheckpoint(out, "key-1")
    answers = collect_answers(records, [second], checkpoint=checkpoint)
    checkpoint.discard()
    assert first.asked == ["r0", "r1", "r2", "r3"] and second.asked == ["r4", "r5"]
    assert [a.label for a in answers["counting"]] == ["food"] * 6
    assert not list(tmp_path.iterdir())  # the checkpoint is gone once used
