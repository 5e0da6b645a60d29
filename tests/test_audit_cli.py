"""augtool audit through the CLI: the offline report on the real default encoder, gates,
the task-model and LLM judges (hf: log-likelihood, openai: on `transformers serve`), the
shared intrusion measure, planted corruptions on TREC, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import keyword_rows, needs_shared_data, read_jsonl, write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ["sports", "food", "music"]


def _aug(row: dict, method: str = "eda") -> dict:
    return {**row, "aug": {"method": method, "parents": [row["id"]]}}


@pytest.fixture
def audit_data(tmp_path: Path) -> dict:
    """Originals, an augmented set with planted wrong labels and copies, and a second set
    without provenance."""
    reference = keyword_rows(20, seed=1, prefix="ref")
    rows = [_aug(r) for r in keyword_rows(10, seed=7, prefix="aug")]
    wrong = {}
    for row in rows[:4]:
        row["label"] = LABELS[(LABELS.index(row["label"]) + 1) % 3]
        wrong[row["id"]] = row["label"]
    copies = set()
    for row, source in zip(rows[4:7], reference[:3], strict=True):
        row["text"], row["label"] = source["text"], source["label"]
        copies.add(row["id"])
    plain = [
        {k: v for k, v in r.items() if k != "aug"} for r in keyword_rows(5, seed=9, prefix="p")
    ]
    return {
        "reference": write_jsonl(tmp_path / "train.jsonl", reference),
        "aug": write_jsonl(tmp_path / "eda.jsonl", rows),
        "plain": write_jsonl(tmp_path / "mine.jsonl", plain),
        "wrong": wrong,
        "copies": copies,
        "rows": rows,
    }


def test_offline_report_flags_planted_rows_and_gates_exit_4(audit_data: dict, tmp_path: Path):
    out = tmp_path / "audit"
    result = run_cli(
        "audit", audit_data["aug"], audit_data["plain"], "--reference", audit_data["reference"],
        "-o", out, "--seeds", 2, "--fail-under", "label=0.5",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "mine.jsonl: no `aug` provenance" in result.stderr
    for name in ("report.json", "report.html", "map.png"):
        assert (out / name).is_file(), name
    assert not (tmp_path / "audit.partial").exists()
    report = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in report["sets"]] == ["eda", "mine"]
    assert report["sets"][1]["methods"] == {"mine": 15}
    assert list(report["checks"]) == ["label", "distribution", "diversity", "duplicates"]
    for check in report["checks"].values():
        assert set(check["figures"]) == {"eda", "mine"}
    label = report["checks"]["label"]
    flagged = {f["id"] for f in label["flagged"] if f["set"] == "eda"}
    assert set(audit_data["wrong"]) <= flagged, flagged
    assert len(flagged - set(audit_data["wrong"])) <= 2
    assert label["figures"]["eda"]["issues"] == len(flagged)
    assert label["figures"]["eda"]["by_method"]["eda"]["rows"] == 30
    dupes = {f["id"]: f["kind"] for f in report["checks"]["duplicates"]["flagged"]}
    assert all(dupes[i] == "exact-original" for i in audit_data["copies"])
    copies = {
        f["id"] for f in report["checks"]["diversity"]["flagged"] if f["kind"] == "copy-original"
    }
    assert copies == audit_data["copies"]
    dist = report["checks"]["distribution"]["figures"]["eda"]
    assert len(dist["kl"]["values"]) == 2 and dist["mauve"]["mean"] > 0
    assert 0 <= dist["precision"] <= 1 and dist["seeds"] == 2
    assert report["gates"] == [
        {"check": "label", "set": s, "value": report["checks"]["label"]["figures"][s]["fidelity"],
         "threshold": 0.5, "passed": True}
        for s in ("eda", "mine")
    ]  # fmt: skip
    html = (out / "report.html").read_text()
    assert "Worst rows" in html or "worst rows" in html.lower()
    assert next(iter(audit_data["wrong"])) in html
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command"] == "audit" and meta["counts"]["set:eda"] == 30

    # A gate that fails: exit code 4, the report still written whole, with the verdicts.
    result = run_cli(
        "audit", audit_data["aug"], "--reference", audit_data["reference"], "-o", out,
        "--overwrite", "--checks", "duplicates", "--fail-under", "duplicates=0.99", "--no-map",
    )  # fmt: skip
    assert result.exit_code == 4, result.stderr
    assert "--fail-under: duplicates of eda is 0.9000 < 0.99" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is False and list(report["checks"]) == ["duplicates"]
    assert not (out / "map.png").exists()

    # Without --overwrite the folder is refused before any work.
    again = run_cli("audit", audit_data["aug"], "--reference", audit_data["reference"], "-o", out)
    assert_one_line_error(again, "already exists")


def test_task_model_judge_flags_rows_it_predicts_otherwise(
    audit_data: dict, keyword_task_model: Path, tmp_path: Path
) -> None:
    import numpy as np

    from augtool.core.taskmodel.model import TaskModel

    out = tmp_path / "audit"
    result = run_cli(
        "audit", audit_data["aug"], "--reference", audit_data["reference"], "-o", out,
        "--judge", f"model:{keyword_task_model}", "--checks", "label,duplicates", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["space"] == "model" and report["judge"]["labels"] == sorted(LABELS)
    model = TaskModel.load(keyword_task_model)
    rows = audit_data["rows"]
    predicted = np.asarray(model.logits([r["text"] for r in rows])).argmax(axis=1)
    expected = {
        r["id"] for r, p in zip(rows, predicted, strict=True) if model.labels[p] != r["label"]
    }
    assert {f["id"] for f in report["checks"]["label"]["flagged"]} == expected
    assert json.loads(result.stdout)["checks"]["label"]["figures"]["eda"]["issues"] == len(expected)


def _mixed_rows() -> list[dict]:
    """Rows as `invmix generate` writes them (soft labels, lambda, parents' labels) and
    hard-label rows."""
    rng = random.Random(3)
    rows = []
    for i, row in enumerate(keyword_rows(3, seed=4, prefix="mix")):
        other = LABELS[(LABELS.index(row["label"]) + 1) % 3]
        lam = round(rng.uniform(0.05, 0.95), 3)
        rows.append(
            {
                "id": row["id"],
                "text": row["text"],
                "label_dist": {row["label"]: lam, other: round(1 - lam, 3)},
                "aug": {"method": "invmix", "parents": [f"a{i}", f"b{i}"], "lambda": lam,
                        "parent_labels": [row["label"], other]},
            }
        )  # fmt: skip
    rows += [_aug(r, "llm-rewrite") for r in keyword_rows(2, seed=6, prefix="hard")]
    return rows


def test_llm_judge_uses_a3_and_a4_like_invmix_intrusion(
    tiny_llama: Path, audit_data: dict, tmp_path: Path
) -> None:
    rows = _mixed_rows()
    aug = write_jsonl(tmp_path / "mixed.jsonl", rows)
    out = tmp_path / "audit"
    result = run_cli(
        "audit", aug, "--reference", audit_data["reference"], "-o", out,
        "--judge", f"hf:{tiny_llama}", "--checks", "label", "--lambda-bins", 5,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    figures = report["checks"]["label"]["figures"]["mixed"]
    assert figures["scoring"] == "loglik" and figures["mixed_rows"] == 9
    assert sum(figures["intrusion"].values()) == 9 and figures["unjudged"] == 0
    assert set(figures["by_method"]) == {"invmix", "llm-rewrite"}
    assert sum(b["rows"] for b in figures["by_lambda"]) == 9
    assert report["judge"]["prompts"]["label"] == "invmix.a3.label"
    assert report["judge"]["prompts"]["match"] == "invmix.a4.intrusion-match"
    assert (out / "curve.png").is_file()

    # invmix intrusion measures the same thing with the same code: same verdicts.
    mixed_only = write_jsonl(tmp_path / "invmix.jsonl", rows[:9])
    result = run_cli(
        "invmix", "intrusion", mixed_only, "--judge", f"hf:{tiny_llama}", "--sample", 0,
        "-o", tmp_path / "intrusion.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    intrusion = json.loads((tmp_path / "intrusion.json").read_text())
    intruded = {r["id"] for r in intrusion["rows"] if r["verdict"] in ("inside", "outside")}
    flagged = {f["id"] for f in report["checks"]["label"]["flagged"]}
    assert flagged & {r["id"] for r in rows[:9]} == intruded
    assert figures["intrusion"] == {
        k: v for k, v in intrusion["counts"].items() if k in figures["intrusion"]
    }


def test_openai_judge_on_a_real_server_and_an_unreachable_one(
    transformers_server: dict, audit_data: dict, tmp_path: Path
) -> None:
    out = tmp_path / "audit"
    result = run_cli(
        "audit", audit_data["aug"], "--reference", audit_data["reference"], "-o", out,
        "--judge", f"openai:{transformers_server['model']}", "--checks", "label",
        "--base-url", transformers_server["base_url"], "--sample", 6, "--no-map",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    figures = json.loads((out / "report.json").read_text())["checks"]["label"]["figures"]["eda"]
    assert figures["sampled"] == 6 and figures["rows"] + figures["unjudged"] == 6
    assert figures["scoring"] == "parse"

    result = run_cli(
        "audit", audit_data["aug"], "--reference", audit_data["reference"],
        "-o", tmp_path / "down", "--judge", "openai:m", "--base-url", "http://127.0.0.1:9/v1",
        "--max-retries", 0, "--timeout", 2,
    )  # fmt: skip
    assert_one_line_error(result, "127.0.0.1:9")
    assert not (tmp_path / "down").exists() and not (tmp_path / "down.partial").exists()


def test_trec_planted_corruptions_are_found_offline(tmp_path: Path) -> None:
    """Issue 20's bar: >= 80% of each planted kind found, <= 10% false alarms."""
    rows = read_jsonl(needs_shared_data("trec", "train.jsonl"))
    rng = random.Random(0)
    rng.shuffle(rows)
    reference, aug = rows[:2000], [_aug(r, "heldout") for r in rows[2000:3000]]
    labels = sorted({r["label"] for r in rows})
    order = list(range(len(aug)))
    rng.shuffle(order)
    wrong, copies, same = (set(order[k * 100 : (k + 1) * 100]) for k in range(3))
    for i in wrong:
        aug[i]["label"] = rng.choice([x for x in labels if x != aug[i]["label"]])
    for i in copies:
        source = rng.choice(reference)
        aug[i]["text"], aug[i]["label"] = source["text"], source["label"]
    one = aug[order[300]]
    for i in same:
        aug[i]["text"], aug[i]["label"] = one["text"], one["label"]
    ref = write_jsonl(tmp_path / "ref.jsonl", reference)
    planted = write_jsonl(tmp_path / "planted.jsonl", aug)
    out = tmp_path / "audit"
    result = run_cli(
        "audit", planted, "--reference", ref, "-o", out, "--checks", "label,duplicates",
        "--no-map",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    index = {r["id"]: i for i, r in enumerate(aug)}
    label = {index[f["id"]] for f in report["checks"]["label"]["flagged"]}
    dupes = {index[f["id"]] for f in report["checks"]["duplicates"]["flagged"]}
    clean = set(range(len(aug))) - wrong - copies - same
    assert len(label & wrong) >= 80, len(label & wrong)
    assert len(dupes & copies) >= 80 and len(dupes & same) >= 80
    assert len(label & clean) / len(clean) <= 0.10, len(label & clean)
    assert len(dupes & (clean | wrong)) / len(clean | wrong) <= 0.10


def test_bad_input_is_one_line(audit_data: dict, tmp_path: Path) -> None:
    ref, aug = audit_data["reference"], audit_data["aug"]
    out = tmp_path / "out"

    def audit(*args: object):
        return run_cli("audit", *args, "-o", out)

    unknown = write_jsonl(tmp_path / "unknown.jsonl", [
        {"id": "u1", "text": "a song", "label": "music"},
        {"id": "u2", "text": "a poem", "label": "poetry"},
    ])  # fmt: skip
    assert_one_line_error(audit(unknown, "--reference", ref), "unknown.jsonl:2", "poetry")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_one_line_error(audit(empty, "--reference", ref), "empty.jsonl", "no records")
    assert_one_line_error(audit(aug), "--reference", "required")
    assert_one_line_error(audit(aug, "--reference", ref, "--names", "a,b"), "--names")
    assert_one_line_error(audit(aug, aug, "--reference", ref), "--names", "must differ")
    assert_one_line_error(
        audit(aug, "--reference", ref, "--fail-under", "speed=0.5"), "--fail-under", "speed"
    )
    assert_one_line_error(
        audit(aug, "--reference", ref, "--fail-under", "label=2"), "--fail-under", "between"
    )
    assert_one_line_error(
        audit(aug, "--reference", ref, "--checks", "duplicates", "--fail-under", "label=0.9"),
        "--fail-under",
        "label check",
    )
    assert_one_line_error(audit(aug, "--reference", ref, "--checks", "speed"), "--checks")
    assert_one_line_error(
        audit(aug, "--reference", ref, "--judge", f"model:{tmp_path / 'nope'}"), "no such folder"
    )
    assert_one_line_error(audit(aug, "--reference", ref, "--space", "model"), "--space")
    assert_one_line_error(audit(aug, "--reference", tmp_path / "missing.jsonl"), "missing.jsonl")
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_llm_judge_verdicts_follow_the_replies_and_the_request_budget(
    audit_data: dict, tmp_path: Path
) -> None:
    from augtool.testing.stub_openai import Reply, StubOpenAIServer

    rows = [_aug(r, "llm-rewrite") for r in keyword_rows(1, seed=6, prefix="hard")]
    rows.append(_aug({"id": "hard-extra", "text": "pizza and pasta", "label": "food"}))
    rows += _mixed_rows()[:2]
    aug = write_jsonl(tmp_path / "judged.jsonl", rows)
    hard = rows[:4]
    wrong_label = next(x for x in LABELS if x != hard[1]["label"])
    replies = [hard[0]["label"], wrong_label, "no idea", hard[3]["label"]]  # A.3, in order
    replies += ["Yes", "No", rows[5]["aug"]["parent_labels"][1]]  # A.4 step 1, then step 2
    args = (
        "audit", aug, "--reference", audit_data["reference"], "--judge", "openai:stub",
        "--checks", "label", "--concurrency", 1, "--no-map",
    )  # fmt: skip
    with StubOpenAIServer() as server:
        server.script(*[Reply(r) for r in replies])
        result = run_cli(*args, "-o", tmp_path / "audit", "--base-url", server.base_url)
        assert result.exit_code == 0, result.stderr
        assert len(server.requests) == 7
        # A budget smaller than the job stops it (exit 3) before anything is written.
        stopped = run_cli(
            *args, "-o", tmp_path / "cut", "--base-url", server.base_url, "--max-requests", 2,
            "--no-cache",
        )  # fmt: skip
        assert stopped.exit_code == 3, stopped.stderr
        assert "--max-requests 2 reached" in stopped.stderr
        assert not (tmp_path / "cut").exists()
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    figures = report["checks"]["label"]["figures"]["judged"]
    assert figures["unjudged"] == 1 and figures["rows"] == 5 and figures["issues"] == 2
    assert figures["intrusion"] == {"none": 1, "inside": 1, "outside": 0, "unjudged": 0}
    flagged = {f["id"]: f["reason"] for f in report["checks"]["label"]["flagged"]}
    assert set(flagged) == {hard[1]["id"], rows[5]["id"]}
    assert "inside intrusion" in flagged[rows[5]["id"]]
