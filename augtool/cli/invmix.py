"""``augtool invmix``: inversedMixup (adaptor alignment, refinement, mixing and inversion,
reconstruction, manifold-intrusion analysis)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from augtool.cli.common import (
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
from augtool.methods.invmix.config import (
    AdaptorConfig,
    IntrusionConfig,
    InvmixGenerateConfig,
    ReconstructConfig,
    RefineConfig,
)

app = typer.Typer(
    help="inversedMixup: readable Mixup. Align an adaptor between a sentence encoder and a "
    "frozen LM (train-adaptor), refine it on task data (refine), then mix and invert "
    "(generate); check it with reconstruct and intrusion.",
    no_args_is_help=True,
)

ModelOpt = Annotated[
    Path, typer.Option("--model", help="An invmix model folder (train-adaptor or refine output).")
]
FolderOut = Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")]
FileOut = Annotated[Path, typer.Option("--output", "-o", help="Output path.")]
InputArg = Annotated[Path, typer.Argument(help="JSONL file.")]


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
    from augtool.core.plotting import reconstruction_map
    from augtool.data import build_meta, prepare_output, write_json, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.writer import atomic_write_text, sidecar
    from augtool.methods.invmix.reconstruct import run_reconstruct

    started = time.time()
    settings = make_config(ctx, ReconstructConfig, config)
    check_input_file(file)
    prepare_output(output, overwrite=overwrite, inputs=[file])
    inverter = InversionModel.load(model, device=settings.device, dtype=settings.dtype)
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
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Stage 3: mix pairs of embeddings (lambda ~ Beta(alpha, alpha)) and invert them to
    sentences with soft (or LLM) labels; resumable."""
    from augtool.core.generation.labels import label_set_from, load_label_set
    from augtool.core.inversion.model import InversionModel
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
    check_input_file(file)
    prepare_output(output, overwrite=overwrite, inputs=[file])
    inverter = InversionModel.load(model, device=settings.device, dtype=settings.dtype)
    known = frozenset(inverter.labels) if inverter.labels else None
    records, rejects = read_input(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        require_label=True,
        known_labels=known,
        skip_invalid=skip_invalid,
    )
    labeller = None
    if settings.labels == "llm":
        label_set = (
            load_label_set(settings.label_descriptions)
            if settings.label_descriptions
            else label_set_from(labels_of(records), str(file))
        )
        labeller = LLMLabeller(_label_llm(settings, inverter), label_set)
    key = run_key(
        "invmix generate",
        config_dict(settings),
        file_fingerprint(file),
        inverter.llm_info["fingerprint"],
        inverter.encoder.fingerprint,
        file_fingerprint(Path(model) / "adaptor.safetensors"),
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
        ),
    )
    report_rejects(output, rejects)
    if summary.unlabelled:
        print_warning(
            f"{summary.unlabelled} rows got no label from the LLM (kept unlabelled, see llm_label)"
        )
    note = f", {summary.duplicates} identical to a parent dropped" if summary.duplicates else ""
    say(f"wrote {counts['written']} mixed rows to {output}{note}")


def _label_llm(settings: InvmixGenerateConfig, inverter: object) -> object:
    """The LLM for --labels llm: the given spec, or the inversion LM itself (hf:, loglik)."""
    from augtool.core.generation import load_llm
    from augtool.core.generation.hf_backend import HFBackend

    if settings.label_llm:
        llm = load_llm(
            settings.label_llm,
            base_url=settings.base_url,
            device=settings.device,
            dtype=settings.dtype,
            batch_size=settings.batch_size,
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
    """Manifold intrusion: an LLM judge labels each mixed row and says Inside/Outside;
    proportions by lambda bin."""
    from augtool.core.generation import ScoringLLM, load_llm
    from augtool.core.generation.labels import label_set_from, load_label_set
    from augtool.core.generation.prompts import (
        AUGTOOL_INTRUSION_LABEL as INTRUSION_JUDGE_LABEL,
    )
    from augtool.core.generation.prompts import (
        AUGTOOL_INTRUSION_MATCH as INTRUSION_JUDGE_REGION,
    )
    from augtool.core.generation.prompts import (
        load_prompt_file,
    )
    from augtool.core.plotting import stacked_bins
    from augtool.data import build_meta, prepare_output, write_json, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.errors import OptionError
    from augtool.methods.invmix.intrusion import (
        LABEL_PLACEHOLDERS,
        REGION_PLACEHOLDERS,
        VERDICTS,
        judge,
        mixed_rows,
        summarise,
    )

    started = time.time()
    settings = make_config(ctx, IntrusionConfig, config)
    check_input_file(file)
    prepare_output(output, overwrite=overwrite, inputs=[file])
    records, _ = read_input(file, text_field=settings.text_field)
    rows = mixed_rows(records)
    names = sorted({label for m in rows for label in (m.label_a, m.label_b)})
    label_set = (
        load_label_set(settings.labels) if settings.labels else label_set_from(names, str(file))
    )
    llm = load_llm(settings.judge, **settings.backend_options())
    scoring = settings.scoring
    if scoring == "auto":
        scoring = "loglik" if isinstance(llm, ScoringLLM) else "parse"
    if scoring == "loglik" and not isinstance(llm, ScoringLLM):
        raise OptionError("scoring", "loglik needs a local judge (hf:)")
    templates = {"label_template": INTRUSION_JUDGE_LABEL, "region_template": INTRUSION_JUDGE_REGION}
    for key, option, path, available in (
        ("label_template", "label_prompt_file", settings.label_prompt_file, LABEL_PLACEHOLDERS),
        ("region_template", "region_prompt_file", settings.region_prompt_file, REGION_PLACEHOLDERS),
    ):
        if path:
            templates[key] = load_prompt_file(
                path, template_id=templates[key].id, available=available, option=option
            )
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
            "prompts": {
                name: {
                    "id": t.id,
                    "source": t.source,
                    "verbatim": t.verbatim,
                    "system": t.system,
                    "user": t.user,
                }
                for name, t in templates.items()
            },
            **summary,
            "rows": results,
        },
    )
    if plot is not None:
        stacked_bins(
            summary["bins"],
            VERDICTS,
            plot,
            title="Manifold intrusion by lambda",
            xlabel="lambda (weight of the first parent)",
        )
    write_meta(
        output,
        build_meta(
            "invmix intrusion",
            config=settings,
            inputs=[file],
            counts=summary["counts"],
            started=started,
            models={"judge": llm.identity()},
        ),
    )
    table = Table(title=f"manifold intrusion, {summary['n']} rows")
    for column in ("verdict", "rows", "share"):
        table.add_column(column)
    for name in VERDICTS:
        table.add_row(
            name, str(summary["counts"][name]), f"{100 * summary['proportions'][name]:.1f}%"
        )
    console.print(table)
    say(f"wrote {output}")
