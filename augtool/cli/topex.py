"""``augtool topex``: TopEx (explore the output space, score clusters of mistakes,
augment the chosen one with an LLM)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from augtool.cli.common import (
    ConfigOpt,
    JsonOpt,
    OutputOpt,
    OverwriteOpt,
    SkipInvalidOpt,
    handle_errors,
    make_config,
    read_input,
    report_rejects,
    require_modules,
)
from augtool.cli.console import (
    console,
    print_error,
    print_json,
    print_warning,
    progress_reporter,
    say,
)
from augtool.cli.options import config_options
from augtool.methods.topex.config import AugmentConfig, ExploreConfig, ScoreConfig

app = typer.Typer(
    help="TopEx: find clusters of a classifier's mistakes (explore), rank them (score) and "
    "fill the gap with LLM-generated samples (augment).",
    no_args_is_help=True,
)

FolderArg = Annotated[Path, typer.Argument(help="A folder written by `augtool topex explore`.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show the prompt and the request count; send nothing.")
]


@app.command("explore")
@handle_errors
@config_options(ExploreConfig)
def explore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Labelled JSONL to explore.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write.")],
    model: Annotated[
        Path | None, typer.Option("--model", help="An `augtool train` model folder.")
    ] = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="Also write plot.html (interactive) and plot.png.")
    ] = False,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare", help="An earlier explore folder: report what became of its cluster."
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Cluster a classifier's outputs, name and score the clusters of mistakes."""
    import shutil

    import numpy as np

    from augtool.data import build_meta, write_json, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.writer import check_output_folder, publish_folder
    from augtool.errors import OptionError
    from augtool.methods.topex.classifier import classifier_outputs, task_model_outputs
    from augtool.methods.topex.compare import compare_runs
    from augtool.methods.topex.explore import explore as run_explore
    from augtool.methods.topex.plot import cluster_map
    from augtool.methods.topex.store import CLUSTERS_FILE, load_exploration, save_exploration

    started = time.time()
    settings = make_config(ctx, ExploreConfig, config)
    require_modules(
        "bertopic",
        *(["plotly"] if plot else []),
        *(["umap"] if settings.projection == "umap" else []),
        *(["hdbscan"] if settings.clusterer == "hdbscan" else []),
    )
    if (model is None) == (settings.classifier is None):
        raise OptionError(
            "model",
            "give either --model (an `augtool train` folder) or --classifier "
            "(a Hugging Face sequence classifier)",
        )
    check_input_file(file)
    previous = load_exploration(compare) if compare is not None else None
    if compare is not None and compare.resolve() == output.resolve():
        raise OptionError("compare", "must be another folder than --output")
    check_output_folder(output, overwrite=overwrite, marker=CLUSTERS_FILE, kind="topex explore")
    records, rejects = read_input(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        require_label=True,
        skip_invalid=skip_invalid,
    )
    with progress_reporter() as reporter:
        advance = reporter.task("forward pass", len(records))
        if model is not None:
            outputs = task_model_outputs(
                model,
                records,
                encoder=settings.encoder,
                device=settings.device,
                batch_size=settings.batch_size,
                progress=advance,
            )
        else:
            outputs = classifier_outputs(
                str(settings.classifier),
                records,
                encoder=settings.encoder,
                label_order=settings.label_order,
                device=settings.device,
                batch_size=settings.batch_size,
                progress=advance,
            )
        gold = np.array([outputs.labels.index(r.label) for r in records])
        exploration = run_explore(
            outputs.logits,
            gold,
            [r.text or "" for r in records],
            outputs.embeddings,
            outputs.labels,
            settings,
            embed_tokens=outputs.encoder.token_embeddings,
            reporter=reporter,
        )

    staging = output.with_name(output.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    summary = save_exploration(
        staging,
        exploration,
        records,
        settings={
            "clusterer": settings.clusterer,
            "clusterer_params": settings.clusterer_params(),
            "with_labels": settings.with_labels,
            "error_threshold": settings.error_threshold,
            "projection": settings.projection,
            "max_outside": settings.max_outside,
            "ctc_texts": settings.ctc_texts,
            "variants": settings.variants().describe(),
        },
        score_config=settings,
    )
    saved = load_exploration(staging)
    chosen = saved.chosen_id()
    comparison = None
    if previous is not None:
        comparison = compare_runs(previous, saved.points, saved.clusters)
        write_json(staging / "compare.json", comparison)
    plot_counts = None
    if plot:
        previous_members = None
        if previous is not None and comparison is not None:
            old = previous.cluster(comparison["cluster"])
            previous_members = set(old["members"]) if old else None
        plot_counts = cluster_map(
            saved.points,
            {c["id"]: c["name"] for c in saved.mistaken()},
            chosen,
            staging / "plot.html",
            staging / "plot.png",
            title=f"{file.name}: {len(records)} points, {summary['wrong']} wrong",
            previous=previous_members,
        )
    publish_folder(staging, output)
    write_meta(
        output,
        build_meta(
            "topex explore",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            models=outputs.info,
            counts={
                "points": summary["points"],
                "wrong": summary["wrong"],
                "clusters": len(summary["clusters"]),
                "clusters_of_mistakes": len(saved.mistaken()),
                "noise": summary["noise"],
            },
            extra={"stage_seconds": exploration.timings, "plot": plot_counts},
        ),
    )
    report_rejects(output, rejects)
    _print_exploration(summary, saved)
    if comparison is not None:
        say(
            f"compared with {compare}: {comparison['verdict']} "
            f"(error rate {comparison['error_rate_before']:.2f} -> "
            f"{comparison['error_rate_after']:.2f})"
        )
    say(f"wrote {output}")


def _print_exploration(summary: dict[str, Any], saved: Any) -> None:
    if summary["wrong"] == 0:
        say(f"no misclassified points among {summary['points']}: no clusters of mistakes")
        return
    mistaken = saved.mistaken()
    say(
        f"{summary['points']} points, {summary['wrong']} wrong "
        f"(accuracy {summary['accuracy']:.4f}); {len(summary['clusters'])} clusters, "
        f"{len(mistaken)} of them mostly wrong; {summary['noise']} noise points"
    )
    if not mistaken:
        print_warning("no cluster is mostly wrong: try a lower --error-threshold or --min-samples")
        return
    table = Table(title="clusters of mistakes")
    for column in ("id", "size", "error", "gold -> pred", "name", "weighted"):
        table.add_column(column, justify="right" if column in ("id", "size", "error") else "left")
    for cluster in mistaken:
        table.add_row(
            str(cluster["id"]),
            str(cluster["size"]),
            f"{cluster['error_rate']:.2f}",
            f"{cluster['majority_label']} -> {cluster['majority_pred']}",
            cluster["name"],
            f"{cluster['scores'].get('weighted', 0):.3f}",
        )
    console.print(table)
    chosen = summary.get("chosen")
    if chosen:
        say(f"chosen: cluster {chosen['cluster']} ({chosen['name']!r}), {chosen['reason']}")


@app.command("score")
@handle_errors
@config_options(ScoreConfig)
def score(
    ctx: typer.Context,
    folder: FolderArg,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Rank the clusters of mistakes by --method; show their six scores."""
    from augtool.core.clustering.scores import SCORES
    from augtool.methods.topex.store import load_exploration, write_scores

    settings = make_config(ctx, ScoreConfig, config)
    saved = load_exploration(folder)
    result = write_scores(saved.folder, saved.summary, settings)
    if as_json:
        print_json(result)
        return
    if not result["ranking"]:
        say(f"{folder}: no clusters of mistakes to score")
        return
    order = "lowest" if result["lower_is_better"] else "highest"
    table = Table(title=f"clusters of mistakes, ranked by {settings.method} ({order} first)")
    for column in ("id", "size", "name", *SCORES):
        table.add_column(column, justify="left" if column == "name" else "right")
    for cluster_id in result["ranking"]:
        row = result["clusters"][str(cluster_id)]
        table.add_row(
            str(cluster_id),
            str(row["size"]),
            row["name"],
            *(f"{row[name]:.3f}" for name in SCORES),
        )
    console.print(table)
    chosen = result["chosen"]
    say(f"chosen: cluster {chosen['cluster']} ({chosen['name']!r}), {chosen['reason']}")


@app.command("augment")
@handle_errors
@config_options(AugmentConfig)
def augment(
    ctx: typer.Context,
    folder: FolderArg,
    output: OutputOpt,
    dry_run: DryRunOpt = False,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Generate --n samples for the chosen cluster of mistakes (an LLM, or --generator)."""
    from augtool.core.generation import RequestBudget, RequestBudgetExhausted, load_llm
    from augtool.core.generation.jobs import JobSummary, write_failures
    from augtool.data import JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.methods.topex.augment import build_prompt, pick_target, run_augment
    from augtool.methods.topex.store import CLUSTERS_FILE, load_exploration

    started = time.time()
    settings = make_config(ctx, AugmentConfig, config)
    saved = load_exploration(folder)
    target = pick_target(saved, settings)
    if not settings.generator_spec().uses_llm:
        _augment_locally(saved, target, settings, output, dry_run, overwrite, started)
        return
    prompt = build_prompt(settings, target.pair)
    if dry_run:
        messages = prompt.render(target, settings, target.shots(settings, 0))
        say(
            f"dry run: {settings.n} request(s) for cluster {target.cluster['id']} "
            f"({target.cluster['name']!r}), label {target.label}, {settings.prompt_style} "
            "prompt; nothing is sent"
        )
        for message in messages:
            console.print(f"[{message['role']}] {message['content']}", markup=False)
        return
    prepare_output(output, overwrite=overwrite)
    llm = load_llm(settings.llm, **settings.backend_options())
    llm.check()
    identity = {
        k: v for k, v in config_dict(settings).items() if k not in ("max_requests", "concurrency")
    }
    key = run_key(
        "topex augment",
        settings=identity,
        exploration=file_fingerprint(saved.folder / CLUSTERS_FILE),
        cluster=target.cluster["id"],
        prompt=prompt.describe(settings.shots),
    )
    writer = JsonlWriter(output, run_key=key, overwrite=overwrite)
    summary = JobSummary()
    try:
        with writer, progress_reporter() as reporter:
            if writer.resumed:
                reporter.log(f"resuming: {writer.resumed} rows already written")
            run_augment(
                saved,
                target,
                llm,
                settings,
                writer,
                prompt=prompt,
                budget=RequestBudget(settings.max_requests),
                reporter=reporter,
                summary=summary,
            )
            writer.commit()
    except KeyboardInterrupt:
        write_failures(output, summary.failed)
        print_error("interrupted; rerun the same command to resume")
        raise typer.Exit(130) from None
    except RequestBudgetExhausted as exc:
        write_failures(output, summary.failed)
        print_error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    finally:
        llm.close()
    failed_path = write_failures(output, summary.failed)
    kept = summary.resumed + summary.written
    write_meta(
        output,
        build_meta(
            "topex augment",
            config=settings,
            seed=settings.seed,
            started=started,
            models={"llm": llm.identity()},
            counts={**summary.as_dict(), "kept": kept},
            extra={
                **_target_meta(saved, target),
                "shots": settings.shots,
                "prompt": prompt.describe(settings.shots),
            },
        ),
    )
    if failed_path is not None:
        reasons = sorted({f["error"].split(" (")[0] for f in summary.failed})
        print_warning(
            f"{len(summary.failed)} replies rejected or failed ({'; '.join(reasons)}); "
            f"see {failed_path}"
        )
    if kept < settings.n:
        print_warning(f"only {kept} of {settings.n} samples passed the checks")
    say(
        f"wrote {kept} samples for cluster {target.cluster['id']} "
        f"({target.cluster['name']!r}, label {target.label}) to {output}"
    )


def _target_meta(saved: Any, target: Any) -> dict[str, Any]:
    """The meta fields every ``topex augment`` run records about what it augmented."""
    return {
        "explore_folder": str(saved.folder),
        "cluster": {
            "id": target.cluster["id"],
            "name": target.cluster["name"],
            "error_rate": target.cluster["error_rate"],
        },
        "target_label": target.label,
    }


def _augment_locally(
    saved: Any,
    target: Any,
    settings: AugmentConfig,
    output: Path,
    dry_run: bool,
    overwrite: bool,
    started: float,
) -> None:
    """``--generator eda|bt|invmix:DIR``: samples made from the cluster's own members."""
    from augtool.data import JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.errors import OptionError
    from augtool.methods.topex.generators import local_samples, members_with_label, shares
    from augtool.methods.topex.store import CLUSTERS_FILE

    spec = settings.generator_spec()
    if spec.method == "invmix" and not Path(str(spec.argument)).is_dir():
        raise OptionError("generator", f"invmix model folder {spec.argument!r} does not exist")
    members = members_with_label(target)
    per_member = shares(settings.n, len(members))
    if dry_run:
        say(
            f"dry run: {settings.n} {spec.method} sample(s) for cluster {target.cluster['id']} "
            f"({target.cluster['name']!r}), label {target.label}, from {len(members)} member(s) "
            f"({', '.join(map(str, per_member))} each); nothing is written"
        )
        return
    prepare_output(output, overwrite=overwrite)
    model_fingerprint = None
    if spec.method == "invmix" and spec.argument:
        from augtool.core.hub import folder_fingerprint

        model_fingerprint = folder_fingerprint(spec.argument)
    key = run_key(
        "topex augment",
        settings={k: v for k, v in config_dict(settings).items() if k != "device"},
        exploration=file_fingerprint(saved.folder / CLUSTERS_FILE),
        cluster=target.cluster["id"],
        model=model_fingerprint,
    )
    writer = JsonlWriter(output, run_key=key, overwrite=overwrite)
    with writer:
        if writer.resumed:
            say(f"resuming: {writer.resumed} rows already written")
        with console.status(f"{spec.method}: {settings.n} sample(s) from {len(members)} member(s)"):
            result = local_samples(saved, target, settings, spec, warn=print_warning)
        written = writer.write(row for row in result.rows if row.id not in writer.done_ids)
        writer.commit()
    kept = writer.resumed + written
    write_meta(
        output,
        build_meta(
            "topex augment",
            config=settings,
            seed=settings.seed,
            started=started,
            models={"generator": {**spec.describe(), "fingerprint": model_fingerprint}},
            counts={
                "members": len(members),
                "resumed": writer.resumed,
                "written": written,
                "duplicates_dropped": result.duplicates,
                "kept": kept,
            },
            extra={
                **_target_meta(saved, target),
                "generator": spec.describe(),
                "per_member": per_member,
            },
        ),
    )
    if kept < settings.n:
        print_warning(f"only {kept} of {settings.n} samples passed the checks")
    say(
        f"wrote {kept} {spec.method} samples for cluster {target.cluster['id']} "
        f"({target.cluster['name']!r}, label {target.label}) to {output}"
    )
