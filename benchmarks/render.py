"""Render the docs' tables of figures from the benchmark artefacts, or check them.

A table in docs/ that reports measured figures sits between two markers naming its
renderer::

    <!-- rendered by benchmarks/render.py: llm-performance -->
    | figure | result | target |
    ...
    <!-- end rendered -->

and its figures come from ``benchmarks/results/*.json`` (written by the benchmark scripts
with the machine, the versions and the date). ``python benchmarks/render.py`` rewrites
every such table from its artefacts; ``--check`` only reports tables that differ (exit 1),
which is what the test suite runs, so a doc cannot drift from its run.

    python benchmarks/render.py [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
BLOCK = re.compile(
    r"(<!-- rendered by benchmarks/render.py: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- end rendered -->)",
    re.DOTALL,
)


def load(name: str) -> dict[str, Any]:
    """The artefact ``benchmarks/results/<name>.json``."""
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def _met(value: float, target: float, higher: bool = True) -> str:
    ok = value >= target if higher else value < target
    return "met" if ok else "**missed**"


def _provenance(*runs: dict[str, Any]) -> str:
    """One line naming where and when the figures were measured."""
    first = runs[0]
    dates = sorted({run["date"][:10] for run in runs})
    packages = first["environment"]["packages"]
    files = ", ".join(f"`benchmarks/results/{run['benchmark']}.json`" for run in runs)
    return (
        f"Measured on {first['machine']['processor']}, {first['machine']['cpus']} CPU cores "
        f"({first['machine']['platform']}), {' and '.join(dates)}; augtool "
        f"{first['environment']['augtool']}, Python {first['environment']['python']}, "
        f"torch {packages.get('torch', '?')}, transformers {packages.get('transformers', '?')}. "
        f"Artefacts: {files}."
    )


def llm_performance() -> str:
    """docs/llm.md: the three LLM-layer speed figures."""
    concurrency, batching, cache = (
        load("llm_concurrency"),
        load("llm_hf_batching"),
        load("llm_cache"),
    )
    c, b, k = concurrency["figures"], batching["figures"], cache["figures"]
    cs, bs, ks = concurrency["settings"], batching["settings"], cache["settings"]
    identical = "identical outputs" if b["identical_outputs"] else "**outputs differ**"
    rows = [
        "| figure | result | target | |",
        "|---|---|---|---|",
        f"| `openai:` `--concurrency 8` vs `--concurrency 1`, {cs['prompts']} prompts, server "
        f"latency {cs['latency_s'] * 1000:.0f} ms (`llm_concurrency.py`) | "
        f"{c['seconds_concurrency_8']:.2f} s vs {c['seconds_concurrency_1']:.2f} s: "
        f"**{c['speedup']:.1f}×** | ≥ {c['target_speedup']:g}× | "
        f"{_met(c['speedup'], c['target_speedup'])} |",
        f"| `hf:` {bs['prompts']} prompts in one batch vs one at a time, {bs['llama']} Llama, "
        f"{bs['new_tokens']} new tokens (`llm_hf_batching.py`) | "
        f"{b['seconds_batch_64']:.2f} s vs {b['seconds_batch_1']:.2f} s: "
        f"**{b['speedup']:.1f}×**, {identical} | ≥ {b['target_speedup']:g}× | "
        f"{_met(b['speedup'], b['target_speedup'])} |",
        f"| cached rerun of a {ks['rows']:,}-prompt `llm rewrite` job vs its first run "
        f"(`llm_cache.py`) | {k['seconds_cached']:.3f} s vs {k['seconds_first']:.2f} s: "
        f"**{k['cached_percent']:.2f}%** | < {k['target_percent']:g}% | "
        f"{_met(k['cached_percent'], k['target_percent'], higher=False)} |",
    ]
    return "\n".join(rows) + "\n\n" + _provenance(concurrency, batching, cache) + "\n"


def _coannotation() -> tuple[dict[str, Any], dict[str, Any]]:
    run = load("coannotation_example")
    return run, run["figures"]


def coannotation_example() -> str:
    """docs/coannotation.md: the worked offline example, as the benchmark script ran it."""
    run, figures = _coannotation()
    example = figures["example"]
    report = example["report"]
    per = report["per_annotator"]

    def num(value: Any, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        "| annotator | kind | answered | unparsed | agrees with the aggregate "
        "| Dawid–Skene's estimate of its accuracy | accuracy against people's labels (rows) |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in example["annotators"]:
        against = per.get(entry["name"], {})
        compared = (
            f"{num(against.get('accuracy'), 2)} ({against['compared']})"
            if against.get("compared")
            else "– (a person)"
        )
        lines.append(
            f"| `{entry['name']}` | {entry['kind']} | {entry['answered']} | {entry['unparsed']} "
            f"| {num(entry['agreement_with_aggregate'])} | {num(entry['estimated_accuracy'])} "
            f"| {compared} |"
        )
    aggregate = report["aggregate"]
    lines.append(
        f"| the aggregate (Dawid–Skene) | | {example['rows']} | | | "
        f"| {num(aggregate['accuracy'], 2)} ({aggregate['compared']}) |"
    )
    clf_person = next(
        (k for k in report["cohen_kappa"] if {k["a"], k["b"]} == {"clf", "person"}), None
    )
    notes = [
        f"- Review at `--min-agreement 0.67`: **{example['review_rows']}** of {example['rows']} "
        f"rows; rows under confidence 0.8: {example['rows_confidence_below_0.8']}.",
        f"- `merge`: {example['merge_summary'].split(': ', 1)[-1]}.",
        f"- `report`: Cohen's kappa `clf`–`person` {num(clf_person and clf_person['kappa'])}, "
        f"Fleiss' kappa {num(report['fleiss_kappa']['kappa'])} "
        f"({report['fleiss_kappa']['items']} rows every annotator answered), Krippendorff's "
        f"alpha {num(report['krippendorff_alpha']['alpha'])}.",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n\n" + _provenance(run) + "\n"


def coannotation_quality() -> str:
    """docs/coannotation.md: aggregation on simulated annotators of known accuracy."""
    run, figures = _coannotation()
    sim = figures["simulation"]
    lines = [
        "| annotator | simulated accuracy | Dawid–Skene's estimate | difference |",
        "|---|---|---|---|",
    ]
    for name, simulated in sim["simulated_accuracy"].items():
        estimated = sim["dawid_skene_estimates"][name]
        lines.append(
            f"| {name} | {simulated:.2f} | {estimated:.3f} | {estimated - simulated:+.3f} |"
        )
    recovered = (
        f"Labels recovered on {sim['rows']} rows: majority vote {sim['majority']:.3f}, "
        f"weighted vote {sim['weighted']:.3f}, Dawid–Skene **{sim['dawid-skene']:.3f}**."
    )
    return "\n".join(lines) + "\n\n" + recovered + "\n\n" + _provenance(run) + "\n"


def load_memory() -> str:
    """docs/gpu.md: peak host memory loading a ~1B Llama in bfloat16, ours and two peers."""
    run = load("load_memory")
    figures = run["figures"]
    target = figures["target_ratio"]
    names = {
        "augtool": "augtool's loader (dtype passed, `low_cpu_mem_usage`)",
        "no-dtype": "`from_pretrained(path)` then `.to(bfloat16)` (augtool before; "
        "transformers 5.x default)",
        "float32-first": "the same under transformers 4.x, whose default is float32 "
        "(emulated here with `dtype=float32`)",
    }
    lines = [
        "| load | peak host memory growth | × bf16 size | seconds |",
        "|---|---|---|---|",
    ]
    for arm, name in names.items():
        arm_figures = figures[arm]
        ratio = f"{arm_figures['ratio']:.2f}"
        if arm == "augtool":
            ratio = (
                f"**{ratio}** (target < {target:g}: {_met(arm_figures['ratio'], target, False)})"
            )
        lines.append(
            f"| {name} | {arm_figures['peak_growth_mb']:,.0f} MiB | {ratio} "
            f"| {arm_figures['seconds']:.1f} |"
        )
    notes = (
        f"A random-weight Llama of {figures['parameters'] / 1e9:.2f}B parameters "
        f"(TinyLlama-1.1B's shapes), {figures['bf16_size_mb']:,.0f} MiB in bfloat16, saved as "
        "bfloat16 safetensors; each load in a fresh process, peak resident memory minus the "
        "resident memory just before it."
    )
    return "\n".join(lines) + "\n\n" + notes + "\n\n" + _provenance(run) + "\n"


def client_concurrency() -> str:
    """docs/llm.md: the streaming client against the batch-draining one, long-tailed server."""
    run = load("client_concurrency")
    f, s = run["figures"], run["settings"]
    window, drain = f["window"], f["batch_drain"]
    rows = [
        "| client | time | requests/s | of the ideal | target | |",
        "|---|---|---|---|---|---|",
        f"| window (`openai:` now) | {window['seconds']:.1f} s | {window['per_second']:.1f} "
        f"| **{100 * window['efficiency']:.0f}%** | ≥ {100 * f['target_efficiency']:.0f}% "
        f"| {_met(window['efficiency'], f['target_efficiency'])} |",
        f"| batches of {8 * s['concurrency']} drained one by one (before; peer) "
        f"| {drain['seconds']:.1f} s | {drain['per_second']:.1f} "
        f"| {100 * drain['efficiency']:.0f}% | | |",
    ]
    return (
        "\n".join(rows)
        + f"\n\n{s['prompts']:,} requests at `--concurrency {s['concurrency']}` against the stub "
        f"server: {s['latency'] * 1000:.0f} ms per request, {s['tail']:g} s for one in "
        f"{s['tail_every']}; ideal {f['ideal_per_second']:.1f} requests/s (concurrency / mean "
        f"latency {s['mean_latency']:.3f} s); {f['speedup_vs_peer']:.2f}× the peer. "
        + _provenance(run)
        + "\n"
    )


def scoring_memory() -> str:
    """docs/llm.md: peak memory of `hf:` option scoring, now vs the previous and naive paths."""
    run = load("scoring_memory")
    f, s = run["figures"], run["settings"]
    paths = [
        ("now: each prompt once, its KV cache repeated per label, the labels' tokens on top",
         s["batch"], f["cached"], True),
        ("before: one `prompt + label` sequence per pair, logits at the labels' positions",
         s["batch"], f["previous"], False),
        ("naive (peer): one sequence per pair, float32 log-softmax over every position",
         s["batch"], f["naive"], False),
        ("now, at the default `--batch-size`", s["large_batch"], f["cached_large_batch"], False),
    ]  # fmt: skip
    rows = [
        "| scoring path | prompts | peak memory above the loaded model | time |",
        "|---|---|---|---|",
    ]
    for name, prompts, arm, bold in paths:
        memory = f"{arm['peak_mib']:,.0f} MiB"
        memory = f"**{memory}**" if bold else memory
        rows.append(f"| {name} | {prompts} | {memory} | {arm['seconds']:.2f} s |")
    tokens, large = s["prompt_tokens"], s["large_batch_prompt_tokens"]
    return (
        "\n".join(rows)
        + f"\n\n{s['labels']} labels ({min(s['label_tokens'])} to {max(s['label_tokens'])} "
        f"tokens each) after prompts of {min(tokens)} to {max(tokens)} tokens "
        f"({min(large)} to {max(large)} in the batch of {s['large_batch']}), on a random "
        f"{s['layers']}-layer Llama (hidden size {s['hidden_size']}) with a "
        f"{s['vocab']:,}-token vocabulary; each path in a fresh process, peak resident set "
        f"minus the resident set once the model is loaded. The naive path needs "
        f"**{f['memory_ratio_naive_vs_cached']:g}×** the memory of the one used now; all paths' "
        f"scores agree to {f['max_score_difference']:.1e}. " + _provenance(run) + "\n"
    )


def baselines_performance() -> str:
    """docs/baselines.md: EDA and back-translation speed, beside their peers."""
    eda, bt = load("eda_speed"), load("bt_speed")
    e, a, m = eda["figures"], bt["figures"]["apertium"], bt["figures"]["marian"]
    swap, delete = e["swap"], e["delete"]
    identical = "identical outputs" if m["identical_outputs"] else "**outputs differ**"
    rows = [
        "| figure | result | target | |",
        "|---|---|---|---|",
        f"| EDA, {e['sentences']:,} TREC questions, `n_aug 4`, all four ops, synonym cache "
        f"warm | **{e['warm_per_second']:,}** sentences/s | ≥ {e['target_per_second']:,}/s | "
        f"{_met(e['warm_per_second'], e['target_per_second'])} |",
        f"| the same, first run on a machine (loads WordNet, looks up "
        f"{e['words_looked_up'] / 1000:.1f}k words once) | {e['cold_per_second']:,} "
        f"sentences/s ({e['cold_seconds']:.1f} s in all) | | |",
    ]
    for name, figures in (("swap", swap), ("delete", delete)):
        rows.append(
            f'| EDA {name} only vs nlpaug `RandomWordAug(action="{name}")` | '
            f"{figures['augtool_per_second']:,} vs {figures['nlpaug_per_second']:,}/s: "
            f"**{figures['ratio']:.1f}×** | ≥ {figures['target_ratio']:g}× | "
            f"{_met(figures['ratio'], figures['target_ratio'])} |"
        )
    rows += [
        f"| nlpaug `SynonymAug` offline | {e['nlpaug_synonym_aug']} | | |",
        f"| Apertium round trip, {a['sentences']:,} TREC questions | "
        f"**{a['per_second']:,.0f}** sentences/s | ≥ {a['target_per_second']:g}/s | "
        f"{_met(a['per_second'], a['target_per_second'])} |",
        f"| the same vs one `apertium` subprocess per sentence ({a['peer_sample']} of them) | "
        f"{a['per_second']:,.0f} vs {a['peer_per_second']:.1f}/s: **{a['speedup']:.0f}×** | "
        f"≥ {a['target_speedup']:g}× | {_met(a['speedup'], a['target_speedup'])} |",
        f"| Marian ({m['model']}) batch 32 vs one at a time, {m['round_trips']} round trips | "
        f"{m['per_second_batch_32']:.1f} vs {m['per_second_batch_1']:.1f}/s: "
        f"**{m['speedup']:.1f}×**, {identical} | ≥ {m['target_speedup']:g}× | "
        f"{_met(m['speedup'], m['target_speedup'])} |",
    ]
    return "\n".join(rows) + "\n\n" + _provenance(eda, bt) + "\n"


def pinr_particles() -> str:
    """docs/pinr.md: the particle stage's timings, and how they scale with N and M."""
    run = load("pinr_particles")
    figures = run["figures"]
    cells = figures["cells"]
    target = figures["target_cell"]
    rows = [
        "| N | M | GMM fit | SVGD | per iteration | stage |",
        "|---|---|---|---|---|---|",
    ]
    for cell in cells:
        stage = f"{cell['stage_s']:.2f} s"
        if cell["n"] == target["n"] and cell["m"] == target["m"]:
            verdict = _met(figures["target_stage_s"], cell["stage_s"])
            stage = f"**{stage}** (target < {figures['target_stage_s']:g} s: {verdict})"
        rows.append(
            f"| {cell['n']:,} | {cell['m']} | {cell['fit_s']:.2f} s | {cell['svgd_s']:.2f} s | "
            f"{cell['ms_per_iteration']:.2f} ms | {stage} |"
        )
    by = {(c["n"], c["m"]): c["ms_per_iteration"] for c in cells}
    ns, ms = sorted({c["n"] for c in cells}), sorted({c["m"] for c in cells})
    notes = []
    if len(ns) > 1:
        ratio = by[ns[-1], ms[-1]] / by[ns[0], ms[-1]]
        notes.append(
            f"time per iteration, N = {ns[-1]:,} over N = {ns[0]:,} at M = {ms[-1]}: {ratio:.2f}"
        )
    if len(ms) > 1:
        ratio = by[ns[0], ms[-1]] / by[ns[0], ms[0]]
        notes.append(f"M = {ms[-1]} over M = {ms[0]} at N = {ns[0]:,}: {ratio:.2f}")
    text = "\n".join(rows) + "\n\n"
    if notes:
        text += "Ratios: " + "; ".join(notes) + ".\n\n"
    return text + _provenance(run) + "\n"


