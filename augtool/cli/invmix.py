"""``augtool invmix``: inversedMixup (adaptor alignment, refinement, mixing and inversion,
reconstruction, manifold-intrusion analysis)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from augtool.cli.common import (
    DATASET_HELP,
    ConfigOpt,
    OverwriteOpt,
    SkipInvalidOpt,
    handle_errors,
    make_config,
    read_input,
    report_rejects,
)
from augtool.cli.console import console, print_warning, progress_reporter, say
from augtool.cli.options import config_options
from augtool.core.distributed import is_main_process
from augtool.core.pretrained import lm_load_options
from augtool.methods.invmix.config import (
    AdaptorConfig,
    IntrusionConfig,
    InvmixGenerateConfig,
    ReconstructConfig,
    RefineConfig,
    WarmLMConfig,
)

app = typer.Typer(
    help="inversedMixup: readable Mixup. Align an adaptor between a sentence encoder and a "
    "frozen LM (train-adaptor), refine it on task data (refine), then mix and invert "
    "(generate); check it with reconstruct and intrusion. Offline, warm-lm makes a small "
    "causal LM from the encoder's BERT weights.",
    no_args_is_help=True,
)

ModelOpt = Annotated[
    Path, typer.Option("--model", help="An invmix model folder (train-adaptor or refine output).")
]
FolderOut = Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")]
FileOut = Annotated[Path, typer.Option("--output", "-o", help="Output path.")]
InputArg = Annotated[
    Path,
    typer.Argument(help=DATASET_HELP),
]
MapOpt = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        help="Also write a 2D map (PCA) of the input rows and the generated rows in the "
        "model's embedding space; the format follows the suffix: .png, .jpg, .svg, .pdf "
        "or .html (interactive, needs plotly).",
    ),
]


@app.command("warm-lm")
@handle_errors
@config_options(WarmLMConfig)
def warm_lm(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSONL corpus (one sentence per row).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Causal LM folder to write (--llm hf:DIR).")
    ],
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """A small causal LM for invmix, offline: the encoder's BERT weights continued as a
    causal LM on a corpus (LM head tied to the word embeddings); use it as
    --llm hf:OUTPUT; resumable."""
    from augtool.data import build_meta, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.methods.invmix.warm_lm import train_warm_lm

    started = time.time()
    settings = make_config(ctx, WarmLMConfig, config)
    check_input_file(file)
    rejects: list | None = [] if skip_invalid else None
    with progress_reporter() as reporter:
        result = train_warm_lm(
            file, settings, output, overwrite=overwrite, rejects=rejects, reporter=reporter
        )
    if not is_main_process():  # under `accelerate launch`, rank 0 writes meta and says so
        return
    write_meta(
        output,
        build_meta(
            "invmix warm-lm",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            models={"encoder": result.encoder},
            counts={"sentences": result.sentences, "rejected": len(rejects or [])},
            extra={"history": result.history, "initialised": result.initialised},
        ),
    )
    report_rejects(output, rejects or [])
    last = result.history[-1]["loss"] if result.history else float("nan")
    say(f"saved the causal LM to {output} (final loss {last:.4f}); use it as --llm hf:{output}")


@app.command("train-adaptor")
@handle_errors
@config_options(AdaptorConfig)
def train_adaptor(
    ctx: typer.Context,
    file: InputArg,
    output: FolderOut,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Stage 1: train the adaptor on unlabeled text (encoder and LM frozen); resumable."""
    from augtool.data import build_meta, write_meta
    from augtool.methods.invmix.stages import run_train_adaptor

    started = time.time()
    settings = make_config(ctx, AdaptorConfig, config)
    records, rejects = read_input(file, text_field=settings.text_field, skip_invalid=skip_invalid)
    with progress_reporter() as reporter:
        result = run_train_adaptor(
            records, settings, output, overwrite=overwrite, reporter=reporter
        )
    if not is_main_process():  # under `accelerate launch`, rank 0 writes meta and says so
        return
    write_meta(
        output,
        build_meta(
            "invmix train-adaptor",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            models={"llm": result.model.llm_info, "encoder": result.model.encoder_info},
            counts={"sentences": len(records)},
            extra={"history": result.history},
        ),
    )
    report_rejects(output, rejects)
    last = result.history[-1]["loss"] if result.history else float("nan")
    say(f"saved the adaptor to {output} (final loss {last:.4f})")


