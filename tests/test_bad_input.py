"""The bad-input catalogue: every command, fed what a hostile but fair user would feed it,
answers with one ``error:`` line naming the file:line or the option, a non-zero exit, no
traceback and no output.

A new command joins by adding rows to :data:`CASES`: ``command line`` with
``{placeholders}`` for the prepared files (see :func:`workspace`), then the fragments the
error line must contain.
"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import keyword_rows, write_jsonl

GOOD = "{good}"

# (id, command line, fragments expected in the error line)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    # ---- files: missing, folders, malformed rows, NaN, empty, missing fields
    ("data-validate-missing", "data validate {missing}", ("{missing}", "file not found")),
    ("data-validate-dir", "data validate {folder}", ("{folder}", "is a directory")),
    ("data-validate-column", "data validate {malformed}", ("{malformed}:2", "at column 39")),
    ("data-validate-nan", "data validate {nan}", ("{nan}:2", "NaN at column")),
    ("data-stats-empty", "data stats {empty}", ("{empty}", "empty")),
    ("data-stats-malformed", "data stats {malformed}", ("{malformed}:2", "invalid JSON")),
    ("data-sample-k", "data sample {good} -o {out} --k 0", ("--k", "at least 1")),
    ("data-sample-nolabel", "data sample {nolabel} -o {out} --k 1", ("{nolabel}:1", "label")),
    ("data-split-fraction", "data split {good} -o {out} --dev-output {out2} --dev-fraction 1.5",
     ("--dev-fraction",)),
    ("data-convert-malformed", "data convert {malformed} -o {out}", ("{malformed}:2",
     "invalid JSON")),
    ("data-convert-format", "data convert {good} -o {out} --format xml", ("--format", "xml")),
    # ---- other formats: CSV, Parquet, datasets folders, hf:// (docs/data-format.md#formats)
    ("data-validate-csv-ragged", "data validate {csv_ragged}", ("{csv_ragged}:3",
     "2 cells, but the header has 3 columns")),
    ("eda-csv-notext", "eda {csv_notext} -o {out}", ("{csv_notext}:1", 'no column "text"',
     "columns: id, body, label", "--text-field")),
    ("data-stats-csv-header-only", "data stats {csv_header_only}", ("{csv_header_only}",
     "no records (only a header: id, text, label)")),
    ("train-not-parquet", "train {not_parquet} -o {out_dir}", ("{not_parquet}",
     "not a Parquet file")),
    ("eda-hf-unknown-offline", "eda hf://no-such-owner/no-such-set:train -o {out}",
     ("hf://no-such-owner/no-such-set:train", "not in the local datasets cache")),
    ("data-sample-datasetdict", "data sample {dataset_dict} -o {out} --k 1", ("{dataset_dict}",
     "splits test, train", "{dataset_dict}:test")),
    ("eda-malformed", "eda {malformed} -o {out}", ("{malformed}:2", "at column 39")),
    ("eda-nan", "eda {nan} -o {out}", ("{nan}:2", "NaN")),
    ("eda-notext", "eda {notext} -o {out}", ("{notext}:1", 'missing field "text"')),
    ("eda-empty", "eda {empty} -o {out}", ("{empty}", "empty")),
    ("eda-n-aug", "eda {good} -o {out} --n-aug 0", ("--n-aug", "at least 1")),
    ("eda-alpha", "eda {good} -o {out} --alpha-sr 1.5", ("--alpha-sr", "between 0 and 1")),
    ("eda-seed", "eda {good} -o {out} --seed -1", ("--seed", "at least 0")),
    ("eda-yaml", "eda {good} -o {out} --config {bad_yaml}", ("{bad_yaml}:2:", "invalid YAML")),
    ("eda-yaml-key", "eda {good} -o {out} --config {unknown_key_yaml}", ("{unknown_key_yaml}",
     "unknown option")),
    ("eda-yaml-range", "eda {good} -o {out} --config {range_yaml}", ("--n-aug", "{range_yaml}")),
    ("eda-output-is-input", "eda {good} -o {good}", ("is also an input",)),
    ("eda-not-int", "eda {good} -o {out} --n-aug many", ("--n-aug", "integer")),
    ("eda-unknown-option", "eda {good} -o {out} --bogus", ("--bogus",)),
    ("bt-n", "bt {good} -o {out} --n 0", ("--n", "at least 1")),
    ("bt-missing", "bt {missing} -o {out}", ("{missing}", "file not found")),
    ("embed-batch", "embed {good} -o {out_npy} --batch-size 0", ("--batch-size",)),
    ("embed-model", "embed {good} -o {out_npy} --encoder {missing_dir}", ("{missing_dir}",)),
    # ---- models: training and using them
    ("train-epochs", "train {good} -o {out_dir} --epochs 0", ("--epochs",)),
    ("train-batch", "train {good} -o {out_dir} --batch-size -1", ("--batch-size", "at least 1")),
    ("train-lr", "train {good} -o {out_dir} --lr 0", ("--lr", "greater than 0")),
    ("train-nolabel", "train {nolabel} -o {out_dir}", ("{nolabel}:1", 'missing field "label"')),
    ("train-encoder", "train {good} -o {out_dir} --encoder {missing_dir}", ("{missing_dir}",)),
    ("eval-batch-0", "eval {model} {good} -o {out} --batch-size 0", ("--batch-size",)),
    ("eval-batch-neg", "eval {model} {good} -o {out} --batch-size -5", ("--batch-size",)),
    ("eval-unknown-label", "eval {model} {unknown_label}", ("{unknown_label}:1",
     'unknown label "weather"')),
    ("eval-model-path", "eval {missing_dir} {good}", ("{missing_dir}",)),
    ("eval-damaged", "eval {damaged_model} {good}", ("cannot load model", "{damaged_model}")),
    ("predict-batch-neg", "predict {model} {good} -o {out} --batch-size -1", ("--batch-size",)),
    ("predict-batch-0", "predict {model} {good} -o {out} --batch-size 0", ("--batch-size",)),
    ("predict-damaged", "predict {damaged_model} {good} -o {out}", ("cannot load model",)),
    ("predict-malformed", "predict {model} {malformed} -o {out}", ("{malformed}:2",)),
    # ---- LLM commands
    ("llm-unreachable", "llm rewrite {good} -o {out} --llm openai:m --base-url {unreachable}",
     ("{unreachable}",)),
    ("llm-temperature", "llm rewrite {good} -o {out} --llm openai:m --temperature -1",
     ("--temperature", "at least 0")),
    ("llm-top-p", "llm generate {good} -o {out} --llm openai:m --top-p 0", ("--top-p",)),
    ("llm-concurrency", "llm rewrite {good} -o {out} --llm openai:m --concurrency 0",
     ("--concurrency",)),
    ("llm-backend", "llm rewrite {good} -o {out} --llm nosuch:m", ("--llm", "nosuch")),
    ("llm-mix-n", "llm mix {good} -o {out} --llm openai:m --pairs 0", ("--pairs", "at least 1")),
    ("llm-label-unreachable",
     "llm label {good} -o {out} --llm openai:m --labels {labels} --base-url {unreachable}",
     ("{unreachable}",)),
    # ---- bench
    ("bench-yaml", "bench run {bad_yaml} -o {out_dir}", ("{bad_yaml}:2:", "invalid YAML")),
    ("bench-missing", "bench run {missing} -o {out_dir}", ("{missing}",)),
    ("bench-report-missing", "bench report {missing_dir}", ("{missing_dir}",)),
    # ---- methods
    ("invmix-warm-lm-epochs", "invmix warm-lm {good} -o {out_dir} --epochs 0", ("--epochs",)),
    ("invmix-adaptor-llm", "invmix train-adaptor {good} -o {out_dir} --llm hf:{missing_dir}",
     ("{missing_dir}",)),
    ("invmix-generate-model", "invmix generate {good} --model {missing_dir} -o {out}",
     ("{missing_dir}",)),
    ("invmix-reconstruct-model", "invmix reconstruct {good} --model {missing_dir} -o {out}",
     ("{missing_dir}",)),
    ("invmix-refine-adaptor", "invmix refine {good} --adaptor {missing_dir} -o {out_dir}",
     ("{missing_dir}",)),
    ("invmix-intrusion-malformed", "invmix intrusion {malformed} -o {out} --judge openai:m",
     ("{malformed}:2",)),
    ("topex-explore-min-samples", "topex explore {good} -o {out_dir} --min-samples 0",
     ("--min-samples",)),
    ("topex-augment-folder", "topex augment {missing_dir} -o {out} --generator eda",
     ("{missing_dir}", "not a topex explore folder")),
    ("topex-score-folder", "topex score {folder}", ("{folder}", "not a topex explore folder")),
    ("pinr-condense-m", "pinr condense {good} -o {out} --m -1", ("--m", "at least 0")),
    ("pinr-decoder-tokens", "pinr train-decoder {good} -o {out_dir} --num-tokens 0",
     ("--num-tokens",)),
    ("pinr-evaluate-missing", "pinr evaluate {missing} --reference {good} -o {out}",
     ("{missing}",)),
    ("lmmixup-build-column", "lmmixup build {lm_malformed} -o {out}", ("{lm_malformed}:2",
     "at column 55")),
    ("lmmixup-build-nan", "lmmixup build {lm_nan} -o {out}", ("{lm_nan}:2", "NaN")),
    ("lmmixup-sft-lora", "lmmixup sft {good} --model {missing_dir} -o {out_dir} --lora-r 0",
     ("--lora-r",)),
    ("lmmixup-grpo-model", "lmmixup grpo {lm_good} --model hf:{missing_dir} -o {out_dir}",
     ("{missing_dir}",)),
    ("lmmixup-distill-nan", "lmmixup distill {lm_nan} --model openai:m -o {out}",
     ("{lm_nan}:2", "NaN")),
    ("lmmixup-rate-judge", "lmmixup rate {lm_good} -o {out}", ("--judge", "required")),
    ("lmmixup-rate-unreachable", "lmmixup rate {lm_good} -o {out} --judge openai:m "
     "--base-url {unreachable} --max-retries 0", ("--base-url",)),
    ("lmmixup-distill-unrated", "lmmixup distill {lm_good} --model openai:m -o {out} "
     "--quality-bank {lm_good}", ("{lm_good}", "has no ratings", "--quality cosine")),
    # ---- co-annotation
    ("coannotate-one-annotator", "coannotate {good} -o {out} --labels {labels} "
     "--annotator field:label", ("--annotator", "at least two annotators, got 1")),
    ("coannotate-scheme", "coannotate run {good} -o {out} --labels {labels} "
     "--annotator field:label --annotator nosuch:m",
     ("--annotator", "unknown annotator scheme 'nosuch'")),
    ("coannotate-not-a-model", "coannotate run {good} -o {out} --labels {labels} "
     "--annotator field:label --annotator model:{folder}", ("--annotator", "is not a task model")),
    ("coannotate-field-nowhere", "coannotate run {good} -o {out} --labels {labels} "
     "--annotator field:label --annotator field:reviewer", ("--annotator", "no row of {good}")),
    ("coannotate-label-not-covered", "coannotate run {unknown_label} -o {out} --labels {labels} "
     "--annotator field:label --annotator model:{model}", ("{unknown_label}:1", '"weather"')),
    ("coannotate-merge-not-labelled", "coannotate merge {good} {good} -o {out}",
     ("{good}:1", "not a file written by")),
    ("coannotate-report-missing", "coannotate report {missing}", ("{missing}", "file not found")),
    # ---- audit
    ("audit-unknown-label", "audit {unknown_label} --reference {good} -o {out_dir}",
     ("{unknown_label}:1", "weather")),
    ("audit-empty", "audit {empty} --reference {good} -o {out_dir}", ("{empty}", "empty")),
    ("audit-gate", "audit {good} --reference {good} -o {out_dir} --fail-under label",
     ("--fail-under", "NAME=VALUE")),
    ("audit-unreachable", "audit {good} --reference {good} -o {out_dir} --judge openai:m "
     "--base-url {unreachable} --max-retries 0", ("--base-url",)),
]  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory, tiny_model_store) -> Path:
    """A tiny task model (one epoch on the keyword task)."""
    root = tmp_path_factory.mktemp("bad-input-model")
    train = write_jsonl(root / "train.jsonl", keyword_rows(4, seed=1))
    model = root / "model"
    result = run_cli("train", train, "-o", model, "--encoder", tiny_model_store["st"],
                     "--epochs", 1)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return model


@pytest.fixture(scope="module")
def dataset_dict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``save_to_disk`` DatasetDict (two splits), written once."""
    import datasets

    folder = tmp_path_factory.mktemp("datasetdict") / "dd"
    part = datasets.Dataset.from_dict({"text": ["a b c", "d e f"], "label": ["x", "y"]})
    datasets.DatasetDict({"test": part, "train": part}).save_to_disk(folder)
    return folder