def encoders_performance() -> str:
    """docs/encoders.md: encoding throughput, the embedding cache, and memory."""
    speed, memory = load("embed_throughput"), load("embed_memory")
    t, m = speed["figures"], memory["figures"]
    rows = [
        "| figure | result | target | |",
        "|---|---|---|---|",
        f"| `Encoder.encode` vs bare `SentenceTransformer.encode`, {t['texts']:,} TREC "
        f"questions, batch {speed['settings']['batch_size']} | {t['augtool_per_second']:.0f} vs "
        f"{t['bare_per_second']:.0f} texts/s: **{t['ratio']:.2f}×** | ≥ {t['target_ratio']:g}× | "
        f"{_met(t['ratio'], t['target_ratio'])} |",
        f"| `augtool embed` on TREC train, first run vs second run (cache), whole command | "
        f"{t['command_cold_s']:.1f} s vs {t['command_cached_s']:.2f} s: "
        f"**{t['command_speedup']:.0f}×** faster | ≥ {t['target_command_speedup']:g}× | "
        f"{_met(t['command_speedup'], t['target_command_speedup'])} |",
        f"| the same in-process (no interpreter start-up) | {t['in_process_cold_s']:.1f} s vs "
        f"{t['in_process_cached_s']:.3f} s: {t['in_process_speedup']}× | | |",
        f"| peak RSS embedding all {m['sentences']:,} sentences of "
        f"`unlabeled/wiki_sentences.jsonl` ({m['seconds']:.0f} s) | {m['peak_gib_embed']:.2f} GiB; "
        f"a process that only loads the model (peer): {m['peak_gib_model_only']:.2f} GiB; "
        f"**{m['beyond_model_gib']:.2f} GiB beyond the model** | "
        f"< {m['target_beyond_model_gib']:g} GiB | "
        f"{_met(m['beyond_model_gib'], m['target_beyond_model_gib'], higher=False)} |",
    ]
    return "\n".join(rows) + "\n\n" + _provenance(speed, memory) + "\n"


