"""The ``augtool bench`` configuration: what to run, validated before anything runs.

Example (see docs/bench.md for every key)::

    datasets:
      trec:
        train: ../../../shared/data/trec/train.jsonl   # relative to this file
        test: ../../../shared/data/trec/test.jsonl
    k: [5, 10]
    seeds: [1, 2, 3]
    task_model: {epochs: 20, batch_size: 16}
    methods:
      base: {}
      eda: {alpha_sr: 0.1}
      mixup: {alpha: 0.4}
    per_original: 4
    compare: [[eda, base], [mixup, base]]
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augtool.core.taskmodel.config import TrainConfig
from augtool.errors import AugtoolError

TOP_LEVEL_KEYS = {
    "name",
    "datasets",
    "k",
    "seeds",
    "task_model",
    "methods",
    "per_original",
    "augmented_labels",
    "compare",
    "metric",
    "keep_models",
}
DATASET_KEYS = {"train", "test", "text_field", "label_field"}
METRICS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class DatasetSpec:
    """A train/test pair (paths resolved against the config file's folder)."""

    name: str
    train: str
    test: str
    text_field: str = "text"
    label_field: str = "label"


@dataclass
class BenchConfig:
    """A benchmark: datasets x K x seeds x methods, one task model."""

    datasets: list[DatasetSpec]
    k: list[int | str]
    seeds: list[int]
    methods: dict[str, dict[str, Any]]
    task_model: dict[str, Any] = field(default_factory=dict)
    name: str = "bench"
    per_original: int = 4
    augmented_labels: str = "soft"
    compare: list[list[str]] = field(default_factory=list)
    metric: str = "accuracy"
    keep_models: bool = False

    def train_config(self, seed: int, **overrides: Any) -> TrainConfig:
        """The task model's training config for one cell."""
        values = {**self.task_model, **overrides, "seed": seed}
        return TrainConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        data = dict(data)
        data["datasets"] = [DatasetSpec(**d) for d in data["datasets"]]
        return cls(**data)


def config_error(path: str | Path, message: str) -> AugtoolError:
    return AugtoolError(f"{path}: {message}")


def _k_values(raw: Any, path: Path) -> list[int | str]:
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise config_error(path, "k: give at least one K (an integer, or all)")
    out: list[int | str] = []
    for value in values:
        if isinstance(value, str) and value.strip().lower() == "all":
            out.append("all")
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            out.append(value)
        else:
            raise config_error(path, f"k: {value!r} is not a positive integer or all")
    if len(set(out)) != len(out):
        raise config_error(path, "k: values repeat")
    return out


def _resolve_data(base: Path, given: str) -> str:
    """A dataset named in a bench config: a path relative to the config, or hf://..."""
    if given.startswith("hf:/"):
        return given
    return str((base / given).resolve())


def load_bench_config(path: str | Path) -> BenchConfig:
    """Read and check a bench config (keys, types, methods, files, K against classes)."""
    from augtool.core.yamlfile import load_yaml_file
    from augtool.data.formats import is_dataset_source

    path = Path(path)
    if not path.is_file():
        raise AugtoolError(f"{path}: config file not found")
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise config_error(path, "expected a mapping of settings")
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise config_error(
            path,
            f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(TOP_LEVEL_KEYS))})",
        )
    for key in ("datasets", "k", "seeds", "methods"):
        if key not in data:
            raise config_error(path, f"missing key {key!r}")

    base = path.parent
    raw_datasets = data["datasets"]
    if not isinstance(raw_datasets, dict) or not raw_datasets:
        raise config_error(path, "datasets: a mapping of name to {train, test}")
    datasets = []
    for name, spec in raw_datasets.items():
        if not isinstance(spec, dict):
            raise config_error(path, f"datasets.{name}: expected {{train, test}}")
        bad = sorted(set(spec) - DATASET_KEYS)
        if bad:
            raise config_error(path, f"datasets.{name}: unknown key(s) {', '.join(bad)}")
        for part in ("train", "test"):
            if part not in spec:
                raise config_error(path, f"datasets.{name}: missing {part!r}")
        resolved = {part: _resolve_data(base, str(spec[part])) for part in ("train", "test")}
        for part, file in resolved.items():
            if not is_dataset_source(file):
                raise config_error(
                    path,
                    f"datasets.{name}.{part}: file not found: {spec[part]} (resolved to {file})",
                )
        datasets.append(
            DatasetSpec(
                str(name),
                resolved["train"],
                resolved["test"],
                str(spec.get("text_field", "text")),
                str(spec.get("label_field", "label")),
            )
        )

    seeds = data["seeds"] if isinstance(data["seeds"], list) else [data["seeds"]]
    if not seeds:
        raise config_error(path, "seeds: give at least one seed")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise config_error(path, "seeds: integers only")
    if len(set(seeds)) != len(seeds):
        raise config_error(path, "seeds: values repeat")

    methods = data["methods"]
    if isinstance(methods, list):
        methods = {str(m): {} for m in methods}
    if not isinstance(methods, dict) or not methods:
        raise config_error(path, "methods: a mapping of method name to its options")
    methods = {str(name): dict(options or {}) for name, options in methods.items()}

    config = BenchConfig(
        name=str(data.get("name", path.stem)),
        datasets=datasets,
        k=_k_values(data["k"], path),
        seeds=list(seeds),
        methods=methods,
        task_model=dict(data.get("task_model") or {}),
        per_original=data.get("per_original", 4),
        augmented_labels=str(data.get("augmented_labels", "soft")),
        compare=[list(pair) for pair in data.get("compare") or []],
        metric=str(data.get("metric", "accuracy")),
        keep_models=bool(data.get("keep_models", False)),
    )
    _check(config, path)
    return config