@pytest.fixture
def workspace(tmp_path: Path, trained_model: Path, dataset_dict: Path) -> dict[str, str]:
    """Every file a catalogue row may name, good and bad."""
    good_rows = keyword_rows(2, seed=3)
    good = write_jsonl(tmp_path / "good.jsonl", good_rows)
    row = json.dumps(good_rows[0])
    malformed = write_jsonl(
        tmp_path / "malformed.jsonl", [row, '{"id": "x", "text": "no closing brace"']
    )
    nan = write_jsonl(
        tmp_path / "nan.jsonl", [row, '{"id": "x", "text": "t", "label": "food", "w": NaN}']
    )
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    nolabel = write_jsonl(tmp_path / "nolabel.jsonl", [{"id": "a", "text": "hello there"}])
    notext = write_jsonl(tmp_path / "notext.jsonl", [{"id": "a", "body": "hello", "label": "x"}])
    unknown = write_jsonl(
        tmp_path / "unknown.jsonl", [{"id": "u", "text": "rain again", "label": "weather"}]
    )
    (tmp_path / "bad.yaml").write_text("n_aug: 2\nseed: 1: 2\n", encoding="utf-8")
    (tmp_path / "unknown.yaml").write_text("n_aug: 2\nbogus_option: 1\n", encoding="utf-8")
    (tmp_path / "range.yaml").write_text("n_aug: -4\n", encoding="utf-8")
    lm_row = json.dumps({"instruction": "Add the numbers", "input": "2 and 2", "output": "4"})
    lm_malformed = write_jsonl(
        tmp_path / "lm-malformed.jsonl",
        [lm_row, '{"instruction": "Say hi", "input": "", "output": "hi" "extra": 1}'],
    )
    lm_good = write_jsonl(tmp_path / "lm-good.jsonl", [lm_row])
    lm_nan = write_jsonl(
        tmp_path / "lm-nan.jsonl",
        [lm_row, '{"instruction": "Say hi", "input": "", "output": "hi", "score": NaN}'],
    )
    (tmp_path / "folder").mkdir()
    (tmp_path / "labels.yaml").write_text(
        "sports: games\nfood: meals\nmusic: songs\n", encoding="utf-8"
    )
    (tmp_path / "ragged.csv").write_text("id,text,label\na,one two,x\nb,three\n", encoding="utf-8")
    (tmp_path / "notext.csv").write_text("id,body,label\na,hello,x\n", encoding="utf-8")
    (tmp_path / "header.csv").write_text("id,text,label\n", encoding="utf-8")
    (tmp_path / "not.parquet").write_text(row + "\n", encoding="utf-8")
    damaged = Path(shutil.copytree(trained_model, tmp_path / "damaged-model"))
    head = damaged / "head.safetensors"
    head.write_bytes(head.read_bytes()[:40])
    return {
        "good": str(good),
        "malformed": str(malformed),
        "nan": str(nan),
        "empty": str(tmp_path / "empty.jsonl"),
        "missing": str(tmp_path / "missing.jsonl"),
        "missing_dir": str(tmp_path / "no-such-model"),
        "folder": str(tmp_path / "folder"),
        "labels": str(tmp_path / "labels.yaml"),
        "nolabel": str(nolabel),
        "notext": str(notext),
        "unknown_label": str(unknown),
        "bad_yaml": str(tmp_path / "bad.yaml"),
        "unknown_key_yaml": str(tmp_path / "unknown.yaml"),
        "range_yaml": str(tmp_path / "range.yaml"),
        "lm_malformed": str(lm_malformed),
        "lm_nan": str(lm_nan),
        "lm_good": str(lm_good),
        "csv_ragged": str(tmp_path / "ragged.csv"),
        "csv_notext": str(tmp_path / "notext.csv"),
        "csv_header_only": str(tmp_path / "header.csv"),
        "not_parquet": str(tmp_path / "not.parquet"),
        "dataset_dict": str(dataset_dict),
        "model": str(trained_model),
        "damaged_model": str(damaged),
        "out": str(tmp_path / "out" / "result.jsonl"),
        "out2": str(tmp_path / "out" / "dev.jsonl"),
        "out_npy": str(tmp_path / "out" / "vectors.npy"),
        "out_dir": str(tmp_path / "out" / "folder-output"),
        "unreachable": f"http://127.0.0.1:{_closed_port()}/v1",
    }


