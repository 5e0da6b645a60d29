"""``augtool pinr``: PInR text condensation (decoder training, condensation and its
baselines, distribution metrics)."""

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
from augtool.core.distributed import is_main_process
from augtool.methods.pinr.config import CondenseConfig, EvaluateConfig, PinrDecoderConfig
from augtool.methods.pinr.qa import SEP, QAFields

app = typer.Typer(
    help="PInR: condense a dataset to M synthetic rows (Stein particles under a GMM score, "
    "an embedding-to-text decoder, LLM refinement); baselines and distribution metrics.",
    no_args_is_help=True,
)

InputArg = Annotated[
    Path,
    typer.Argument(help=DATASET_HELP),
]


def _read_rows(
    file: Path,
    *,
    text_field: str,
    label_field: str,
    qa: QAFields | None,
    require_label: bool,
    skip_invalid: bool,
) -> tuple[list[Any], list[Any], list[str]]:
    """Rows, rejects, and the text each row is embedded as (``question [SEP] answer``
    for Q&A rows)."""
    if qa is None:
        records, rejects = read_input(
            file,
            text_field=text_field,
            label_field=label_field,
            require_label=require_label,
            skip_invalid=skip_invalid,
        )
        return records, rejects, [r.text or "" for r in records]
    from augtool.errors import OptionError
    from augtool.methods.pinr.qa import qa_text, read_qa

    rejects: list[Any] | None = [] if skip_invalid else None
    records = read_qa(file, qa, label_field=label_field, rejects=rejects)
    unlabelled = next((r for r in records if r.label is None), None)
    if require_label and unlabelled is not None:
        raise OptionError(
            "class_wise",
            f'{file}: row "{unlabelled.id}" has no "{label_field}"; Q&A data such as GSM8K '
            "is condensed as one group with --no-class-wise",
        )
    return records, rejects or [], [qa_text(r, qa) for r in records]


def _index_rows(file: Path, settings: Any, *, skip_invalid: bool) -> tuple[Any, list[Any]]:
    """The rows to train on, validated as :func:`_read_rows` does (duplicate ids included)
    but kept as byte offsets (:class:`~augtool.data.corpus.CorpusIndex`), and the rejects.
    Texts are read back from disk a batch at a time, so memory stays flat in the file size."""
    from augtool.data.corpus import index_corpus
    from augtool.data.jsonl import RecordSpec
    from augtool.data.records import FieldMap
    from augtool.methods.pinr.qa import index_qa

    rejects: list[Any] | None = [] if skip_invalid else None
    qa = _qa(settings)
    if qa is not None:
        index = index_qa(file, qa, rejects=rejects)
    else:
        spec = RecordSpec(fields=FieldMap(text=settings.text_field, label="label"))
        index = index_corpus(file, spec=spec, rejects=rejects, unique_ids=True)
    return index, rejects or []


def _qa(settings: Any) -> QAFields | None:
    if settings.question_field is None:
        return None
    return QAFields(settings.question_field, settings.answer_field)


