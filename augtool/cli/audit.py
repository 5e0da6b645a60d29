"""``augtool audit``: one quality report (label fidelity, distribution, diversity,
duplicates, a map) for any augmented or condensed set against its originals."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from augtool.audit.config import AuditConfig
from augtool.cli.common import (
    DATASET_HELP,
    ConfigOpt,
    JsonOpt,
    OverwriteOpt,
    handle_errors,
    make_config,
    read_input,
    require_modules,
)
from augtool.cli.console import console, print_error, print_json, print_warning, say
from augtool.cli.options import config_options

#: Exit code of a run whose ``--fail-under`` gate failed.
GATE_EXIT = 4


def _set_names(files: list[Path], names: str | None) -> list[str]:
    from augtool.errors import OptionError

    if names is None:
        chosen = [Path(str(f)).stem or str(f) for f in files]
    else:
        chosen = [n.strip() for n in names.split(",")]
        if len(chosen) != len(files) or not all(chosen):
            raise OptionError(
                "names", f"give one non-empty name per file ({len(files)}), got {names!r}"
            )
    if len(set(chosen)) != len(chosen):
        raise OptionError("names", f"names must differ, got {', '.join(chosen)}")
    return chosen


@handle_errors
@config_options(AuditConfig)
def audit(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(help="Augmented (or condensed) sets to audit. " + DATASET_HELP),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Folder for report.json, report.html and map.png (written whole, at the end).",
        ),
    ],
    as_json: JsonOpt = False,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Audit augmented rows against their originals: does each row keep its label (an
    offline cleanlab judge, a task model or an LLM), does the set match the originals'
    distribution, is it diverse and new, what does it duplicate; one report.json,
    report.html and map, and --fail-under gates (exit code 4) for CI scripts."""
    started = time.time()
    settings = make_config(ctx, AuditConfig, config)
    chosen = settings.check_list()
    require_modules(
        *(["cleanlab"] if "label" in chosen and settings.judge_kind == "cleanlab" else []),
        *(["sacrebleu"] if "diversity" in chosen else []),
        *(["mauve"] if "distribution" in chosen and settings.mauve else []),
    )
    import shutil

    from augtool.audit.judges import AuditSet
    from augtool.audit.outputs import REPORT_JSON, map_groups, write_report_files
    from augtool.audit.pipeline import apply_gates, audit_sets, label_counts
    from augtool.cli.console import progress_reporter
    from augtool.data import build_meta, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import utc_now
    from augtool.data.writer import check_output_folder, publish_folder

    reference_path = Path(settings.reference)
    names = _set_names(files, settings.names)
    for path in (reference_path, *files):
        check_input_file(path)
    check_output_folder(output, overwrite=overwrite, marker=REPORT_JSON, kind="audit")
    needs_label = "label" in chosen
    reference, _ = read_input(
        reference_path,
        text_field=settings.text_field,
        label_field=settings.label_field,
        require_label=needs_label,
    )
    known = frozenset(label_counts(reference)) if needs_label else None
    sets = []
    for name, path in zip(names, files, strict=True):
        records, _ = read_input(
            path,
            text_field=settings.text_field,
            label_field=settings.label_field,
            require_label=needs_label,
            known_labels=known,
        )
        aset = AuditSet.from_records(name, str(path), records)
        if not aset.provenance:
            print_warning(
                f"{path}: no `aug` provenance in any row; its rows count as one method "
                f"named {name!r}"
            )
        sets.append(aset)

    with progress_reporter() as reporter:
        judge, judge_info, model = (
            _load_judge(settings, reference, reporter)
            if needs_label
            else (
                None,
                None,
                None,
            )
        )
        try:
            encoder = _encoder(settings, model)
            advance = reporter.task("embedding", len(reference) + sum(len(s.records) for s in sets))
            ref_emb = encoder.encode([r.text or "" for r in reference], progress=advance)
            embeddings = [encoder.encode(s.texts, progress=advance) for s in sets]
            report = audit_sets(
                settings, reference, ref_emb, sets, embeddings, judge=judge, reporter=reporter
            )
        finally:
            closer = getattr(judge, "close", None)
            if closer is not None:
                closer()
        report = {
            "created": utc_now(),
            "augtool": _version(),
            **report,
            "encoder": encoder.describe(),
            "space": settings.resolved_space,
            "judge": judge_info or {"name": settings.judge},
        }
        report["reference"]["path"] = str(reference_path)
        passed = apply_gates(report, settings.gates)
        reporter.log("writing the report")
        staging = output.with_name(output.name + ".partial")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        groups = map_groups(reference, ref_emb, sets, embeddings) if settings.map else None
        drawn = write_report_files(
            staging, report, groups=groups, worst=settings.worst, seed=settings.seed
        )
    publish_folder(staging, output)
    write_meta(
        output,
        build_meta(
            "audit",
            config=settings,
            inputs=[reference_path, *files],
            seed=settings.seed,
            started=started,
            models={"encoder": report["encoder"], "judge": report["judge"]},
            counts={
                "reference": len(reference),
                **{f"set:{s.name}": len(s.records) for s in sets},
                **{f"flagged:{name}": len(c["flagged"]) for name, c in report["checks"].items()},
            },
            extra={"map": drawn} if drawn else None,
        ),
    )
    if as_json:
        print_json(report)
    else:
        console.print(_summary_table(report))
        say(f"wrote {output / REPORT_JSON} and {output / 'report.html'}")
    if not passed:
        failed = [
            f"{g['check']} of {g['set']} is "
            + ("not measured" if g["value"] is None else f"{g['value']:.4f}")
            + f" < {g['threshold']}"
            for g in report["gates"]
            if not g["passed"]
        ]
        print_error("--fail-under: " + "; ".join(failed))
        raise typer.Exit(GATE_EXIT)


