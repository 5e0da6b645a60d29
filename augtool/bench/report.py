"""Tables, significance tests and plots from a bench run folder."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augtool.bench.config import BenchConfig
from augtool.bench.runner import cells_of, finished, load_run
from augtool.core.metrics import PairedTest, mean_std, paired_wilcoxon

FORMATS = ("markdown", "csv", "json", "latex")


@dataclass
class Column:
    """One dataset at one K."""

    dataset: str
    k: int | str

    @property
    def label(self) -> str:
        return f"{self.dataset} K={self.k}"


@dataclass
class Table:
    """Scores per method and column, with the statistics the reports print."""

    metric: str
    methods: list[str]
    columns: list[Column]
    scores: dict[tuple[str, int, str, str], float]  # (dataset, k, method, seed) -> score
    expected_seeds: list[int]
    missing: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[list[str]] = field(default_factory=list)

    def values(self, method: str, column: Column) -> dict[int, float]:
        return {
            int(seed): score
            for (d, k, m, seed), score in self.scores.items()
            if d == column.dataset and str(k) == str(column.k) and m == method
        }

    def summary(self, method: str, column: Column) -> tuple[float, float, int]:
        values = list(self.values(method, column).values())
        mean, std = mean_std(values)
        return mean, std, len(values)

    def ranks(self, column: Column) -> dict[str, int]:
        """1 for the best mean in a column, 2 for the second (ties share a rank)."""
        means = {m: self.summary(m, column)[0] for m in self.methods}
        ordered = sorted({v for v in means.values() if not math.isnan(v)}, reverse=True)
        return {m: ordered.index(v) + 1 for m, v in means.items() if v in ordered[:2]}

    def tests(self) -> list[dict[str, Any]]:
        """Wilcoxon signed-rank tests, paired by seed, per column and pooled over all."""
        rows = []
        for first, second in self.comparisons:
            pooled_a: dict[object, float] = {}
            pooled_b: dict[object, float] = {}
            per_column = {}
            for column in self.columns:
                a, b = self.values(first, column), self.values(second, column)
                per_column[column.label] = paired_wilcoxon(a, b)
                pooled_a.update({(column.label, s): v for s, v in a.items()})
                pooled_b.update({(column.label, s): v for s, v in b.items()})
            rows.append(
                {
                    "pair": (first, second),
                    "columns": per_column,
                    "pooled": paired_wilcoxon(pooled_a, pooled_b),
                }
            )
        return rows


def build_table(run_dir: str | Path, metric: str | None = None) -> Table:
    """Collect every finished cell of a run folder."""
    run_dir = Path(run_dir)
    config: BenchConfig = load_run(run_dir)
    metric = metric or config.metric
    results = finished(run_dir)
    scores = {}
    for result in results.values():
        scores[(result["dataset"], result["k"], result["method"], str(result["seed"]))] = float(
            result[metric]
        )
    all_cells = cells_of(config)
    failed = []
    for path in sorted((run_dir / "cells").glob("*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        if result.get("status") != "ok":
            failed.append(result)
    comparisons = config.compare or [
        [m, "base"] for m in config.methods if m != "base" and "base" in config.methods
    ]
    return Table(
        metric=metric,
        methods=list(config.methods),
        columns=[Column(d.name, k) for d in config.datasets for k in config.k],
        scores=scores,
        expected_seeds=list(config.seeds),
        missing=[c.id for c in all_cells if c.id not in results],
        failed=failed,
        comparisons=comparisons,
    )


def _grid(run_dir: Path) -> dict[str, Any]:
    """What two run folders must share for their cells to sit in one table: the data (by
    content), K, seeds and task model, so every method saw the same K-shot samples."""
    from augtool.bench.runner import BENCH_FILE

    record = json.loads((run_dir / BENCH_FILE).read_text(encoding="utf-8"))
    config = record["config"]
    return {
        "data": sorted(i["sha256"] for i in record.get("inputs", [])),
        "datasets": [d["name"] for d in config["datasets"]],
        "k": config["k"],
        "seeds": config["seeds"],
        "task_model": config.get("task_model"),
        "augmented_labels": config.get("augmented_labels"),
    }


def build_tables(run_dirs: list[str | Path], metric: str | None = None) -> Table:
    """One table from several run folders of the same grid: a method run later, in its own
    folder, beside the methods of a finished run. The folders must share the data, K,
    seeds and task model; a method may appear in only one of them."""
    from augtool.errors import AugtoolError

    dirs = [Path(d) for d in run_dirs]
    tables = [build_table(d, metric) for d in dirs]
    first = tables[0]
    for run_dir, table in zip(dirs[1:], tables[1:], strict=True):
        if _grid(run_dir) != _grid(dirs[0]):
            raise AugtoolError(
                f"{run_dir}: not the same grid as {dirs[0]} (data, K, seeds, task model and "
                "augmented_labels must match to share a table)"
            )
        if table.metric != first.metric:
            raise AugtoolError(f"{run_dir}: metric {table.metric}, not {first.metric}")
        twice = sorted(set(table.methods) & set(first.methods))
        if twice:
            raise AugtoolError(f"{run_dir}: method(s) {', '.join(twice)} also in an earlier run")
        comparisons = list(first.comparisons)
        for pair in table.comparisons + [[m, "base"] for m in table.methods]:
            if pair not in comparisons and pair[1] in first.methods + table.methods:
                comparisons.append(pair)
        first = Table(
            metric=first.metric,
            methods=first.methods + table.methods,
            columns=first.columns,
            scores={**first.scores, **table.scores},
            expected_seeds=first.expected_seeds,
            missing=first.missing + table.missing,
            failed=first.failed + table.failed,
            comparisons=comparisons,
        )
    return first


def cell_text(table: Table, method: str, column: Column) -> str:
    mean, std, n = table.summary(method, column)
    if n == 0:
        return "–"
    text = f"{100 * mean:.1f} ± {100 * std:.1f}"
    return text if n == len(table.expected_seeds) else f"{text} (n={n})"


def _p_text(test: PairedTest) -> str:
    if test.p_value is None:
        return "–" if test.n == 0 else "n/a (no difference)"
    return f"{test.p_value:.3g}"


def to_markdown(table: Table) -> str:
    """Best mean per column in bold, second best underlined (<u>)."""
    header = ["method", *(c.label for c in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in table.methods:
        cells = [method]
        for column in table.columns:
            text = cell_text(table, method, column)
            rank = table.ranks(column).get(method)
            cells.append(f"**{text}**" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text)
        lines.append("| " + " | ".join(cells) + " |")
    out = [
        f"{table.metric} (%), mean ± std over seeds "
        f"{', '.join(map(str, table.expected_seeds))}; **best**, <u>second</u>",
        "",
        *lines,
    ]
    tests = table.tests()
    if tests:
        out += [
            "",
            "Wilcoxon signed-rank test, two-sided, paired by seed (p-values):",
            "",
            "| pair | " + " | ".join(c.label for c in table.columns) + " | pooled |",
            "|" + "---|" * (len(table.columns) + 2),
        ]
        for row in tests:
            first, second = row["pair"]
            values = [_p_text(row["columns"][c.label]) for c in table.columns]
            out.append(
                f"| {first} vs {second} | " + " | ".join(values) + f" | {_p_text(row['pooled'])} |"
            )
    if table.failed or table.missing:
        out += [
            "",
            f"Incomplete: {len(table.missing)} of "
            f"{len(table.missing) + len(table.scores)} cells have no result"
            + (f"; failed: {', '.join(f['cell'] for f in table.failed)}" if table.failed else ""),
        ]
    return "\n".join(out) + "\n"


def to_latex(table: Table) -> str:
    """A booktabs tabular; best in bold, second underlined."""
    spec = "l" + "c" * len(table.columns)
    lines = [
        r"\begin{tabular}{" + spec + "}",
        r"\toprule",
        "Method & " + " & ".join(c.label.replace("_", r"\_") for c in table.columns) + r" \\",
        r"\midrule",
    ]
    for method in table.methods:
        cells = [method.replace("_", r"\_")]
        for column in table.columns:
            text = cell_text(table, method, column).replace("±", r"$\pm$")
            rank = table.ranks(column).get(method)
            cells.append(
                rf"\textbf{{{text}}}"
                if rank == 1
                else rf"\underline{{{text}}}"
                if rank == 2
                else text
            )
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["dataset", "k", "method", "n_seeds", f"{table.metric}_mean", f"{table.metric}_std", "rank"]
    )
    for column in table.columns:
        ranks = table.ranks(column)
        for method in table.methods:
            mean, std, n = table.summary(method, column)
            writer.writerow(
                [
                    column.dataset,
                    column.k,
                    method,
                    n,
                    "" if n == 0 else round(mean, 6),
                    "" if n == 0 else round(std, 6),
                    ranks.get(method, ""),
                ]
            )
    return buffer.getvalue()


def to_json(table: Table) -> dict[str, Any]:
    rows = []
    for column in table.columns:
        for method in table.methods:
            mean, std, n = table.summary(method, column)
            rows.append(
                {
                    "dataset": column.dataset,
                    "k": column.k,
                    "method": method,
                    "n_seeds": n,
                    "mean": None if n == 0 else mean,
                    "std": None if n == 0 else std,
                    "scores": table.values(method, column),
                }
            )
    tests = []
    for row in table.tests():
        tests.append(
            {
                "pair": list(row["pair"]),
                "columns": {label: _test_dict(t) for label, t in row["columns"].items()},
                "pooled": _test_dict(row["pooled"]),
            }
        )
    return {
        "metric": table.metric,
        "seeds": table.expected_seeds,
        "rows": rows,
        "wilcoxon": tests,
        "missing": table.missing,
        "failed": [{"cell": f["cell"], "error": f.get("error")} for f in table.failed],
    }


def _test_dict(test: PairedTest) -> dict[str, Any]:
    return {
        "n": test.n,
        "statistic": test.statistic,
        "p_value": test.p_value,
        "mean_difference": test.mean_difference,
        "note": test.note,
    }


def render(table: Table, fmt: str) -> str:
    if fmt == "markdown":
        return to_markdown(table)
    if fmt == "latex":
        return to_latex(table)
    if fmt == "csv":
        return to_csv(table)
    return json.dumps(to_json(table), indent=2, ensure_ascii=False) + "\n"


def plot(table: Table, folder: str | Path) -> list[Path]:
    """``<folder>/<dataset>.png``: score against K, one line per method."""
    from augtool.core.plotting import accuracy_vs_k

    paths = []
    for dataset in dict.fromkeys(c.dataset for c in table.columns):
        columns = [c for c in table.columns if c.dataset == dataset]
        series = {}
        for method in table.methods:
            points = {}
            for column in columns:
                mean, std, n = table.summary(method, column)
                if n:
                    points[str(column.k)] = (mean, std)
            series[method] = points
        paths.append(
            accuracy_vs_k(
                series,
                [str(c.k) for c in columns],
                Path(folder) / f"{dataset}.png",
                title=f"{dataset}: {table.metric} vs K",
                ylabel=table.metric.replace("_", "-"),
            )
        )
    return paths