@app.command("refine")
@handle_errors
@config_options(RefineConfig)
def refine(
    ctx: typer.Context,
    file: InputArg,
    adaptor: Annotated[Path, typer.Option("--adaptor", help="train-adaptor output.")],
    output: FolderOut,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Stage 2: alternate task-model training (theta, CE) and adaptor refinement (phi, GEN)
    on labelled task data; resumable by round."""
    from augtool.data import build_meta, write_meta
    from augtool.methods.invmix.stages import run_refine

    started = time.time()
    settings = make_config(ctx, RefineConfig, config)
    records, rejects = read_input(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        require_label=True,
        skip_invalid=skip_invalid,
    )
    with progress_reporter() as reporter:
        result = run_refine(
            records, settings, adaptor, output, overwrite=overwrite, reporter=reporter
        )
    if not is_main_process():  # under `accelerate launch`, rank 0 writes meta and says so
        return
    write_meta(
        output,
        build_meta(
            "invmix refine",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            models={"adaptor": str(adaptor), "llm": result.model.llm_info},
            counts={"rows": len(records)},
            extra={"history": result.history},
        ),
    )
    report_rejects(output, rejects)
    say(f"saved the refined model (task model + adaptor) to {output}")


@app.command("reconstruct")
@handle_errors
@config_options(ReconstructConfig)
def reconstruct(
    ctx: typer.Context,
    file: InputArg,
    model: ModelOpt,
    output: FileOut,
    plot: Annotated[Path | None, typer.Option(help="Also write a 2D map (PNG).")] = None,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Invert the embeddings of real sentences: BLEU, exact match, Fig. 4b cosine groups."""
    from augtool.core.inversion.model import InversionModel
    from augtool.core.plotting import check_plot_path, reconstruction_map
    from augtool.data import build_meta, prepare_output, write_json, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.writer import atomic_write_text, sidecar
    from augtool.methods.invmix.reconstruct import run_reconstruct

    started = time.time()
    settings = make_config(ctx, ReconstructConfig, config)
    check_plot_path(plot, html=False)
    check_input_file(file)
    prepare_output(output, overwrite=overwrite, inputs=[file])
    inverter = InversionModel.load(
        model, device=settings.device, dtype=settings.dtype, **lm_load_options(settings)
    )
    records, rejects = read_input(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        skip_invalid=skip_invalid,
    )
    with progress_reporter() as reporter:
        result = run_reconstruct(records, inverter, settings, reporter)
    atomic_write_text(
        output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.rows)
    )
    metrics_path = sidecar(output, ".metrics.json")
    write_json(metrics_path, result.metrics)
    if plot is not None:
        reconstruction_map(
            result.originals,
            result.reconstructions,
            [r.label for r in records],
            plot,
            title=f"{model.name}: originals and reconstructions",
        )
    write_meta(
        output,
        build_meta(
            "invmix reconstruct",
            config=settings,
            inputs=[file],
            models={"inversion": str(model)},
            counts={"rows": len(records)},
            started=started,
            extra={"metrics": result.metrics},
        ),
    )
    report_rejects(output, rejects)
    table = Table(title=f"{model} on {file}", show_header=False)
    metrics = result.metrics
    table.add_row("BLEU", f"{100 * metrics['bleu']:.1f}")
    table.add_row("exact match", f"{100 * metrics['exact_match']:.1f}%")
    for name, value in metrics["cosine"].items():
        if name != "pairs":
            table.add_row(
                f"cosine: {name.replace('_', ' ')}", "–" if value is None else f"{value:.4f}"
            )
    console.print(table)
    say(f"wrote {len(records)} reconstructions to {output} and metrics to {metrics_path}")