def _version() -> str:
    from augtool import __version__

    return __version__


def _encoder(settings: AuditConfig, model: Any) -> Any:
    """The encoder of the embedding space: the task model's own, or ``--encoder``."""
    if settings.resolved_space == "model":
        return model.encoder
    from augtool.core.encoders import load_encoder

    return load_encoder(settings.encoder, device=settings.device, batch_size=settings.batch_size)


class _Judge:
    """A model or LLM judge as the pipeline calls it, sampling rows per set."""

    def __init__(self, run: Any, settings: AuditConfig, closer: Any = None) -> None:
        self.run = run
        self.settings = settings
        self.closer = closer

    def __call__(self, aset: Any, embeddings: Any) -> Any:
        from augtool.audit.judges import sample_indices

        indices = sample_indices(len(aset.records), self.settings.sample, self.settings.seed)
        return self.run(aset, indices, embeddings)

    def close(self) -> None:
        if self.closer is not None:
            self.closer()


def _load_judge(
    settings: AuditConfig, reference: list[Any], reporter: Any
) -> tuple[Any, dict[str, Any] | None, Any]:
    """``(judge, its provenance, task model)``; the cleanlab judge is ``None`` (the
    pipeline's default). Loads and checks the judge before any work (an unreachable
    server or a wrong model path fails here, in one line)."""
    if settings.judge_kind == "cleanlab":
        return None, {"name": "cleanlab", "folds": settings.folds}, None
    if settings.judge_kind == "model":
        from augtool.audit.judges import model_label_issues
        from augtool.core.hub import model_key
        from augtool.core.taskmodel.model import TaskModel

        folder = settings.judge.strip().split(":", 1)[1]
        model = TaskModel.load(folder, device=settings.device, batch_size=settings.batch_size)
        in_space = settings.resolved_space == "model"

        def run(aset: Any, indices: list[int], embeddings: Any) -> Any:
            return model_label_issues(
                model,
                aset,
                indices,
                embeddings if in_space else None,
                batch_size=settings.batch_size,
            )

        info = {"name": settings.judge, "labels": model.labels, "content": model_key(folder)}
        return _Judge(run, settings), info, model
    return _llm_judge(settings, reference, reporter)


def _llm_judge(
    settings: AuditConfig, reference: list[Any], reporter: Any
) -> tuple[Any, dict[str, Any], None]:
    from augtool.audit.judges import llm_label_issues
    from augtool.audit.pipeline import label_counts
    from augtool.core.generation import RequestBudget, load_llm
    from augtool.core.generation.labels import label_set_from, load_label_set
    from augtool.core.generation.params import GenerationParams
    from augtool.core.generation.prompts import step_template
    from augtool.methods.invmix.config import IntrusionConfig, resolve_scoring
    from augtool.methods.llm_baselines import PLACEHOLDERS, REQUIRED

    if settings.labels:
        label_set = load_label_set(settings.labels)
        label_set.require(label_counts(reference), settings.reference)
    else:
        label_set = label_set_from(sorted(label_counts(reference)), settings.reference)
    prompts = IntrusionConfig(judge=settings.judge, prompt_style=settings.prompt_style)
    templates = {
        "label": step_template(
            "llm.label",
            settings.prompt_style,
            None,
            available=PLACEHOLDERS["llm.label"],
            required=REQUIRED["llm.label"],
            option="prompt_style",
        ),
        "match": prompts.match_template(),
        "intrusion_label": prompts.label_template(),
    }
    llm = load_llm(settings.judge.strip(), **settings.backend_options())
    try:
        scoring = resolve_scoring(settings.scoring, llm, "scoring")
        llm.check()
    except BaseException:
        llm.close()
        raise
    params = GenerationParams(settings.max_new_tokens, settings.temperature, 1.0)
    budget = RequestBudget(settings.max_requests)

    def run(aset: Any, indices: list[int], embeddings: Any) -> Any:
        return llm_label_issues(
            llm,
            label_set,
            aset,
            indices,
            templates=templates,
            scoring=scoring,
            params=params,
            seed=settings.seed,
            budget=budget,
            reporter=reporter,
        )

    info = {
        "name": settings.judge,
        "llm": llm.identity(),
        "scoring": scoring,
        "prompts": {name: t.id for name, t in templates.items()},
    }
    return _Judge(run, settings, closer=llm.close), info, None


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("mean")
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _summary_table(report: dict[str, Any]) -> Table:
    """The headline figure of each check: one row per figure, one column per set."""
    checks = report["checks"]
    rows = [
        ("label", "fidelity", "label fidelity"),
        ("label", "issues", "label issues"),
        ("label", "unjudged", "unjudged rows"),
        ("distribution", "mauve", "MAUVE"),
        ("distribution", "fid", "FID"),
        ("distribution", "precision", "precision"),
        ("distribution", "recall", "recall"),
        ("diversity", "distinct_2", "distinct-2"),
        ("diversity", "self_bleu", "self-BLEU"),
        ("diversity", "novelty_score", "novelty"),
        ("duplicates", "uniqueness", "uniqueness"),
    ]
    table = Table(title=f"audit against {report['reference']['path']}")
    table.add_column("check")
    table.add_column("figure")
    for entry in report["sets"]:
        table.add_column(f"{entry['name']} ({entry['rows']})", justify="right")
    for check, key, title in rows:
        if check not in checks:
            continue
        cells = [
            _fmt(checks[check]["figures"].get(entry["name"], {}).get(key))
            for entry in report["sets"]
        ]
        table.add_row(check, title, *cells)
    return table