@app.command("train-decoder")
@handle_errors
@config_options(PinrDecoderConfig)
def train_decoder(
    ctx: typer.Context,
    file: InputArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Decoder folder to write.")],
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Train an embedding-to-text decoder (vec2text-style, encoder frozen); resumable.
    Its generator is warm-started from the encoder's own BERT weights unless --seq2seq
    names a T5-style model. Q&A rows (--question-field/--answer-field) train it on
    'question [SEP] answer'."""
    from dataclasses import replace

    from augtool.core.inversion.decoder_train import train_decoder as run
    from augtool.data import build_meta, write_meta
    from augtool.methods.pinr.prompting import resolve_prefix

    started = time.time()
    settings = make_config(ctx, PinrDecoderConfig, config)
    prefix = resolve_prefix(settings.prefix)
    settings = replace(settings, prefix=prefix.text if prefix else "")
    texts, rejects = _index_rows(file, settings, skip_invalid=skip_invalid)
    if settings.max_samples:
        texts = texts.head(settings.max_samples)
    with progress_reporter() as reporter:
        result = run(texts, settings, output, overwrite=overwrite, reporter=reporter)
    if not is_main_process():  # under `accelerate launch`, rank 0 writes meta and says so
        return
    write_meta(
        output,
        build_meta(
            "pinr train-decoder",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            counts={"texts": len(texts)},
            extra={
                "history": result.history,
                "training_seconds": result.seconds,
                "prefix": prefix.describe() if prefix else None,
                "qa": settings.question_field is not None,
                "init_from_encoder": result.decoder.init_from_encoder,
            },
        ),
    )
    report_rejects(output, rejects)
    last = result.history[-1].get("loss") if result.history else None
    start = "warm-started from the encoder" if settings.warm_start else settings.seq2seq
    say(f"saved the decoder ({start}) to {output}" + (f" (final loss {last:.4f})" if last else ""))


def _decoder_meta(decoder: Path) -> dict[str, Any]:
    try:
        return json.loads((decoder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _previous_attempts(output: Path) -> dict[str, int]:
    """Particles that failed in the interrupted run being resumed, with their next attempt."""
    from augtool.data.writer import sidecar

    path = sidecar(output, ".failed.jsonl")
    attempts: dict[str, int] = {}
    if not path.is_file():
        return attempts
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            attempts[str(row["id"])] = int(row.get("attempt", 0)) + 1
        except (ValueError, KeyError, TypeError):
            continue
    return attempts


@app.command("condense")
@handle_errors
@config_options(CondenseConfig)
def condense(
    ctx: typer.Context,
    file: InputArg,
    output: OutputOpt,
    decoder: Annotated[
        Path | None,
        typer.Option("--decoder", help="A train-decoder folder (pinr and dallme need one)."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also write a 2D map (PCA) of the original and the condensed rows in the "
            "encoder's space; the format follows the suffix: .png, .jpg, .svg, .pdf or "
            ".html (interactive, needs plotly).",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Condense FILE to --m rows (PInR, or the random / dallme / mgd3 / aug-pe baselines);
    resumable."""
    from augtool.core.encoders import load_encoder
    from augtool.core.generation import RequestBudget, RequestBudgetExhausted, load_llm
    from augtool.core.generation.jobs import write_failures
    from augtool.core.generation.labels import load_label_set
    from augtool.core.inversion.decoder import EmbeddingDecoder, read_decoder_info
    from augtool.core.plotting import check_plot_path
    from augtool.data import FieldMap, JsonlWriter, build_meta, prepare_output, run_key, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.data.provenance import config_dict, file_fingerprint
    from augtool.data.writer import sidecar
    from augtool.errors import OptionError
    from augtool.methods.pinr.condense import (
        augpe_rows,
        decode_and_refine,
        mode_rows,
        particle_targets,
        plan,
        random_rows,
    )
    from augtool.methods.pinr.config import DECODING_METHODS
    from augtool.methods.pinr.prompting import Prefix, prefix_named, refine_template, resolve_prefix
    from augtool.methods.pinr.refine import refine

    started = time.time()
    settings = make_config(ctx, CondenseConfig, config)
    check_plot_path(plot)
    check_input_file(file)
    qa = _qa(settings)
    decoding = settings.method in DECODING_METHODS
    if decoding and decoder is None:
        raise OptionError("decoder", f"--method {settings.method} needs a trained decoder")
    if settings.method == "aug-pe" and not settings.refine_llm:
        raise OptionError(
            "refine_llm",
            "--method aug-pe needs the LLM API that writes and varies its samples "
            "(hf:<model> or openai:<model>)",
        )
    template = None
    if decoding or settings.prompt_file:  # prompt files are checked before anything loads
        template = refine_template(settings.dataset_prompt, settings.prompt_file, qa=qa is not None)
    label_set = load_label_set(settings.labels) if settings.labels else None
    prefix = resolve_prefix(settings.prefix)
    if prefix is None and decoder is not None:  # the prefix the decoder was trained with
        prefix = prefix_named(str(read_decoder_info(decoder)["encoder"].get("prefix", "")))
    prefix = prefix or Prefix("")
    prepare_output(output, overwrite=overwrite, inputs=[file])
    records, rejects, texts = _read_rows(
        file,
        text_field=settings.text_field,
        label_field=settings.label_field,
        qa=qa,
        require_label=settings.class_wise,
        skip_invalid=skip_invalid,
    )
    if label_set is not None and settings.class_wise:
        label_set.require([r.label for r in records], str(file))
    shares = plan(records, settings)  # checks --m before anything expensive
    label_texts = {
        label: (label_set.text_of(label) if label_set and label else label) for label in shares
    }
    descriptions = {
        label: (label_set.description(label) if label_set and label else "") for label in shares
    }
    fields = FieldMap(text=qa.question if qa else settings.text_field, label=settings.label_field)
    identity = {
        k: v
        for k, v in config_dict(settings).items()
        if k not in ("max_requests", "concurrency", "batch_size", "decode_batch_size")
    }
    from augtool.core.hub import model_key

    key = run_key(
        "pinr condense",
        settings=identity,
        input=file_fingerprint(file),
        decoder=model_key(decoder) if decoder else None,
        prompt=template.user if template else None,
        labels=file_fingerprint(settings.labels) if settings.labels else None,
    )
    counts: dict[str, object] = {"rows_in": len(records), "m": settings.m, "per_label": shares}
    models: dict[str, object] = {}
    extra: dict[str, object] = {
        "prefix": prefix.describe() if prefix.text else None,
        "qa": {"question": qa.question, "answer": qa.answer, "separator": SEP} if qa else None,
    }
    failed: list[dict[str, Any]] = []
    what = "particles"

    def embed(encoder: Any, reporter: Any) -> Any:
        advance = reporter.task("embedding", len(texts))
        return encoder.encode(texts, progress=advance)

    encoder: Any = None
    embeddings: Any = None
    if settings.method in ("random", "mgd3"):
        if settings.method == "random":
            rows = random_rows(records, settings)
        else:
            encoder = load_encoder(settings.encoder, device=settings.device, prefix=prefix.text)
            with progress_reporter() as reporter:
                embeddings = embed(encoder, reporter)
            rows = mode_rows(records, embeddings, settings)
            models = {"encoder": encoder.describe()}
        writer = JsonlWriter(output, run_key=key, fields=fields, overwrite=overwrite)
        with writer:
            writer.write(rows)
            writer.commit()
        counts["written"] = len(rows)
    else:
        encoder = load_encoder(settings.encoder, device=settings.device, prefix=prefix.text)
        model = None
        if decoding:
            model = EmbeddingDecoder.load(decoder, device=settings.device, encoder=encoder)
            trained_qa = _decoder_meta(decoder).get("config", {}).get("question_field")
            if qa is not None and not trained_qa:
                print_warning(
                    "the decoder was not trained on Q&A rows (train-decoder --question-field): "
                    "it may not write [SEP]"
                )
        llm = None
        if settings.refining or settings.method == "aug-pe":
            llm = load_llm(str(settings.refine_llm), **settings.backend_options())
            llm.check()  # an unreachable server fails here, before any work
        elif settings.refine and settings.method == "pinr" and not settings.refine_llm:
            print_warning("no --refine-llm given: keeping the raw inversions (as --no-refine)")
        budget = RequestBudget(settings.max_requests)
        resuming = sidecar(output, ".partial").exists()
        writer = JsonlWriter(output, run_key=key, fields=fields, overwrite=overwrite)
        attempts = _previous_attempts(output) if resuming and not writer.discarded_partial else {}
        try:
            with writer, progress_reporter() as reporter:
                if writer.resumed:
                    reporter.log(f"resuming: {writer.resumed} rows already written")
                embeddings = embed(encoder, reporter)
                if settings.method == "aug-pe":
                    what = "labels"
                    written, failed, extra["aug_pe"] = augpe_rows(
                        records,
                        embeddings,
                        settings,
                        llm=llm,
                        encoder=encoder,
                        label_texts=label_texts,
                        descriptions=descriptions,
                        write=writer.write,
                        skip=writer.done_ids,
                        qa=qa,
                        budget=budget,
                        reporter=reporter,
                    )
                else:
                    targets, extra["particles"] = particle_targets(
                        records, embeddings, settings, reporter
                    )

                    def decode(vectors):  # noqa: ANN001, ANN202
                        return model.generate(
                            vectors,
                            max_new_tokens=settings.max_decode_tokens,
                            batch_size=settings.decode_batch_size,
                            correction_steps=settings.correction_steps,
                            encoder=encoder,
                        )

                    def refine_chunk(part, decoded):  # noqa: ANN001, ANN202
                        return refine(
                            [t.key for t in part],
                            [t.vector for t in part],
                            decoded,
                            [label_texts.get(t.label) for t in part],
                            llm=llm,
                            encoder=encoder,
                            template=template,
                            params=settings.params(),
                            variants=settings.variants,
                            keep=settings.keep,
                            rounds=settings.rounds,
                            qa=qa is not None,
                            seed=settings.seed,
                            attempts=attempts,
                            budget=budget,
                            reporter=reporter,
                        )

                    written, failed = decode_and_refine(
                        targets,
                        decode,
                        refine_chunk,
                        writer.write,
                        settings,
                        skip=writer.done_ids,
                        qa=qa,
                        reporter=reporter,
                    )
                counts["written"] = writer.resumed + written
                if not failed:
                    writer.commit()
        except RequestBudgetExhausted as exc:
            print_error(f"{exc}; rerun the same command to continue")
            raise typer.Exit(exc.exit_code) from None
        finally:
            if llm is not None:
                llm.close()
        failed_path = write_failures(output, failed)
        if failed:
            print_error(
                f"{len(failed)} {what} got no usable LLM output (see {failed_path}); the "
                f"{counts['written']} rows made are kept: rerun the same command to retry "
                "the others"
            )
            raise typer.Exit(1)
        models = {"encoder": encoder.describe()}
        if decoder is not None:
            models["decoder"] = str(decoder)
        if llm is not None:
            models["refine_llm"] = llm.identity()
        if settings.refining and template is not None:
            extra["prompt"] = template.describe()
        if settings.method == "aug-pe":
            from augtool.methods.pinr.augpe import TEMPLATES

            extra["prompts"] = [t.describe() for t in TEMPLATES[(settings.pe_variation, bool(qa))]]
    if plot is not None:  # after the commit: a plot never costs the rows
        if encoder is None:  # --method random: the encoder the other methods condense in
            encoder = load_encoder(settings.encoder, device=settings.device, prefix=prefix.text)
        with progress_reporter() as reporter:
            extra["plot"] = _condense_map(
                records, texts, embeddings, encoder, output, plot, settings, reporter
            )
    write_meta(
        output,
        build_meta(
            "pinr condense",
            config=settings,
            inputs=[file],
            seed=settings.seed,
            started=started,
            counts=counts,
            models=models,
            extra={**extra, "decoder_folder": str(decoder) if decoder else None},
        ),
    )
    report_rejects(output, rejects)
    split = ", ".join(f"{k or 'all'} {v}" for k, v in shares.items())
    say(f"wrote {counts['written']} condensed rows ({settings.method}; {split}) to {output}")
    if plot is not None:
        say(f"wrote the map of original and condensed rows to {plot}")


def _condense_map(
    records: list[Any],
    texts: list[str],
    embeddings: Any,
    encoder: Any,
    output: Path,
    plot: Path,
    settings: CondenseConfig,
    reporter: Any,
) -> dict[str, Any]:
    """The original rows and every row of ``output`` in the condensing encoder's space
    (Q&A rows embedded as ``question [SEP] answer``, as condensing does)."""
    from augtool.core.plotting import embedding_map

    if embeddings is None:  # --method random computed none
        embeddings = encoder.encode(texts, progress=reporter.task("embedding", len(texts)))
    rows, _, condensed_texts = _read_rows(
        output,
        text_field=settings.text_field,
        label_field=settings.label_field,
        qa=_qa(settings),
        require_label=False,
        skip_invalid=False,
    )
    advance = reporter.task("embedding condensed rows", len(rows))
    condensed = encoder.encode(condensed_texts, progress=advance) if rows else []
    return embedding_map(
        embeddings,
        condensed,
        [r.label for r in records],
        [r.label for r in rows],
        plot,
        title=f"pinr condense --method {settings.method}: {len(records)} rows to {len(rows)}",
        generated_name="condensed",
        original_texts=texts,
        generated_texts=condensed_texts,
        seed=settings.seed,
    )


@app.command("evaluate")
@handle_errors
@config_options(EvaluateConfig)
def evaluate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The condensed JSONL.")],
    reference: Annotated[Path, typer.Option("--reference", help="The original JSONL.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the metrics as JSON here.")
    ] = None,
    as_json: JsonOpt = False,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """FID, KL, TV, Wasserstein, MAUVE, precision/recall/F1 and n-gram leakage."""
    from augtool.core.distribution import distribution_report
    from augtool.core.encoders import load_encoder
    from augtool.core.leakage import leakage
    from augtool.data import build_meta, prepare_output, write_json, write_meta
    from augtool.data.jsonl import check_input_file
    from augtool.methods.pinr.prompting import resolve_prefix

    started = time.time()
    settings = make_config(ctx, EvaluateConfig, config)
    prefix = resolve_prefix(settings.prefix)
    if settings.mauve:
        require_modules("mauve")
    for path in (file, reference):
        check_input_file(path)
    if output is not None:
        prepare_output(output, overwrite=overwrite, inputs=[file, reference])
    rows = {}
    for name, path in (("condensed", file), ("reference", reference)):
        rows[name] = _read_rows(
            path,
            text_field=settings.text_field,
            label_field="label",
            qa=_qa(settings),
            require_label=False,
            skip_invalid=False,
        )
    condensed, _, condensed_texts = rows["condensed"]
    original, _, original_texts = rows["reference"]
    encoder = load_encoder(
        settings.encoder, device=settings.device, prefix=prefix.text if prefix else ""
    )
    with progress_reporter() as reporter:
        advance = reporter.task("embedding", len(condensed) + len(original))
        a = encoder.encode(condensed_texts, progress=advance)
        b = encoder.encode(original_texts, progress=advance)
        reporter.log("computing distribution metrics")
        metrics = distribution_report(
            a,
            b,
            seed=settings.seed,
            mauve_seeds=tuple(range(settings.mauve_seeds)),
            skip_mauve=not settings.mauve,
        )
        leaks = leakage(condensed_texts, original_texts, a, b)
    result = {
        "condensed": str(file),
        "reference": str(reference),
        "encoder": encoder.describe(),
        **metrics,
        "leakage": {k: v for k, v in leaks.items() if k != "details"},
        "leakage_rows": leaks["details"],
    }
    if output is not None:
        write_json(output, result)
        write_meta(
            output,
            build_meta(
                "pinr evaluate",
                config=settings,
                inputs=[file, reference],
                started=started,
                counts={"condensed": len(condensed), "reference": len(original)},
            ),
        )
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{file.name} vs {reference.name} ({len(condensed)} vs {len(original)})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("fid", "kl", "tv", "wasserstein", "precision", "recall", "f1"):
        table.add_row(name, f"{result[name]:.4f}")
    mauve = result.get("mauve")
    if isinstance(mauve, dict):
        table.add_row("mauve", f"{mauve['mean']:.4f} ± {mauve['std']:.4f}")
    for name, value in result["leakage"].items():
        if isinstance(value, (int, float)):
            table.add_row(f"leakage {name}", f"{value:.4f}")
    console.print(table)
    if output is not None:
        say(f"wrote {output}")