def _check(config: BenchConfig, path: Path) -> None:
    """Settings, task model and data (the methods' own options are checked against the
    method registry by :func:`augtool.bench.methods.check_methods`: this module never
    imports the registry, which imports the methods)."""
    from augtool.core.config import config_fields
    from augtool.errors import OptionError

    if not isinstance(config.per_original, int) or config.per_original < 1:
        raise config_error(path, "per_original: a positive integer")
    if config.augmented_labels not in ("soft", "hard"):
        raise config_error(path, "augmented_labels: soft or hard")
    if config.metric not in METRICS:
        raise config_error(path, f"metric: one of {', '.join(METRICS)}")
    unknown = sorted(set(config.task_model) - set(config_fields(TrainConfig)))
    if unknown:
        raise config_error(path, f"task_model: unknown key(s) {', '.join(unknown)}")
    try:
        config.train_config(seed=config.seeds[0])
        if config.task_model.get("init_from"):
            from augtool.core.taskmodel.model import resolve_init_model

            resolve_init_model(str(config.task_model["init_from"]))
    except OptionError as exc:
        raise config_error(path, f"task_model: {exc}") from exc
    for pair in config.compare:
        if len(pair) != 2 or any(m not in config.methods for m in pair):
            raise config_error(path, f"compare: {pair!r} must name two of the configured methods")
    _check_data(config, path)


def _check_data(config: BenchConfig, path: Path) -> None:
    """Read every dataset (validating it) and check K against its smallest class."""
    from augtool.data import FieldMap, RecordSpec, read_records

    numeric = [k for k in config.k if isinstance(k, int)]
    for dataset in config.datasets:
        spec = RecordSpec(
            fields=FieldMap(text=dataset.text_field, label=dataset.label_field), require_label=True
        )
        train = read_records(dataset.train, spec)
        counts = Counter(r.label for r in train)
        smallest, size = min(counts.items(), key=lambda item: item[1])
        if numeric and max(numeric) > size:
            raise config_error(
                path,
                f"k: {max(numeric)} is larger than the smallest class of "
                f"{dataset.name} ({smallest}: {size} rows)",
            )
        known = frozenset(counts)
        read_records(
            dataset.test, RecordSpec(fields=spec.fields, require_label=True, known_labels=known)
        )
