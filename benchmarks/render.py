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


RENDERERS: dict[str, Callable[[], str]] = {
    "encoders-performance": encoders_performance,
    "pinr-particles": pinr_particles,
    "llm-performance": llm_performance,
    "baselines-performance": baselines_performance,
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