@app.command("generate")
@handle_errors
@config_options(InvmixGenerateConfig)
def generate(
    ctx: typer.Context,
    file: InputArg,
    model: ModelOpt,
    output: FileOut,
    plot: MapOpt = None,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Stage 3: mix pairs of embeddings (lambda ~ Beta(alpha, alpha)) and invert them to
    sentences with soft (or LLM) labels; resumable."""
    from augtool.core.generation.labels import label_set_from, load_label_set
    from augtool.core.inversion.model import InversionModel
    from augtool.core.plotting import check_plot_path
    from augtool.data import (
        FieldMap,
        JsonlWriter,
        build_meta,
        labels_of,
        prepare_output,
        run_key,
        write_meta,
    )
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.methods.invmix.generate import LLMLabeller, run_generate

    started = time.time()
    settings = make_config(ctx, InvmixGenerateConfig, config)
    check_plot_path(plot)
    check_input_file(file)
    prepare_output(output, overwrite=overwrite, inputs=[file])
    template = settings.label_template() if settings.labels == "llm" else None
    descriptions = (
        load_label_set(settings.label_descriptions) if settings.label_descriptions else None
    )
    known = _model_labels(model)
    records, rejects = read_input(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        require_label=True,
        known_labels=frozenset(known) if known else None,
        skip_invalid=skip_invalid,
    )
    label_set = None
    if settings.labels == "llm":
        if descriptions is not None:
            descriptions.require(
                labels_of(records), str(settings.label_descriptions), "label_descriptions"
            )
        label_set = descriptions or label_set_from(labels_of(records), str(file))
    inverter = InversionModel.load(
        model, device=settings.device, dtype=settings.dtype, **lm_load_options(settings)
    )
    labeller = None
    if label_set is not None and template is not None:
        llm = _label_llm(settings, inverter)
        labeller = LLMLabeller(
            llm,
            label_set,
            scoring=settings.resolved_label_scoring(llm),
            template=template,
        )
    from augtool.core.hub import model_key

    key = run_key(
        "invmix generate",
        settings=config_dict(settings),
        input=file_fingerprint(file),
        llm=inverter.llm_info.get("content", inverter.llm_info["fingerprint"]),
        encoder=inverter.encoder.fingerprint,
        model=model_key(model),
    )
    fields = FieldMap(text=settings.text_field, label=settings.label_field)
    writer = JsonlWriter(output, run_key=key, fields=fields, overwrite=overwrite, inputs=[file])
    with writer, progress_reporter() as reporter:
        if writer.resumed:
            reporter.log(f"resuming: {writer.resumed} rows already written")
        summary = run_generate(
            records, inverter, settings, writer, labeller=labeller, reporter=reporter
        )
        writer.commit()
    drawn = None
    if plot is not None:  # after the commit: a plot never costs the rows
        with progress_reporter() as reporter:
            drawn = _generate_map(
                records, summary.embeddings, inverter, output, plot, settings, reporter
            )
    counts = {
        "planned": summary.total,
        "written": summary.written + summary.resumed,
        "dropped_duplicates": summary.duplicates,
        "unlabelled": summary.unlabelled,
    }
    write_meta(
        output,
        build_meta(
            "invmix generate",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            counts=counts,
            started=started,
            models={"inversion": str(model), "llm": inverter.llm_info},
            extra={
                "plot": drawn,
                "labelling": {
                    "llm": settings.label_llm or inverter.llm_info["spec"],
                    "scoring": labeller.scoring,
                    "prompt": labeller.template.describe(),
                    "labels": label_set.names if label_set else None,
                }
                if labeller
                else None,
            },
        ),
    )
    report_rejects(output, rejects)
    if summary.unlabelled:
        print_warning(
            f"{summary.unlabelled} rows got no label from the LLM (kept unlabelled, see llm_label)"
        )
    note = f", {summary.duplicates} identical to a parent dropped" if summary.duplicates else ""
    say(f"wrote {counts['written']} mixed rows to {output}{note}")
    if plot is not None:
        say(f"wrote the map of inputs and mixed rows to {plot}")


def _generate_map(
    records: list[Any],
    embeddings: Any,
    inverter: Any,
    output: Path,
    plot: Path,
    settings: InvmixGenerateConfig,
    reporter: Any,
) -> dict[str, Any]:
    """The inputs and every row of ``output`` (resumed ones too) in the model's embedding
    space; mixed rows are coloured by their hard label: the argmax of ``label_dist`` for
    soft labels, the LLM's label otherwise."""
    from augtool.core.plotting import embedding_map

    rows, _ = read_input(output, text_field=settings.text_field, label_field=settings.label_field)
    texts = [r.text or "" for r in rows]
    advance = reporter.task("embedding mixed rows", len(rows))
    mixed = inverter.embed(texts, progress=advance) if texts else []
    if embeddings is None:  # not computed by this run
        embeddings = inverter.embed([r.text or "" for r in records])
    soft = settings.labels == "soft"
    labels = [
        max(r.label_dist.items(), key=lambda item: item[1])[0] if r.label_dist else r.label
        for r in rows
    ]
    return embedding_map(
        embeddings,
        mixed,
        [r.label for r in records],
        labels,
        plot,
        title=f"invmix: {len(records)} inputs and {len(rows)} mixed rows",
        generated_name="mixed (argmax label)" if soft else "mixed (LLM label)",
        original_texts=[r.text or "" for r in records],
        generated_texts=texts,
        seed=settings.seed,
    )


def _model_labels(model: Path) -> list[str]:
    """The labels an invmix model was refined on (read from its ``inversion.json`` without
    loading anything; empty for a stage-1 adaptor or an unreadable folder, which loading
    then reports)."""
    try:
        info = json.loads((Path(model) / "inversion.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    labels = info.get("labels") if isinstance(info, dict) else None
    return [str(x) for x in labels] if isinstance(labels, list) else []


def _label_llm(settings: InvmixGenerateConfig, inverter: object) -> object:
    """The LLM for --labels llm: the given spec, or the inversion LM itself (hf:)."""
    from augtool.core.generation import load_llm
    from augtool.core.generation.hf_backend import HFBackend

    if settings.label_llm:
        llm = load_llm(
            settings.label_llm,
            base_url=settings.base_url,
            device=settings.device,
            dtype=settings.dtype,
            batch_size=settings.batch_size,
            **lm_load_options(settings),
        )
        llm.check()
        return llm
    lm = inverter.lm  # type: ignore[attr-defined]
    return HFBackend.from_loaded(
        inverter.llm_info["source"],
        lm.model,  # type: ignore[attr-defined]
        lm.tokenizer,
        str(lm.device),
        batch_size=settings.batch_size,
    )


@app.command("intrusion")
@handle_errors
@config_options(IntrusionConfig)
def intrusion(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Rows written by `augtool invmix generate`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Result JSON.")],
    plot: Annotated[Path | None, typer.Option(help="Also write a plot (PNG).")] = None,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Manifold intrusion (App. A.4): does the interpolated label fit each mixed row
    (Yes/No); for No rows, is the judge's label a parent's (Inside) or not (Outside);
    proportions by the folded mixing ratio max(lambda, 1-lambda)."""
    from augtool.audit.intrusion import (
        VERDICTS,
        judge,
        mixed_rows,
        sample_rows,
        summarise,
    )
    from augtool.core.generation import load_llm
    from augtool.core.generation.labels import label_set_from, load_label_set
    from augtool.core.plotting import check_plot_path, stacked_bins
    from augtool.data import build_meta, prepare_output, write_json, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.methods.invmix.config import resolve_scoring

    started = time.time()
    settings = make_config(ctx, IntrusionConfig, config)
    check_plot_path(plot, html=False)
    check_input_file(file)
    prepare_output(output, overwrite=overwrite, inputs=[file])
    templates = {
        "match_template": settings.match_template(),
        "label_template": settings.label_template(),
    }
    records, _ = read_input(file, text_field=settings.text_field)
    every = mixed_rows(records)
    rows = sample_rows(every, settings.sample, settings.seed)
    parents = sorted({label for m in every for label in m.parents})
    if settings.labels:
        label_set = load_label_set(settings.labels)
        label_set.require(parents, settings.labels)
    else:
        label_set = label_set_from(parents, str(file))
    llm = load_llm(settings.judge, **settings.backend_options())
    scoring = resolve_scoring(settings.scoring, llm, "scoring")
    llm.check()
    try:
        with progress_reporter() as reporter:
            reporter.task("judging", len(rows))
            results = judge(
                rows,
                llm,
                label_set,
                scoring=scoring,
                max_new_tokens=settings.max_new_tokens,
                **templates,
            )
    finally:
        llm.close()
    summary = summarise(results, settings.bins)
    write_json(
        output,
        {
            "judge": settings.judge,
            "scoring": scoring,
            "sample": {"rows": len(every), "judged": len(rows), "seed": settings.seed},
            "prompts": {name: t.describe() for name, t in templates.items()},
            **summary,
            "rows": results,
        },
    )
    if plot is not None:
        stacked_bins(
            summary["bins"],
            VERDICTS,
            plot,
            title="Manifold intrusion by mixing ratio",
            xlabel="max(lambda, 1 - lambda): the dominant parent's weight",
        )
    write_meta(
        output,
        build_meta(
            "invmix intrusion",
            config=settings,
            inputs=[file],
            counts={**summary["counts"], "rows": len(every), "judged": len(rows)},
            started=started,
            models={"judge": llm.identity()},
        ),
    )
    table = Table(title=f"manifold intrusion, {summary['n']} of {len(every)} rows")
    for column in ("verdict", "rows", "share"):
        table.add_column(column)
    for name in VERDICTS:
        table.add_row(
            name, str(summary["counts"][name]), f"{100 * summary['proportions'][name]:.1f}%"
        )
    console.print(table)
    say(f"wrote {output}")