# --- `augtool bench` runs kept with benchmarks/keep_run.py ---------------------------


#: Methods run later on a kept grid, in their own run folder (same data, K, seeds and task
#: model), joined to its table as `augtool bench report RUN LATER` does.
LATER_RUNS = {"trec-bench": ["trec-bench-invmix"]}
#: Extra paired tests for a joined table (the paper's direction: invmix above Mixup).
EXTRA_COMPARISONS = {"trec-bench": [["invmix", "mixup"]]}


def _run_names(name: str) -> list[str]:
    return [name] + [n for n in LATER_RUNS.get(name, []) if (RESULTS / n / "bench.json").is_file()]


def bench_table(name: str):  # noqa: ANN201 (augtool.bench.report.Table)
    """The report table of the bench run kept as ``benchmarks/results/<name>/``, with the
    methods of its later runs."""
    from augtool.bench.report import build_tables

    table = build_tables([RESULTS / n for n in _run_names(name)])
    for pair in EXTRA_COMPARISONS.get(name, []):
        if all(m in table.methods for m in pair) and pair not in table.comparisons:
            table.comparisons.append(pair)
    return table


def bench_summary(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / name / "summary.json").read_text(encoding="utf-8"))


def bench_cells(name: str) -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for run in _run_names(name)
        for path in sorted((RESULTS / run / "cells").glob("*.json"))
    ]


def _bench_provenance(name: str) -> str:
    runs = [{**bench_summary(n), "benchmark": f"{n}/summary"} for n in _run_names(name)]
    return _provenance(*runs)


TREC_NAMES = {  # method -> (our row name, the paper's row in its Table 1)
    "base": ("base", "Base"),
    "eda": ("EDA", "EDA"),
    "bt": ("BT (ours: Apertium; paper: MT)", "BT"),
    "mixup": ("Mixup", "Mixup"),
    "invmix": ("inversedMixup (ours: MiniLM warm LM; paper: Llama-3-8B)", "inverstedMixup"),
}


def _mean_std(pair: dict[str, float]) -> str:
    return f"{pair['mean']:.1f} ± {pair['std']:.1f}"


