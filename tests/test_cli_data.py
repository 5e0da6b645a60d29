"""End to end through the CLI: ``augtool data ...``, help, version, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, needs_shared_data, read_jsonl, write_jsonl


def test_help_is_instant_and_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from augtool.cli.app import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "for command in ('data', 'embed', 'train', 'eval', 'predict'):\n"
        "    assert command in result.output\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
        "assert 'transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_python_dash_m_and_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "augtool", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("augtool ")
    assert "--install-completion" in run_cli("--help").stdout


def test_validate_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    good = EXAMPLES / "intents-train.jsonl"
    result = run_cli("data", "validate", good, "--require-label")
    assert result.exit_code == 0 and "96 rows, all valid" in result.stdout

    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "1", "text": "ok", "label": "a"},
            "{not json",
            {"id": "3", "text": ""},
            {"id": "1", "text": "again", "label": "a"},
            {"id": "5", "label": "a"},
        ],
    )
    result = run_cli("data", "validate", bad)
    assert result.exit_code == 1
    assert f"{bad}:2: invalid JSON" in result.stderr
    assert f'{bad}:3: field "text" is empty' in result.stderr
    assert f'{bad}:4: duplicate id "1"' in result.stderr
    assert f'{bad}:5: missing field "text"' in result.stderr
    assert "1 valid rows, 4 invalid" in result.stdout


def test_stats_table_and_json() -> None:
    result = run_cli("data", "stats", EXAMPLES / "intents-train.jsonl")
    assert result.exit_code == 0
    assert "billing" in result.stdout and "length (words)" in result.stdout
    stats = json.loads(run_cli("data", "stats", EXAMPLES / "intents-train.jsonl", "--json").stdout)
    assert stats["rows"] == 96
    assert stats["labels"] == {"account": 24, "billing": 24, "shipping": 24, "technical": 24}


def test_sample_writes_k_per_label_with_provenance(tmp_path: Path) -> None:
    out = tmp_path / "k3.jsonl"
    result = run_cli(
        "data", "sample", EXAMPLES / "intents-train.jsonl", "--k", 3, "--seed", 7, "-o", out
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert len(rows) == 12
    assert sorted({r["label"] for r in rows}) == ["account", "billing", "shipping", "technical"]
    meta = json.loads((tmp_path / "k3.jsonl.meta.json").read_text())
    assert meta["config"] == {"k": 3, "seed": 7, "if_short": "error"}
    assert meta["counts"] == {"input": 96, "output": 12}

    again = tmp_path / "again.jsonl"
    run_cli("data", "sample", EXAMPLES / "intents-train.jsonl", "--k", 3, "--seed", 7, "-o", again)
    assert again.read_text() == out.read_text()


def test_sample_refuses_to_overwrite_and_k_errors(tmp_path: Path) -> None:
    out = tmp_path / "k.jsonl"
    out.write_text("keep me\n")
    source = EXAMPLES / "intents-train.jsonl"
    result = run_cli("data", "sample", source, "--k", 2, "-o", out)
    assert_one_line_error(result, str(out), "--overwrite")
    assert out.read_text() == "keep me\n"
    assert run_cli("data", "sample", source, "--k", 2, "-o", out, "--overwrite").exit_code == 0
    assert len(read_jsonl(out)) == 8

    result = run_cli("data", "sample", source, "--k", 0, "-o", tmp_path / "zero.jsonl")
    assert_one_line_error(result, "--k", "at least 1")
    result = run_cli("data", "sample", source, "--k", 30, "-o", tmp_path / "big.jsonl")
    assert_one_line_error(result, "--k", "--if-short all")
    assert not (tmp_path / "big.jsonl").exists()
    result = run_cli(
        "data", "sample", source, "--k", 30, "--if-short", "all", "-o", tmp_path / "all.jsonl"
    )
    assert result.exit_code == 0 and len(read_jsonl(tmp_path / "all.jsonl")) == 96
    result = run_cli("data", "sample", source, "--k", 1, "-o", source, "--overwrite")
    assert_one_line_error(result, "is also an input")


def test_sample_maps_fields_and_skips_invalid_rows_into_rejects(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"qid": "a", "question": "why so?", "cat": "DESC"},
            {"qid": "b", "question": "who is she?", "cat": "HUM"},
            '{"qid": "c", "question": ',
            {"qid": "d", "question": "", "cat": "HUM"},
        ],
    )
    out = tmp_path / "s.jsonl"
    mapped = ("--text-field", "question", "--label-field", "cat")
    result = run_cli("data", "sample", source, "--k", 1, "-o", out, *mapped, "--skip-invalid")
    assert result.exit_code == 0, result.stderr
    assert "skipped 2 invalid rows" in result.stderr
    rows = read_jsonl(out)
    assert {tuple(sorted(r)) for r in rows} == {("cat", "id", "qid", "question")}
    rejects = read_jsonl(tmp_path / "s.jsonl.rejects.jsonl")
    assert [r["line"] for r in rejects] == [3, 4]

    result = run_cli("data", "sample", source, "--k", 1, "-o", tmp_path / "t.jsonl", *mapped)
    assert_one_line_error(result, f"{source}:3", "invalid JSON")
    assert not (tmp_path / "t.jsonl").exists()


def test_bad_input_files_are_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_one_line_error(run_cli("data", "stats", empty), str(empty), "no records")
    assert_one_line_error(
        run_cli("data", "stats", tmp_path / "missing.jsonl"), "missing.jsonl", "file not found"
    )
    non_string = write_jsonl(tmp_path / "ns.jsonl", [{"text": ["a"]}])
    assert_one_line_error(
        run_cli("data", "stats", non_string),
        f"{non_string}:1",
        'field "text" must be a string, got array',
    )


def test_split_is_stratified(tmp_path: Path) -> None:
    train, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    result = run_cli(
        "data",
        "split",
        EXAMPLES / "intents-train.jsonl",
        "-o",
        train,
        "--dev-output",
        dev,
        "--dev-fraction",
        0.25,
        "--seed",
        1,
    )
    assert result.exit_code == 0, result.stderr
    dev_rows, train_rows = read_jsonl(dev), read_jsonl(train)
    assert len(dev_rows) == 24 and len(train_rows) == 72
    assert {r["label"] for r in dev_rows} == {"account", "billing", "shipping", "technical"}
    assert not {r["id"] for r in dev_rows} & {r["id"] for r in train_rows}
    assert (tmp_path / "dev.jsonl.meta.json").is_file()


def test_shared_trec_data_validates_and_samples(tmp_path: Path) -> None:
    trec = needs_shared_data("trec", "train.jsonl")
    assert run_cli("data", "validate", trec, "--require-label").exit_code == 0
    out = tmp_path / "trec-k10-s3.jsonl"
    assert run_cli("data", "sample", trec, "--k", 10, "--seed", 3, "-o", out).exit_code == 0
    labels = [r["label"] for r in read_jsonl(out)]
    assert len(labels) == 60 and len(set(labels)) == 6
