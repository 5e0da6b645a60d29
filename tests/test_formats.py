"""CSV, TSV, Parquet and Hugging Face datasets, read by every command as JSONL is.

Each format goes through real commands (``eda``, ``data``, ``train``, ``eval``) and must
give what the JSONL equivalent gives; bad input in each format is one line naming the
source and line (or row); the optional packages missing is a one-line install hint.
The one-line errors of the catalogue live in tests/test_bad_input.py.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import keyword_rows, read_jsonl, write_jsonl

from augtool.data import RecordSpec, read_records
from augtool.data.corpus import index_corpus
from augtool.data.formats import dataset_fingerprint, source_of
from augtool.errors import DataError, source_name

EDA = ("--n-aug", 2, "--ops", "rd,rs", "--seed", 3)


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``load_dataset`` caches into a private folder, never the user's."""
    cache = tmp_path / "hf-datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return path


def labelled_dataset(rows: list[dict]) -> datasets.Dataset:
    """``rows`` as a datasets.Dataset whose label column is a ClassLabel."""
    names = sorted({row["label"] for row in rows})
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=names),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "id": [r["id"] for r in rows],
            "text": [r["text"] for r in rows],
            "label": [names.index(r["label"]) for r in rows],
        },
        features=features,
    )


def write_format(kind: str, rows: list[dict], folder: Path) -> str:
    """``rows`` in format ``kind``; returns what the command line names."""
    if kind == "csv":
        return str(write_csv(folder / "data.csv", rows))
    if kind == "tsv":
        return str(write_csv(folder / "data.tsv", rows, delimiter="\t"))
    if kind == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), folder / "data.parquet")
        return str(folder / "data.parquet")
    if kind == "parquet-classlabel":  # datasets' to_parquet keeps the label names
        labelled_dataset(rows).to_parquet(folder / "labelled.parquet")
        return str(folder / "labelled.parquet")
    if kind == "save_to_disk":
        labelled_dataset(rows).save_to_disk(folder / "saved")
        return str(folder / "saved")
    if kind == "datasetdict-split":
        half = labelled_dataset(rows)
        datasets.DatasetDict({"train": half, "test": half.select(range(2))}).save_to_disk(
            folder / "dd"
        )
        return str(folder / "dd") + ":train"
    if kind == "hf-local-folder":  # load_dataset on a local folder of data files
        (folder / "hub-like").mkdir()
        write_jsonl(folder / "hub-like" / "train.jsonl", rows)
        return f"hf://{folder / 'hub-like'}:train"
    raise AssertionError(kind)


KINDS = [
    "csv",
    "tsv",
    "parquet",
    "parquet-classlabel",
    "save_to_disk",
    "datasetdict-split",
    "hf-local-folder",
]


@pytest.mark.parametrize("kind", KINDS)
def test_eda_on_each_format_equals_eda_on_jsonl(kind: str, tmp_path: Path) -> None:
    rows = keyword_rows(3, seed=5)
    rows[1]["text"] = 'a "quoted", comma-holding\nsecond line'  # CSV quoting, two lines
    jsonl = write_jsonl(tmp_path / "data.jsonl", rows)
    other = write_format(kind, rows, tmp_path)
    expected, got = tmp_path / "from-jsonl.jsonl", tmp_path / "from-other.jsonl"
    assert run_cli("eda", jsonl, "-o", expected, *EDA).exit_code == 0
    result = run_cli("eda", other, "-o", got, *EDA)
    assert result.exit_code == 0, result.stderr
    assert read_jsonl(got) == read_jsonl(expected)
    meta = json.loads((tmp_path / "from-other.jsonl.meta.json").read_text())
    [source] = meta["inputs"]
    assert source["path"] == source_name(other) and len(source["sha256"]) == 64
    # Rerun: the same input fingerprint, so the finished output is recognised.
    again = run_cli("eda", other, "-o", got, *EDA)
    assert again.exit_code == 0 and "already complete" in again.stdout