def trec_bench_accuracy() -> str:
    """docs/results.md: our TREC accuracy beside the inversedMixup paper's Table 1."""
    from augtool.bench.report import cell_text

    table = bench_table("trec-bench")
    paper = json.loads(
        (RESULTS / "papers" / "inversedmixup-table1-trec.json").read_text(encoding="utf-8")
    )["accuracy"]
    header = ["method"]
    for column in table.columns:
        header += [f"ours K = {column.k}", f"paper K = {column.k}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in table.methods:
        ours_name, paper_name = TREC_NAMES.get(method, (method, method))
        cells = [ours_name]
        for column in table.columns:
            text = cell_text(table, method, column)
            rank = table.ranks(column).get(method)
            cells.append(f"**{text}**" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text)
            reference = paper.get(paper_name, {}).get(str(column.k))
            cells.append(_mean_std(reference) if reference else "–")
        lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(map(str, table.expected_seeds))
    return (
        "\n".join(lines)
        + f"\n\nOurs: mean ± std over seeds {seeds}; **bold** our best per column, "
        "<u>underline</u> our second best. Paper: the BERT-base rows of its Table 1 "
        "(10 seeds), from `benchmarks/results/papers/inversedmixup-table1-trec.json`. "
        + _bench_provenance("trec-bench")
        + "\n"
    )


def trec_bench_seeds() -> str:
    """docs/results.md: every cell's accuracy, by K, method and seed."""
    table = bench_table("trec-bench")
    seeds = table.expected_seeds
    lines = [
        "| K | method | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|" + "---|" * (len(seeds) + 2),
    ]
    for column in table.columns:
        for method in table.methods:
            values = table.values(method, column)
            scores = [f"{100 * values[s]:.1f}" if s in values else "–" for s in seeds]
            name = TREC_NAMES.get(method, (method,))[0].split(" (")[0]
            lines.append(f"| {column.k} | {name} | " + " | ".join(scores) + " |")
    return "\n".join(lines) + "\n"


def trec_bench_wilcoxon() -> str:
    """docs/results.md: paired tests against base, per K and pooled."""
    table = bench_table("trec-bench")

    def p_text(test) -> str:  # noqa: ANN001
        if test.p_value is None:
            return "–"
        text = f"{test.p_value:.3f}"
        return f"**{text}**" if test.p_value < 0.05 else text

    rows = table.tests()
    pooled_n = rows[0]["pooled"].n if rows else 0
    lines = [
        "| pair | mean difference, pooled | "
        + " | ".join(f"p, K = {c.k}" for c in table.columns)
        + f" | p, pooled ({pooled_n} pairs) |",
        "|" + "---|" * (len(table.columns) + 3),
    ]
    for row in rows:
        first, second = row["pair"]
        differences = []
        for column in table.columns:
            a, b = table.values(first, column), table.values(second, column)
            differences += [a[s] - b[s] for s in a if s in b]
        mean = 100 * sum(differences) / len(differences)
        name = TREC_NAMES.get(first, (first,))[0].split(" (")[0]
        other = TREC_NAMES.get(second, (second,))[0].split(" (")[0]
        lines.append(
            f"| {name} vs {other} | {mean:+.1f} points | "
            + " | ".join(p_text(row["columns"][c.label]) for c in table.columns)
            + f" | {p_text(row['pooled'])} |"
        )
    text = "\n".join(lines).replace("| -", "| −")
    return text + "\n\nBold: p < 0.05.\n"


def trec_bench_time() -> str:
    """docs/results.md: where the run's time went, per method, and the harness overhead."""
    summary = bench_summary("trec-bench")
    methods = bench_table("trec-bench").methods
    totals: dict[str, dict[str, float]] = {method: {} for method in methods}
    rows_trained: dict[str, list[int]] = {}
    for cell in bench_cells("trec-bench"):
        parts = totals[cell["method"]]
        for part in ("augment", "train", "eval", "total"):
            parts[part] = parts.get(part, 0.0) + cell["seconds"].get(part, 0.0)
        rows_trained.setdefault(cell["method"], []).append(cell["n_sample"] + cell["n_augmented"])

    def seconds(value: float) -> str:
        return "–" if value < 0.5 else f"{value:,.0f} s"

    lines = [
        "| method | augment | train | evaluate | all cells | rows trained on, per cell |",
        "|---|---|---|---|---|---|",
    ]
    for method, parts in totals.items():
        counts = rows_trained[method]
        name = TREC_NAMES.get(method, (method,))[0].split(" (")[0]
        lines.append(
            f"| {name} | {seconds(parts['augment'])} | {seconds(parts['train'])} | "
            f"{seconds(parts['eval'])} | {seconds(parts['total'])} | "
            f"{min(counts)}–{max(counts)} |"
        )
    overhead = summary["harness_overhead"]
    return (
        "\n".join(lines)
        + f"\n\n{summary['cells']} cells in {summary['wall_seconds'] / 60:.1f} minutes of wall "
        f"time. Harness overhead (wall time outside augmentation, training and evaluation): "
        f"{summary['wall_seconds'] - summary['augment_train_eval_seconds']:.1f} s, "
        f"**{100 * overhead:.2f}%** (target ≤ 5%: {_met(0.05, overhead)}). "
        + _bench_provenance("trec-bench")
        + "\n"
    )


def bench_intents_example() -> str:
    """docs/bench.md: what `augtool bench report` prints for the quick intents example."""
    from augtool.bench.report import to_markdown

    return "```\n" + to_markdown(bench_table("intents-bench")) + "```\n"


# --- scripts with one JSON artefact each ---------------------------------------------


PINR_AGNEWS_NAMES = {
    "random": "Random (uniform subset)",
    "mgd3": "MGD³-style mode selection (real row nearest each k-means mode)",
    "dallme": "DaLLME (k-means centres, decoded)",
    "pinr (no refinement)": "PInR, no refinement",
    "pinr (refined)": "PInR, refined",
    "aug-pe": "Aug-PE",
}


PINR_DOWNSTREAM = {
    "finetune": "fine-tuned encoder",
    "frozen": "frozen encoder + MLP",
    "tfidf": "TF-IDF + logistic regression",
}


def pinr_agnews() -> str:
    """docs/results.md: AG-News condensed to M rows, downstream accuracy per method and
    model, with PInR's paired tests against Random and DaLLME."""
    run = load("pinr_agnews")
    figures, settings = run["figures"], run["settings"]
    accuracy = figures["accuracy"]
    if "random" in accuracy:  # an artefact of the earlier, single-model layout
        accuracy = {"frozen": accuracy}
        full_rows = {"frozen": figures["accuracy_all_rows"]}
    else:
        full_rows = figures["accuracy_all_rows"]
    models = [m for m in PINR_DOWNSTREAM if m in accuracy]
    lines = [
        "| method | " + " | ".join(PINR_DOWNSTREAM[m] for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    names = list(dict.fromkeys(n for m in models for n in accuracy[m]))
    ordered = [n for n in PINR_AGNEWS_NAMES if n in names] + [
        n for n in names if n not in PINR_AGNEWS_NAMES
    ]
    for name in ordered:
        cells = []
        for model in models:
            result = accuracy[model].get(name)
            cells.append(
                f"{100 * result['mean']:.2f} ± {100 * result['std']:.2f}" if result else "–"
            )
        lines.append(f"| {PINR_AGNEWS_NAMES.get(name, name)} | " + " | ".join(cells) + " |")
    if not settings["refine_llm"]:
        lines.append("| PInR, refined | " + " | ".join("not run" for _ in models) + " |")
    lines.append(
        f"| all {settings['pool_rows']:,} rows | "
        + " | ".join(f"{100 * full_rows[m]:.2f}" if m in full_rows else "not run" for m in models)
        + " |"
    )
    tests = figures.get("tests", {})
    if tests:
        lines += ["", "| pair | " + " | ".join(PINR_DOWNSTREAM[m] for m in models) + " |"]
        lines.append("|---|" + "---|" * len(models))
        pairs = list(dict.fromkeys(tuple(t["pair"]) for m in models for t in tests.get(m, [])))
        for pair in pairs:
            cells = []
            for model in models:
                test = next((t for t in tests.get(model, []) if tuple(t["pair"]) == pair), None)
                if test is None:
                    cells.append("–")
                    continue
                p = "–" if test["p_value"] is None else f"p = {test['p_value']:.3f}"
                cells.append(f"{100 * test['mean_difference']:+.2f} points, {p}")
            first, second = (PINR_AGNEWS_NAMES.get(n, n).split(" (")[0] for n in pair)
            lines.append(f"| {first} vs {second} | " + " | ".join(cells) + " |")
    seeds = ", ".join(map(str, settings["seeds"]))
    if settings.get("decoder", "t5") == "warm":
        decoder = (
            f"decoder warm-started from the encoder's BERT, trained for "
            f"{figures.get('decoder_seconds', 0) / 60:.0f} minutes"
        )
    else:
        decoder = (
            f"decoder a from-scratch T5, d_model {settings['d_model']}, "
            f"{settings['decoder_epochs']} epochs"
        )
    return (
        "\n".join(lines).replace("| -", "| −")
        + f"\n\nM = {settings['m']} of {settings['pool_rows']:,} rows, class-wise; test "
        f"{settings['test_rows']:,} rows; mean ± std over seeds {seeds}; paired two-sided "
        f"Wilcoxon tests over the seeds; {decoder}. " + _provenance(run) + "\n"
    )


def task_model_trec() -> str:
    """docs/task-model.md: TREC accuracy of the fine-tuned default encoder and its peer."""
    run = load("trec_finetune")
    figures = run["figures"]
    target = figures["target_accuracy"]
    lines = [
        "| model | epochs | TREC test accuracy | macro-F1 | training wall time |",
        "|---|---|---|---|---|",
    ]
    for model in figures["models"].values():
        label = (
            "frozen encoder + MLP head (peer)"
            if model["frozen_encoder"]
            else "fine-tuned default encoder"
        )
        accuracy = f"{100 * model['accuracy']:.1f}%"
        if model["accuracy"] >= target:
            accuracy = f"**{accuracy}**"
        lines.append(
            f"| {label} | {model['epochs']} | {accuracy} | {model['macro_f1']:.3f} | "
            f"{model['train_seconds']:,.0f} s |"
        )
    first = next(iter(figures["models"].values()))
    return (
        "\n".join(lines) + f"\n\n**Bold**: at or above the {100 * target:.0f}% target. Seed "
        f"{run['settings']['seed']}, batch size {first['batch_size']}, encoder learning "
        f"rate {first['lr']:g}, head {first['head_lr']:g}, max length {first['max_length']}. "
        + _provenance(run)
        + "\n"
    )


def topex_explore_performance() -> str:
    """docs/topex.md: explore time by stage, clusterer and size."""
    run = load("topex_explore")
    figures = run["figures"]
    lines = [
        "| clusterer | points | explore | cluster | name | score | clusters of mistakes "
        "(points) | BERTopic fits (documents) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in figures["runs"]:
        stages = row["stages"]
        lines.append(
            f"| {row['clusterer'].upper()} | {row['points']:,} | {row['seconds']:.1f} s | "
            f"{stages.get('cluster', 0):.2f} s | {stages.get('name', 0):.2f} s | "
            f"{stages.get('score', 0):.1f} s | {row['mistaken']} ({row['mistaken_points']:,}) | "
            f"{row['bertopic_fits']} ({row['named_docs']:,}) |"
        )
    ratios = figures["ratio_largest_over_smallest"]
    sizes = sorted({row["points"] for row in figures["runs"]})
    notes = [
        f"{name.upper()} t({sizes[-1]:,}) / t({sizes[0]:,}) = **{ratio:.2f}**"
        + (
            f" (target ≤ {figures['target_ratio_hdbscan']}: "
            f"{_met(figures['target_ratio_hdbscan'], ratio)})"
            if name == "hdbscan"
            else ""
        )
        for name, ratio in ratios.items()
    ]
    caps = run["settings"]
    cap_text = (
        "every pair and every text (the defaults)"
        if caps.get("max_outside") is None and caps.get("ctc_texts") is None
        else f"`--max-outside {caps.get('max_outside')} --ctc-texts {caps.get('ctc_texts')}`"
    )
    return (
        "\n".join(lines)
        + f"\n\n{'; '.join(notes)}. Scores over {cap_text}. "
        + _provenance(run)
        + "\n"
    )


def lmmixup_grpo() -> str:
    """docs/lmmixup.md: one GRPO group generated batched vs in a loop, two model sizes."""
    runs = [load("lmmixup_grpo_tiny"), load("lmmixup_grpo_4m")]
    lines = ["| model | batched | unbatched loop | speed-up |", "|---|---|---|---|"]
    for run in runs:
        f, s = run["figures"], run["settings"]
        lines.append(
            f"| {f['parameters'] / 1e6:.1f}M parameters (`--hidden {s['hidden']} --layers "
            f"{s['layers']}`) | {f['seconds_per_group_batched']:.3f} s per group | "
            f"{f['seconds_per_group_unbatched']:.3f} s | **{f['speedup']:.1f}×** |"
        )
    tiny = runs[0]
    return (
        "\n".join(lines)
        + f"\n\nGroup {tiny['settings']['group']}, {tiny['settings']['tokens']} new tokens per "
        f"completion, device {tiny['settings']['device']}. Target on the tiny model: ≥ "
        f"{tiny['figures']['target_speedup']}× ({_met(tiny['figures']['speedup'], 4)}). Real "
        f"`GRPOTrainer` steps (LoRA, one group per step, counting model loading and setup): "
        f"{tiny['figures']['trl_steps_per_second']:.2f} steps/s on the smaller model. "
        + _provenance(*runs)
        + "\n"
    )


def lmmixup_gsm8k() -> str:
    """docs/lmmixup.md: build -> SFT -> GRPO on GSM8K with a tiny Llama, rewards on
    held-out groups for the untrained, SFT and GRPO models, and the alignment calibration."""
    run = load("lmmixup_gsm8k")
    f, s = run["figures"], run["settings"]
    models = f["models"]

    def pm(entry: dict[str, Any]) -> str:
        return f"{entry['mean']:.3f} ± {entry['std']:.3f}"

    names = {"untrained": "untrained (LM only)", "sft": "SFT", "grpo": "SFT + GRPO"}
    lines = [
        "| model | total (sampled) | quality | alignment | format | total (greedy) |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in names.items():
        m = models[key]
        sampled = m["sampled"]
        lines.append(
            f"| {label} | **{pm(sampled['total'])}** | {pm(sampled['quality'])} | "
            f"{pm(sampled['alignment'])} | {pm(sampled['format'])} | "
            f"{pm(m['greedy']['total'])} |"
        )
    paired = f["paired_grpo_minus_sft"]["total"]
    verdict = "GRPO beats SFT" if f["grpo_beats_sft"] else "**GRPO does not beat SFT**"
    if f["grpo_beats_sft"] and paired["wilcoxon_p"] >= 0.05:
        verdict += " on the mean, but not significantly at the 5% level"
    untrained = (
        "both beat the untrained model"
        if f["both_beat_untrained"]
        else "**not both above the untrained model**"
    )
    c = f["calibration"]
    own, other = c["own_inputs"], c["other_rows"]
    quantiles = ("q05", "q25", "q50", "q75", "q95")
    encoder = s["encoder"].split("/")[-1]
    calibration = [
        f"| cosines ({encoder}) | n | 5% | 25% | 50% | 75% | 95% | at or above the threshold |",
        "|---|---|---|---|---|---|---|---|",
        f"| target vs its own inputs | {own['n']} | "
        + " | ".join(f"{own[q]:.3f}" for q in quantiles)
        + f" | {100 * c['own_at_or_above']:.0f}% |",
        f"| target vs another row's input | {other['n']} | "
        + " | ".join(f"{other[q]:.3f}" for q in quantiles)
        + f" | {100 * c['other_at_or_above']:.0f}% |",
    ]
    return (
        "\n".join(lines)
        + f"\n\nMean ± std over {f['heldout_groups']} held-out groups of the per-group mean "
        f"reward; sampled: {s['eval_samples']} completions per group at temperature 1.0, "
        f"greedy: one. Weights quality {s['weights']['quality']}, alignment "
        f"{s['weights']['alignment']}, format {s['weights']['format']}; quality is the cosine "
        f"scorer (no rated bank offline). GRPO − SFT, sampled total: "
        f"{paired['mean_difference']:+.4f} ({paired['groups_better']} groups better, "
        f"{paired['groups_worse']} worse; Wilcoxon signed-rank p = {paired['wilcoxon_p']:.3g})"
        f": {verdict}; {untrained}. Model: {f['parameters'] / 1e6:.1f}M-parameter Llama "
        f"(hidden {s['hidden']}, {s['layers']} layers), {f['train_groups']} training groups, "
        f"SFT {f['sft_steps']} steps ({f['timings']['sft_seconds'] / 60:.0f} min), GRPO "
        f"{f['grpo_steps']} steps ({f['timings']['grpo_seconds'] / 60:.0f} min).\n\n"
        f"Alignment threshold (`--align-threshold auto`, quantile {c['quantile']} of the "
        f"own-input cosines): **{f['alignment_threshold']:.4f}**.\n\n"
        + "\n".join(calibration)
        + "\n\n"
        + _provenance(run)
        + "\n"
    )


INVERSION_ARMS = {
    "warm": "`pinr train-decoder` (warm-started from ψ's BERT, the default)",
    "warm+corrected": "the same, with 2 corrector steps",
    "t5": "`pinr train-decoder --seq2seq` on a T5 trained from scratch",
    "t5+corrected": "the same, with 2 corrector steps",
    "invmix": "`invmix warm-lm`, then `invmix train-adaptor` on it",
}


def inversion_quality() -> str:
    """docs/pinr.md and docs/invmix.md: held-out reconstruction at one CPU budget."""
    run = load("inversion_quality")
    arms, goal, settings = run["figures"]["arms"], run["figures"]["goal"], run["settings"]
    lines = [
        "| inverter | BLEU | token F1 | exact match | cos(ψ(x̂), ψ(x)) "
        "| training cut by the budget |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in INVERSION_ARMS.items():
        if name not in arms:
            continue
        arm = arms[name]
        training = arm["training"]
        history = training.get("history") or (
            training.get("warm_lm", {}).get("history", []) + training.get("adaptor", [])
        )
        cut = "yes" if any(record.get("stopped") for record in history) else "no"
        lines.append(
            f"| {label} | {arm['bleu']:.1f} | {arm['token_f1']:.3f} | "
            f"{100 * arm['exact_match']:.1f}% | {arm['cosine']:.3f} | {cut} |"
        )
    best = max(arms.values(), key=lambda arm: arm["cosine"])
    met = any(arm["goal_met"] for arm in arms.values())
    lines += [
        "",
        f"Goal: cos ≥ {goal['cosine']:.2f} and BLEU ≥ {goal['bleu']:g} within "
        f"{goal['core_minutes'] / 2:g} minutes of 2-core training: "
        + ("met." if met else f"**missed** (best cosine {best['cosine']:.3f}).")
        + f" Each inverter trained for {settings['minutes']:g} core-minutes on "
        f"{settings['train']:,} sentences and was scored on {settings['held_out']} held-out "
        f"ones, greedy with {settings['no_repeat_ngram']}-gram blocking.",
        "",
        "| held-out sentence | " + " | ".join(n for n in INVERSION_ARMS if n in arms) + " |",
        "|---|" + "---|" * sum(n in arms for n in INVERSION_ARMS),
    ]
    for example in run["figures"]["examples"][:3]:
        cells = [example["original"]] + [example[n] for n in INVERSION_ARMS if n in arms]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + _provenance(run) + "\n"


def decoder_memory() -> str:
    """docs/pinr.md: peak memory of the two trainers at 10k and 40k sentences."""
    run = load("decoder_memory")
    figures, settings = run["figures"], run["settings"]
    small, large = figures["sentences_small"], figures["sentences_large"]
    a, b = (f"{n // 1000}k" if n % 1000 == 0 else str(n) for n in (small, large))
    target = figures["target_ratio"]

    def busy(key: str) -> str:
        return f"{figures[key]:g}"

    peer = f"`pinr train-decoder` as of {(settings.get('peer_rev') or '')[:7]} (in memory; peer)"
    arms = [
        ("", "`pinr train-decoder`"),
        ("peer_", peer),
        ("warm_lm_", "`invmix warm-lm`"),
    ]
    lines = [
        f"| trainer | peak RSS, {small:,} sentences | peak RSS, {large:,} | ratio | growth "
        "| steps | cores busy |",
        "|---|---|---|---|---|---|---|",
    ]
    for prefix, name in arms:
        if f"{prefix}ratio" not in figures:
            continue
        ratio = f"{figures[f'{prefix}ratio']:.3f}"
        if prefix != "peer_":
            met = "met" if figures[f"{prefix}ratio"] <= target else "**missed**"
            ratio = f"**{ratio}** (target ≤ {target:g}: {met})"
        lines.append(
            f"| {name} | {figures[f'{prefix}peak_rss_mb_{a}']:,.0f} MiB "
            f"| {figures[f'{prefix}peak_rss_mb_{b}']:,.0f} MiB | {ratio} "
            f"| {figures[f'{prefix}growth_mb']:+,.0f} MiB "
            f"| {figures[f'{prefix}steps_{a}']}, {figures[f'{prefix}steps_{b}']} "
            f"| {busy(prefix + 'cpu_per_wall_' + a)}, {busy(prefix + 'cpu_per_wall_' + b)} |"
        )
    notes = (
        f"Each run: `--max-minutes {settings['max_minutes']:g}`, batch {settings['batch_size']}, "
        f"`--max-length {settings['max_length']}`, the embedding cache filled beforehand; "
        "steps and cores busy (CPU seconds over wall seconds) are given for the small and the "
        f"large run; torch ran {figures['torch_threads']} threads. The extra "
        f"{large - small:,} embeddings alone are {figures['vectors_mb_extra']:g} MiB."
    )
    return "\n".join(lines) + "\n\n" + notes + "\n\n" + _provenance(run) + "\n"


def topex_generators() -> str:
    """docs/topex.md: directed (the chosen cluster's members) vs undirected EDA vs none, at
    +k samples per cluster member, per dataset."""
    from augtool.core.metrics import paired_wilcoxon

    table = bench_table("topex-generators")
    sizes = sorted(
        {int(m.split("-")[1]) for m in table.methods if m.startswith("topex@")},
    )
    generator = next(m for m in table.methods if m.startswith("topex@")).split("@")[1]
    generator = generator.split("-")[0]
    lines = [
        "| dataset | + per member | base | directed (TopEx cluster) | undirected (random rows) "
        "| directed − undirected | p |",
        "|---|---|---|---|---|---|---|",
    ]

    def text(method: str, column) -> str:  # noqa: ANN001
        mean, std, n = table.summary(method, column)
        return "–" if n == 0 else f"{100 * mean:.1f} ± {100 * std:.1f}"

    for column in table.columns:
        for k in sizes:
            directed, undirected = f"topex@{generator}-{k}", f"topex@{generator}-{k}-random"
            test = paired_wilcoxon(table.values(directed, column), table.values(undirected, column))
            p = "–" if test.p_value is None else f"{test.p_value:.3f}"
            lines.append(
                f"| {column.dataset} K = {column.k} | +{k} | {text('base', column)} | "
                f"{text(directed, column)} | {text(undirected, column)} | "
                f"{100 * test.mean_difference:+.1f} points | {p} |"
            )
    rows = {}
    for cell in bench_cells("topex-generators"):
        if cell.get("status") == "ok" and cell["method"] != "base":
            rows.setdefault(cell["method"], []).append(cell["n_augmented"])
    means = {k: rows.get(f"topex@{generator}-{k}", [0]) for k in sizes}
    added = ", ".join(f"+{k}: {sum(v) / len(v):.0f}" for k, v in means.items())
    seeds = ", ".join(map(str, table.expected_seeds))
    return (
        "\n".join(lines).replace("| -", "| −")
        + f"\n\n{generator.upper()} rows; accuracy (%), mean ± std over seeds {seeds}; p: "
        f"paired two-sided Wilcoxon, directed vs undirected. Rows added per cell, on average: "
        f"{added} (the undirected peer asks for as many). "
        + _bench_provenance("topex-generators")
        + "\n"
    )


KILL_TRIAL_COMMANDS = {
    "eda": "`augtool eda --n-aug 16`",
    "predict": "`augtool predict`",
    "embed": "`augtool embed` (no cache)",
    "bt": "`augtool bt --engine apertium`",
    "train": "`augtool train --checkpoint-every 1`",
}


def kill_trials() -> str:
    """docs/data-format.md: SIGKILL at random moments, then a rerun, per long command."""
    run = load("kill_trials")
    figures, settings = run["figures"], run["settings"]
    lines = [
        "| command | trials with a kill | kills | reruns that resumed | rows lost | "
        "rows duplicated | output identical to an uninterrupted run | uninterrupted run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in figures.items():
        rows_lost = "–" if name in ("embed", "train") else str(result["rows_lost"])
        duplicated = "–" if name in ("embed", "train") else str(result["rows_duplicated"])
        lines.append(
            f"| {KILL_TRIAL_COMMANDS.get(name, name)} | {result['trials_with_a_kill']} "
            f"| {result['kills']} | {result['resumed_runs']} | {rows_lost} | {duplicated} "
            f"| {result['identical']} of {result['trials']} | {result['reference_seconds']:.0f} s |"
        )
    return (
        "\n".join(lines)
        + f"\n\n{settings['rows']:,} TREC questions per command (`train`: 200, 2 epochs); one "
        "to three SIGKILLs per trial at seeded random moments of the run, start-up included, "
        "then the same command to the end. Identical: the same bytes (`embed`: the array; "
        "`train`: the model folder but its meta file). A trial whose kill came after "
        "the run had finished does not count towards the trials with a kill. "
        + _provenance(run)
        + "\n"
    )


def _gpu_suite_run() -> dict[str, Any] | None:
    """``gpu_suite.json`` when it holds a real GPU run at the 8B shape (not a smoke run)."""
    if not (RESULTS / "gpu_suite.json").exists():
        return None
    run = load("gpu_suite")
    settings = run["settings"]
    real = settings.get("size") == "8b" and str(settings.get("device", "")).startswith("cuda")
    return run if real else None


def gpu_memory() -> str:
    """docs/gpu.md: GPU memory of the 8B setting, estimated from the model's shapes, and
    measured beside it once benchmarks/gpu_suite.py has run on a GPU."""
    estimate = load("gpu_memory_estimate")
    e, es = estimate["figures"], estimate["settings"]
    suite = _gpu_suite_run()

    def gb(value: float) -> str:
        return f"{value:.2f} GiB"

    def measured(stage: str, key: str = "peak_gpu_gib") -> str:
        figures = suite["figures"].get(stage, {}) if suite else {}
        if figures.get(key) is None:
            return "not measured"
        unfinished = "" if figures.get("status") == "ok" else f" ({figures.get('status')})"
        return f"{gb(figures[key])}{unfinished}"

    a, c = e["adaptor_training"], e["adaptor_training_checkpointed"]
    ll, g = e["loglik_labelling"], e["generation"]
    ad, lg, gn = es["adaptor"], es["loglik"], es["generation"]
    rows = [
        (
            f"weights, bfloat16 ({e['parameters']['total'] / 1e9:.2f}B parameters)",
            "",
            gb(e["weights_bf16_gib"]),
            measured("train_adaptor", "weights_gpu_gib"),
        ),
        (
            "weights, 4-bit NF4 (`--load-in-4bit`; embeddings and `lm_head` stay bfloat16)",
            "",
            gb(e["weights_nf4_gib"]),
            "not measured",
        ),
        (
            f"invmix adaptor training, batch {ad['batch']} × ({ad['prompt_tokens']} + "
            f"{ad['target_tokens']}) tokens: activations kept for backward "
            f"{gb(a['activations_gib'])}, logits and loss {gb(a['logits_gib'])}",
            gb(a["above_weights_gib"]),
            gb(a["peak_gib"]),
            measured("train_adaptor"),
        ),
        (
            f"the same with `--gradient-checkpointing`: activations {gb(c['activations_gib'])}",
            gb(c["above_weights_gib"]),
            gb(c["peak_gib"]),
            measured("train_adaptor_checkpointed"),
        ),
        (
            f"log-likelihood labelling, {lg['labels']} labels, {lg['prompts_per_batch']} "
            f"prompts × {lg['prompt_tokens']} tokens per batch: KV cache of "
            f"{ll['pairs']} (prompt, label) pairs {gb(ll['kv_cache_gib'])}, logits "
            f"{gb(ll['logits_gib'])}, working memory {gb(ll['working_gib'])}",
            gb(ll["above_weights_gib"]),
            gb(ll["peak_gib"]),
            measured("loglik"),
        ),
        (
            f"`hf:` generation, batch {gn['batch']} × ({gn['prompt_tokens']} + "
            f"{gn['new_tokens']}) tokens: KV cache {gb(g['kv_cache_gib'])}, working memory "
            f"{gb(g['working_gib'])}",
            gb(g["above_weights_gib"]),
            gb(g["peak_gib"]),
            measured("generation"),
        ),
    ]
    header = "| Llama-3-8B shapes, bfloat16 | estimated: above the weights | estimated: peak |"
    rule = "|---|---|---|"
    if suite:
        header += " measured: peak |"
        rule += "---|"
    lines = [header, rule]
    for label, above, peak, seen in rows:
        line = f"| {label} | {above or '–'} | {peak} |"
        lines.append(line + (f" {seen} |" if suite else ""))
    packages = estimate["environment"]["packages"]
    text = (
        "\n".join(lines)
        + "\n\n**Estimated** columns are arithmetic on Llama-3-8B's configuration, not "
        "measurements (`benchmarks/gpu_memory_estimate.py`, written "
        f"{estimate['date'][:10]} with torch {packages.get('torch', '?')} and transformers "
        f"{packages.get('transformers', '?')}): parameters counted on the meta device; "
        "activations as autograd keeps them for a frozen LM whose gradient goes to the soft "
        "prompt only (the count is checked against autograd in the test suite); KV cache "
        "= 2 × layers × KV heads × head dim × tokens × batch × 2 bytes. Peak = bfloat16 "
        "weights + the job; the CUDA context and the allocator's cached blocks come on top "
        "(`torch.cuda.max_memory_allocated`, the measured figure, leaves them out too).\n"
    )
    if suite is None:
        return text + (
            "\nNo GPU run is recorded yet: `python benchmarks/gpu_suite.py` on a GPU writes "
            "`benchmarks/results/gpu_suite.json`, and this table then gains a measured column.\n"
        )
    s, f = suite["settings"], suite["figures"]
    gpu = s.get("gpu", {})

    def paper(stage: str, seconds: int) -> str:
        ratio = f[stage].get("speedup_vs_paper")
        return f"about {seconds} s" + (f" ({ratio}× faster here)" if ratio else "")

    speed = [
        "| stage (random weights, real shapes) | time | throughput | the paper's A100 |",
        "|---|---|---|---|",
        f"| invmix adaptor epoch, {f['train_adaptor'].get('sentences', '?')} sentences "
        f"| {f['train_adaptor'].get('epoch_s', '–')} s "
        f"| {f['train_adaptor'].get('sentences_per_s', '–')} sentences/s | |",
        f"| invmix refinement epoch, {f['refine'].get('rows', '?')} rows (TREC 5-shot's size) "
        f"| {f['refine'].get('epoch_s', '–')} s | | {paper('refine', 100)} |",
        f"| invmix Mixup + inversion epoch, {f['mix_invert'].get('rows', '?')} rows "
        f"| {f['mix_invert'].get('epoch_s', '–')} s "
        f"| {f['mix_invert'].get('rows_per_s', '–')} rows/s | {paper('mix_invert', 40)} |",
        f"| log-likelihood labelling, {f['loglik'].get('labels', '?')} labels "
        f"| {f['loglik'].get('scoring_s', '–')} s for {f['loglik'].get('rows', '?')} rows "
        f"| {f['loglik'].get('rows_per_s', '–')} rows/s | |",
        f"| `hf:` generation, batch {f['generation'].get('batch', '?')} "
        f"| {f['generation'].get('generation_s', '–')} s "
        f"| {f['generation'].get('tokens_per_s', '–')} tokens/s | |",
    ]
    note = (
        f"\n**Measured**: peak `torch.cuda.max_memory_allocated` of each stage of "
        f"`benchmarks/gpu_suite.py` on one {gpu.get('name', 'GPU')} (CUDA "
        f"{gpu.get('cuda', '?')}), an LM with random weights at these shapes; its prompts "
        "come from a small tokenizer built on the spot, so their token counts are close to, "
        "not equal to, the estimate's. The same run's speed:\n\n"
    )
    return text + note + "\n".join(speed) + "\n\n" + _provenance(suite) + "\n"


def lmmixup_gpu_estimate() -> str:
    """docs/lmmixup.md: estimated memory and compute of one GRPO step at 0.5B-7B."""
    run = load("lmmixup_gpu_estimate")
    f, cfg = run["figures"], run["settings"]
    rows = [
        "| model (Qwen2.5 shape) | training | trainer GPU | with `--use-vllm` | of which "
        "KV cache | weights sent to vLLM per step | generation floor on an H200 | "
        "compute per step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in f.items():
        for mode, label in (("lora", f"LoRA r {cfg['lora_r']}"), ("full", "full fine-tuning")):
            e = entry[mode]
            rows.append(
                f"| {name} ({entry['parameters'] / 1e9:.2f}B parameters) | {label} | "
                f"{e['trainer_gpu_gib']:.1f} GiB | {e['trainer_gpu_with_vllm_gib']:.1f} GiB | "
                f"{e['kv_cache_gib']:.2f} GiB | {e['vllm_sync_gib_per_step']:.1f} GiB | "
                f"{e['decode_floor_s_h200']:.2f} s | {e['generation_tflops']:.0f} + "
                f"{e['training_tflops']:.0f} TFLOPs |"
            )
    note = (
        f"\n**Estimated** from the configurations (no GPU run): one step of "
        f"{cfg['completions_per_step']} completions (`--group {cfg['group']}`), "
        f"{cfg['prompt_tokens']}-token prompts, completions at the full "
        f"{cfg['completion_tokens']:,} tokens; memory of weights (bf16), the reference "
        "copy and AdamW states (full fine-tuning), the KV cache and the log-probability "
        "pass; compute as generation + training FLOPs; the generation floor is the weights "
        f"read once per completion position at {cfg['h200_bandwidth_tbps']} TB/s "
        "(`benchmarks/lmmixup_gpu_estimate.py`).\n\n"
    )
    return "\n".join(rows) + note + _provenance(run) + "\n"


def audit_speed() -> str:
    """docs/audit.md: 5,000 augmented rows against 5,000 originals, every check and the
    HTML, against cleanlab's Datalab on the same embeddings."""
    run = load("audit_speed")
    f = run["figures"]
    rows = [
        "| run | wall time | target | |",
        "|---|---|---|---|",
        f"| `augtool audit`, {f['augmented_rows']:,} EDA rows vs {f['reference_rows']:,} TREC "
        "originals: start-up, encoder, embedding, cleanlab judge, distribution (MAUVE × 3 "
        "seeds), diversity, duplicates, map and HTML | "
        f"**{f['audit_seconds']:.1f} s** | < {f['target_seconds']:.0f} s | "
        f"{_met(f['audit_seconds'], f['target_seconds'], higher=False)} |",
        f"| peer: cleanlab `Datalab.find_issues` on the same embeddings and out-of-fold "
        f"probabilities (label, outlier, near-duplicate, non-IID issues; no embedding, no "
        f"start-up) | {f['peer_datalab_seconds']:.1f} s "
        f"(audit / peer {f['ratio_audit_to_peer']:.1f}×) | | |",
    ]
    return "\n".join(rows) + "\n\n" + _provenance(run) + "\n"


def audit_eda_trec() -> str:
    """docs/audit.md: what the audit of the speed run says about EDA on TREC."""
    run = load("audit_speed")
    r = run["figures"]["report"]
    label, dist, div, dup, nov = (
        r["label"],
        r["distribution"],
        r["diversity"],
        r["duplicates"],
        r["novelty"],
    )

    def pm(entry: dict[str, Any], digits: int = 4) -> str:
        return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"

    rows = [
        "| check | figure | EDA rows | flagged rows |",
        "|---|---|---|---|",
        f"| label | fidelity (cleanlab judge) | {label['fidelity']:.3f} "
        f"({label['issues']} issues) | {r['flagged']['label']} |",
        f"| distribution | MAUVE; FID; precision / recall | {pm(dist['mauve'])}; "
        f"{dist['fid']:.4f}; {dist['precision']:.3f} / {dist['recall']:.3f} "
        f"| {r['flagged']['distribution']} (off-manifold) |",
        f"| diversity | distinct-2 (originals); self-BLEU | {div['distinct_2']:.3f} "
        f"({div['reference_distinct_2']:.3f}); {div['self_bleu']:.1f} | "
        f"{r['flagged']['diversity']} (copies or overlap ≥ {nov['overlap_threshold']}) |",
        f"| diversity | exact copies of an original | {100 * nov['exact_copy_share']:.1f}% | |",
        f"| duplicates | exact / near (cosine ≥ {dup['threshold']}) of an original; internal "
        f"| {dup['exact_original']} / {dup['near_original']}; "
        f"{dup['exact_internal'] + dup['near_internal']} | {r['flagged']['duplicates']} |",
    ]
    return "\n".join(rows) + "\n\n" + _provenance(run) + "\n"


RENDERERS: dict[str, Callable[[], str]] = {
    "trec-bench-accuracy": trec_bench_accuracy,
    "trec-bench-seeds": trec_bench_seeds,
    "trec-bench-wilcoxon": trec_bench_wilcoxon,
    "trec-bench-time": trec_bench_time,
    "bench-intents-example": bench_intents_example,
    "pinr-agnews": pinr_agnews,
    "task-model-trec": task_model_trec,
    "topex-explore-performance": topex_explore_performance,
    "lmmixup-grpo": lmmixup_grpo,
    "lmmixup-gsm8k": lmmixup_gsm8k,
    "encoders-performance": encoders_performance,
    "pinr-particles": pinr_particles,
    "llm-performance": llm_performance,
    "baselines-performance": baselines_performance,
    "inversion-quality": inversion_quality,
    "decoder-memory": decoder_memory,
    "topex-generators": topex_generators,
    "kill-trials": kill_trials,
    "gpu-memory": gpu_memory,
    "client-concurrency": client_concurrency,
    "load-memory": load_memory,
    "coannotation-example": coannotation_example,
    "coannotation-quality": coannotation_quality,
    "scoring-memory": scoring_memory,
    "audit-speed": audit_speed,
    "lmmixup-gpu-estimate": lmmixup_gpu_estimate,
    "audit-eda-trec": audit_eda_trec,
}


def blocks(text: str) -> list[tuple[str, str]]:
    """``(renderer name, current body)`` of every rendered block in a document."""
    return [(m.group("name"), m.group("body")) for m in BLOCK.finditer(text)]


def rendered(text: str) -> str:
    """The document with every rendered block replaced by a fresh rendering."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in RENDERERS:
            raise SystemExit(f"unknown renderer {name!r} (known: {', '.join(RENDERERS)})")
        return match.group(1) + RENDERERS[name]() + match.group(4)

    return BLOCK.sub(replace, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    args = parser.parse_args()
    drift = []
    for doc in sorted(DOCS.glob("*.md")):
        text = doc.read_text(encoding="utf-8")
        fresh = rendered(text)
        if fresh != text:
            drift.append(doc.relative_to(ROOT))
            if not args.check:
                doc.write_text(fresh, encoding="utf-8")
    verb = "differ from their artefacts" if args.check else "rewritten"
    for doc in drift:
        print(f"{doc}: tables {verb}")
    if not drift:
        print("every rendered table matches its artefacts")
    return 1 if (args.check and drift) else 0


if __name__ == "__main__":
    sys.exit(main())