@pytest.mark.parametrize(
    ("command", "fragments"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_input_gets_one_line_error(
    command: str, fragments: tuple[str, ...], workspace: dict[str, str]
) -> None:
    args = [part.format(**workspace) for part in shlex.split(command)]
    result = run_cli(*args)
    assert_one_line_error(result, *[fragment.format(**workspace) for fragment in fragments])
    out_folder = Path(workspace["out"]).parent
    left = sorted(p.name for p in out_folder.iterdir()) if out_folder.exists() else []
    assert left == [], f"a failed command left output behind: {left}"


def test_the_catalogue_covers_every_command() -> None:
    """Every leaf command has at least one row (bench cell is internal)."""
    import typer

    from augtool.cli.app import app

    def leaves(command, path=()):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from leaves(sub, (*path, name))
        else:
            yield " ".join(path)

    covered = set()
    for _, line, _ in CASES:
        words = line.split()
        covered.add(" ".join(words[:2]) if words[0] in _GROUPS else words[0])
    missing = {
        name
        for name in leaves(typer.main.get_command(app))
        if name not in covered and name not in _NOT_IN_CATALOGUE
    }
    assert not missing, f"commands with no bad-input row: {sorted(missing)}"


_GROUPS = {"data", "llm", "bench", "invmix", "topex", "pinr", "lmmixup", "coannotate"}
_NOT_IN_CATALOGUE: set[str] = {"bench cell"}