def test_rows_are_numbered_by_line_in_text_files_and_by_row_otherwise(tmp_path: Path) -> None:
    rows = [{"text": "first row"}, {"text": "second\nrow"}, {"text": "third row"}]
    csv_file = write_csv(tmp_path / "plain.csv", rows)
    parquet_file = write_format("parquet", rows, tmp_path)
    # CSV: the header is line 1, a quoted cell spanning two lines counts from its first.
    assert [r.id for r in read_records(csv_file)] == ["plain-2", "plain-3", "plain-5"]
    assert [r.id for r in read_records(parquet_file)] == ["data-1", "data-2", "data-3"]


def test_field_mapping_and_output_formats(tmp_path: Path) -> None:
    rows = [
        {"sid": f"s{i}", "sentence": f"text number {i} with words", "y": label}
        for i, label in enumerate(["pos", "neg"] * 4)
    ]
    source = write_csv(tmp_path / "mapped.csv", rows)
    fields = ("--text-field", "sentence", "--label-field", "y")
    missing = run_cli("data", "sample", source, "-o", tmp_path / "x.jsonl", "--k", 2)
    assert_one_line_error(missing, f"{source}:1", 'no column "text"', "sentence, y")

    out = tmp_path / "sample.parquet"
    result = run_cli("data", "sample", source, "-o", out, "--k", 2, *fields)
    assert result.exit_code == 0, result.stderr
    written = pq.read_table(out).to_pylist()
    assert len(written) == 4 and set(written[0]) == {"id", "sentence", "y", "sid"}
    assert json.loads((tmp_path / "sample.parquet.meta.json").read_text())["format"] == "parquet"

    train, dev = tmp_path / "train.csv", tmp_path / "dev.tsv"
    result = run_cli("data", "split", out, "-o", train, "--dev-output", dev, *fields)
    assert result.exit_code == 0, result.stderr
    assert train.read_text().splitlines()[0] == "id,sentence,y,sid"
    assert dev.read_text().splitlines()[0] == "id\tsentence\ty\tsid"
    forced = tmp_path / "forced.out"
    result = run_cli("data", "sample", source, "-o", forced, "--k", 1, "--format", "csv", *fields)
    assert result.exit_code == 0 and forced.read_text().startswith("id,sentence,y,sid")


def test_convert_round_trips_through_csv_and_parquet(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": "plain", "label": "x", "score": 3},
        {"id": "b", "text": "soft, with comma", "label_dist": {"x": 0.25, "y": 0.75}},
        {"id": "c", "text": "made", "label": "y", "aug": {"method": "eda", "parents": ["a"]}},
        {"text": "no id, no label"},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    expected = [r.to_dict() for r in read_records(source)]
    for suffix in ("csv", "tsv", "parquet"):
        middle, back = tmp_path / f"mid.{suffix}", tmp_path / f"back-{suffix}.jsonl"
        assert run_cli("data", "convert", source, "-o", middle).exit_code == 0
        result = run_cli("data", "convert", middle, "-o", back)
        assert result.exit_code == 0, result.stderr
        got = read_jsonl(back)
        if suffix != "parquet":  # CSV cells are text: numbers come back as strings
            assert got[0].pop("score") == "3"
            got[0]["score"] = 3
        assert got == expected, suffix
    assert expected[3]["id"] == "in-4"  # derived ids are written, so they survive


def test_csv_values_label_dist_and_empty_cells(tmp_path: Path) -> None:
    source = tmp_path / "values.csv"
    source.write_text(
        'id,text,label,label_dist,note\na,one,7,,\n,two,,"{""p"": 1, ""q"": 3}",kept\nc,three,,,\n',
        encoding="utf-8",
    )
    first, second, third = read_records(source)
    assert (first.id, first.label, first.extra) == ("a", "7", {})  # an empty cell: no field
    assert second.id == "values-3" and second.label is None
    assert second.label_dist == {"p": 0.25, "q": 0.75} and second.extra == {"note": "kept"}
    assert third.label is None and third.label_dist is None
    with pytest.raises(DataError, match=r"values\.csv:3: unknown label"):
        read_records(source, RecordSpec(require_label=False, known_labels=frozenset({"7"})))


def test_classlabel_names_and_missing_labels_from_datasets(tmp_path: Path) -> None:
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    data = datasets.Dataset.from_dict(
        {"text": ["bad", "good", "unknown"], "label": [0, 1, -1]}, features=features
    )
    data.save_to_disk(tmp_path / "cl")
    data.to_parquet(tmp_path / "cl.parquet")
    for source in (tmp_path / "cl", tmp_path / "cl.parquet"):
        labels = [r.label for r in read_records(source)]
        assert labels == ["neg", "pos", None], source
    # Plain integers stay as JSONL integers would: strings of their digits.
    pq.write_table(pa.table({"text": ["t"], "label": [4], "w": [float("nan")]}), tmp_path / "i.pq")
    [row] = read_records(tmp_path / "i.pq")
    assert row.label == "4" and row.extra == {}  # NaN is null, and a null cell no field


def test_datasetdict_folder_needs_a_split(tmp_path: Path) -> None:
    path = write_format("datasetdict-split", keyword_rows(1), tmp_path)
    folder = path.rsplit(":", 1)[0]
    result = run_cli("data", "stats", folder)
    assert_one_line_error(result, folder, "splits train, test", f"{folder}:train")
    assert_one_line_error(run_cli("data", "stats", f"{folder}:dev"), 'no split "dev"')
    assert run_cli("data", "stats", f"{folder}:test", "--json").exit_code == 0


def test_hf_local_folder_and_unknown_names_offline(tmp_path: Path) -> None:
    rows = keyword_rows(2)
    path = write_format("hf-local-folder", rows, tmp_path)
    result = run_cli("data", "stats", path, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == 6
    # Without a split, the only one is used; a missing split lists what there is.
    assert run_cli("data", "validate", path.rsplit(":", 1)[0]).exit_code == 0
    assert_one_line_error(run_cli("data", "stats", path[:-5] + "test"), 'no split "test"')
    unknown = run_cli("data", "stats", "hf://no-such-owner/no-such-set:train")
    assert_one_line_error(
        unknown, "hf://no-such-owner/no-such-set:train", "not in the local datasets cache"
    )


def test_fingerprints_follow_the_content(tmp_path: Path) -> None:
    rows = keyword_rows(2)
    saved = Path(write_format("save_to_disk", rows, tmp_path))
    hub = write_format("hf-local-folder", rows, tmp_path)
    before = dataset_fingerprint(saved), dataset_fingerprint(Path(hub))
    assert before == (dataset_fingerprint(saved), dataset_fingerprint(hub))
    assert before[1]["path"] == source_name(hub)
    labelled_dataset(rows[:3]).save_to_disk(tmp_path / "saved-2")
    write_jsonl(tmp_path / "hub-like" / "train.jsonl", rows[:3])
    assert dataset_fingerprint(tmp_path / "saved-2")["sha256"] != before[0]["sha256"]
    assert dataset_fingerprint(hub)["sha256"] != before[1]["sha256"]


def test_resume_on_csv_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from augtool.data import writer as writer_module

    source = write_csv(tmp_path / "in.csv", keyword_rows(200, seed=2))  # 600 rows, 2 chunks
    first = tmp_path / "whole.jsonl"
    assert run_cli("eda", source, "-o", first, *EDA).exit_code == 0
    original = writer_module.JsonlWriter.write
    calls = {"n": 0}

    def interrupted(self, rows):
        calls["n"] += 1
        if calls["n"] == 1:
            original(self, list(rows)[:7])
            raise KeyboardInterrupt
        return original(self, rows)

    resumed = tmp_path / "resumed.jsonl"
    with monkeypatch.context() as patch:
        patch.setattr(writer_module.JsonlWriter, "write", interrupted)
        assert run_cli("eda", source, "-o", resumed, *EDA).exit_code == 130
    result = run_cli("eda", source, "-o", resumed, *EDA)
    assert result.exit_code == 0 and "resuming: 7 rows already written" in result.stderr
    assert resumed.read_bytes() == first.read_bytes()


def test_train_on_csv_and_eval_on_parquet(tiny_st: Path, tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", keyword_rows(6, seed=1, prefix="tr"))
    test_rows = keyword_rows(3, seed=2, prefix="te")
    test_jsonl = write_jsonl(tmp_path / "test.jsonl", test_rows)
    test_parquet = labelled_dataset(test_rows)
    test_parquet.to_parquet(tmp_path / "test.parquet")
    model = tmp_path / "model"
    result = run_cli("train", train, "-o", model, "--encoder", tiny_st, "--epochs", 1)
    assert result.exit_code == 0, result.stderr
    scores = [
        json.loads(run_cli("eval", model, data, "--json").stdout)
        for data in (test_jsonl, tmp_path / "test.parquet")
    ]
    assert scores[0]["accuracy"] == scores[1]["accuracy"] and scores[1]["n"] == 9


def test_corpus_index_reads_rows_back_from_csv_and_parquet(tmp_path: Path) -> None:
    rows = keyword_rows(2)
    rows[2]["text"] = "spans\ntwo lines"
    for source in (write_csv(tmp_path / "c.csv", rows), write_format("parquet", rows, tmp_path)):
        index = index_corpus(source, unique_ids=True)
        with index.open() as handle:
            assert index.read(handle, [4, 2, 0]) == [
                rows[4]["text"],
                rows[2]["text"],
                rows[0]["text"],
            ]


def test_csv_row_problems_name_the_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(b'id,text,label\na,fine,x\nb,bad \xff byte,x\nc,"unclosed quote,x\n')
    rejects: list = []
    records = read_records(source, rejects=rejects)
    assert [r.id for r in records] == ["a"]
    assert [(r.line, r.reason.split(" (")[0]) for r in rejects] == [
        (3, "not valid UTF-8"),
        (4, "not valid CSV"),
    ]
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text("text,text\na,b\n", encoding="utf-8")
    result = run_cli("data", "validate", duplicate)
    assert_one_line_error(result, f"{duplicate}:1", 'duplicate column "text"')
    bad_json = tmp_path / "soft.csv"
    bad_json.write_text('text,label_dist\nt,"{""a"": }"\n', encoding="utf-8")
    assert_one_line_error(run_cli("data", "stats", bad_json), f"{bad_json}:2", "label_dist")


@pytest.mark.parametrize(
    ("module", "kind", "what"),
    [("pyarrow", "parquet", "Parquet files"), ("datasets", "save_to_disk", "datasets folders")],
)
def test_missing_package_is_a_one_line_hint(
    module: str, kind: str, what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_format(kind, keyword_rows(1), tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    result = run_cli("data", "stats", path)
    assert_one_line_error(result, path, f"reading {what} needs the {module!r} package",
                          "pip install 'augtool[formats]'")  # fmt: skip
    jsonl = write_jsonl(tmp_path / "d.jsonl", keyword_rows(1))
    out = tmp_path / "o.parquet"
    if module == "pyarrow":
        result = run_cli("data", "convert", jsonl, "-o", out)
        assert_one_line_error(result, "--output", "writing Parquet needs")
        assert not out.exists()
    # CSV needs neither package.
    assert run_cli("data", "convert", jsonl, "-o", tmp_path / "o.csv").exit_code == 0


def test_paths_name_sources_as_typed() -> None:
    hub = source_of(Path("hf://glue:sst2:validation"))
    assert (hub.kind, str(hub.path), hub.config, hub.split) == ("hub", "glue", "sst2", "validation")
    assert hub.name == "hf://glue:sst2:validation"
    assert source_of("data.TSV").kind == "tsv" and source_of("x.data").kind == "jsonl"
    assert source_name("hf:///abs/folder:train") == source_name(Path("hf:///abs/folder:train"))


def test_bench_configs_name_datasets_in_any_format(tmp_path: Path) -> None:
    import yaml

    from augtool.bench.config import load_bench_config

    write_csv(tmp_path / "train.csv", keyword_rows(3, seed=1, prefix="tr"))
    test = write_format("hf-local-folder", keyword_rows(2, seed=2, prefix="te"), tmp_path)
    config = {
        "datasets": {"kw": {"train": "train.csv", "test": test}},
        "k": [2],
        "seeds": [1],
        "methods": {"base": {}},
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(config))
    [dataset] = load_bench_config(tmp_path / "bench.yaml").datasets
    assert dataset.train == str(tmp_path / "train.csv") and dataset.test == test
