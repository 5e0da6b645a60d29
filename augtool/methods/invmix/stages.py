"""inversedMixup stages 1 and 2: align the adaptor, then refine encoder and adaptor.

Stage 1 (``train-adaptor``): on unlabeled text, only the adaptor phi trains; the task
encoder theta and the LM psi are frozen (Eq. 3). Stage 2 (``refine``): on the labelled
task data, rounds of (a) task-model training with cross-entropy, updating theta (Eq. 6;
the task model of ``augtool train``, fine-tuning the encoder; from round 2 on it
continues from the previous round's encoder and head), then (b) adaptor training with
the updated encoder, updating phi (Eq. 7). The output keeps theta* as a normal task-model
folder (``task_model/``), which ``augtool train --init-from`` continues from (Eq. 12).
Both resume: stage 1 from its step checkpoints, stage 2 from its finished
rounds and the current round's adaptor checkpoint.

Under ``accelerate launch`` every process runs the stage, sharing each optimizer step's
rows (:mod:`augtool.core.distributed`); rank 0 alone writes and reports.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augtool.core.distributed import DataParallel, data_parallel
from augtool.core.inversion.model import (
    INVERSION_FILE,
    TASK_MODEL_DIR,
    InversionModel,
    encoder_info_of,
)
from augtool.core.inversion.train import train_adaptor
from augtool.core.pretrained import RUNTIME_ONLY, lm_load_options
from augtool.core.progress import SILENT, Reporter
from augtool.data.provenance import config_dict, run_key
from augtool.data.records import Record
from augtool.data.writer import announce_stale, check_output_folder, key_state, publish_folder
from augtool.errors import AugtoolError, OptionError
from augtool.methods.invmix.config import AdaptorConfig, RefineConfig


@dataclass
class StageResult:
    model: InversionModel
    output: Path
    history: list[dict[str, Any]]


def _ranks(config: AdaptorConfig | RefineConfig) -> DataParallel:
    """The launch's ranks; a device map (one LM over several GPUs) needs one process."""
    dp = data_parallel(config.device)
    if dp.active and getattr(config, "device_map", None):
        raise OptionError(
            "device_map",
            "spreads one LM over the GPUs and cannot run under several processes "
            "(accelerate launch); leave it out, or launch one process",
        )
    return dp


def _texts(records: list[Record], limit: int | None = None) -> list[str]:
    texts = [r.text for r in records if r.text]
    texts = texts[:limit] if limit else texts
    if not texts:
        raise AugtoolError("the corpus has no text to train on")
    return texts


def run_train_adaptor(
    records: list[Record],
    config: AdaptorConfig,
    output: str | Path,
    *,
    overwrite: bool = False,
    reporter: Reporter = SILENT,
    on_step: Callable[[int, float], None] | None = None,
) -> StageResult:
    """Stage 1: train a fresh adaptor on unlabeled texts; writes an inversion model folder."""
    output = check_output_folder(
        output, overwrite=overwrite, marker=INVERSION_FILE, kind="invmix model"
    )
    staging = output.with_name(output.name + ".partial")
    texts = _texts(records, config.max_samples)
    dp = _ranks(config)
    if not dp.main:
        reporter = SILENT  # rank 0 reports
    model = InversionModel.create(
        config.encoder,
        config.llm,
        soft_tokens=config.soft_tokens,
        adaptor_hidden=config.adaptor_hidden,
        adaptor_norm=config.adaptor_norm,
        max_target_tokens=config.max_target_tokens,
        device=dp.device_for(config.device),
        dtype=config.dtype,
        gradient_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        **lm_load_options(config),
    )
    advance = reporter.task("embedding corpus", len(texts))
    with dp.main_first():  # rank 0 fills the embedding cache, the others read it
        embeddings = model.embed(texts, progress=advance)
    identity = {
        k: v
        for k, v in config_dict(config).items()
        if k not in (*RUNTIME_ONLY, "save_every", "gradient_checkpointing", "max_minutes")
    }
    key = run_key(
        "invmix-adaptor",
        settings=identity,
        corpus=texts,
        llm=model.llm_info.get("content", model.llm_info["fingerprint"]),
        encoder=model.encoder.fingerprint,
    )
    staging.mkdir(parents=True, exist_ok=True)
    progress = train_adaptor(
        model,
        texts,
        embeddings,
        epochs=config.epochs,
        lr=config.lr,
        batch_size=config.batch_size,
        seed=config.seed,
        checkpoint_dir=staging / "checkpoint",
        run_key=key,
        save_every=config.save_every,
        reporter=reporter,
        on_step=on_step,
        max_minutes=config.max_minutes,
        grad_accum=config.grad_accum,
    )
    if dp.main:
        model.save(staging)
        _write_history(staging, progress["history"])
        shutil.rmtree(staging / "checkpoint", ignore_errors=True)
        publish_folder(staging, output)
    dp.barrier()
    return StageResult(model, output, progress["history"])


def _write_history(folder: Path, history: list[dict[str, Any]]) -> None:
    with (folder / "train_log.jsonl").open("w", encoding="utf-8") as handle:
        for row in history:
            handle.write(json.dumps(row) + "\n")


def run_refine(
    records: list[Record],
    config: RefineConfig,
    adaptor_dir: str | Path,
    output: str | Path,
    *,
    overwrite: bool = False,
    reporter: Reporter = SILENT,
) -> StageResult:
    """Stage 2: ``rounds`` of task-model CE (theta) then adaptor GEN (phi) on labelled data."""
    from augtool.core.encoders import load_encoder
    from augtool.core.taskmodel.config import TrainConfig
    from augtool.core.taskmodel.train import train_task_model

    output = check_output_folder(
        output, overwrite=overwrite, marker=INVERSION_FILE, kind="invmix model"
    )
    staging = output.with_name(output.name + ".partial")
    dp = _ranks(config)
    if not dp.main:
        reporter = SILENT  # rank 0 reports
    model = InversionModel.load(
        adaptor_dir,
        device=dp.device_for(config.device),
        dtype=config.dtype,
        encoder_spec=config.encoder,
        gradient_checkpointing=config.gradient_checkpointing,
        **lm_load_options(config),
    )
    texts = _texts(records)
    identity = {
        k: v
        for k, v in config_dict(config).items()
        if k not in (*RUNTIME_ONLY, "save_every", "gradient_checkpointing", "max_minutes")
    }
    key = run_key(
        "invmix-refine",
        settings=identity,
        data=[(r.id, r.text, r.label) for r in records],
        llm=model.llm_info.get("content", model.llm_info["fingerprint"]),
        encoder=model.encoder.fingerprint,
    )
    state_path = staging / "rounds.json"
    state = _load_state(state_path, key)
    if state is None:
        if dp.main:
            announce_stale(staging, state_path, key)
            shutil.rmtree(staging, ignore_errors=True)
        state = {**key_state(key), "done": 0, "history": []}
    if dp.main:
        staging.mkdir(parents=True, exist_ok=True)
    dp.barrier()
    encoder_path = model.encoder.source
    previous: str | None = None  # the last round's task model: theta continues from it
    if state["done"]:
        from safetensors.torch import load_model

        from augtool.core.model_errors import model_load_errors

        last = staging / f"round-{state['done']}"
        weights = last / "adaptor.safetensors"
        with (
            model_load_errors(staging, "checkpoint", hint="delete it to start over"),
            model_load_errors(weights, "weights"),
        ):
            load_model(model.adaptor, str(weights), device=str(model.lm.device))
        previous = str(last / TASK_MODEL_DIR)
        reporter.log(f"resuming refinement after round {state['done']} of {config.rounds}")

    labels: list[str] = []
    for round_number in range(state["done"] + 1, config.rounds + 1):
        round_dir = staging / f"round-{round_number}"
        reporter.log(f"round {round_number}/{config.rounds}: task model (theta)")
        task_config = TrainConfig(
            encoder=encoder_path,
            init_from=previous,
            epochs=config.task_epochs,
            lr=config.task_lr,
            batch_size=config.task_batch_size,
            grad_accum=config.grad_accum,
            seed=config.seed + round_number,
            device=config.device,
        )
        trained = train_task_model(
            records, task_config, round_dir / TASK_MODEL_DIR, overwrite=True, reporter=reporter
        )
        labels = trained.model.labels
        del trained
        previous = str(round_dir / TASK_MODEL_DIR)
        reporter.log(f"round {round_number}/{config.rounds}: adaptor (phi)")
        model.encoder = load_encoder(
            str(round_dir / TASK_MODEL_DIR / "encoder"),
            device=str(model.lm.device),
            dtype="float32",
        )
        model.encoder.load()
        with dp.main_first():
            embeddings = model.embed(texts)
        progress = train_adaptor(
            model,
            texts,
            embeddings,
            epochs=config.adaptor_epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            seed=config.seed + round_number,
            checkpoint_dir=round_dir / "adaptor-checkpoint",
            run_key=f"{key}:{round_number}",
            save_every=config.save_every,
            reporter=reporter,
            grad_accum=config.grad_accum,
        )
        from safetensors.torch import save_model

        state["history"].append({"round": round_number, "adaptor": progress["history"]})
        state["done"] = round_number
        if dp.main:
            save_model(model.adaptor, str(round_dir / "adaptor.safetensors"))
            state_path.write_text(json.dumps(state), encoding="utf-8")

    if not dp.main:  # rank 0 assembles and publishes the output
        dp.barrier()
        return StageResult(model, output, state["history"])

    final = staging / f"round-{config.rounds}"
    shutil.rmtree(staging / TASK_MODEL_DIR, ignore_errors=True)
    shutil.move(str(final / TASK_MODEL_DIR), str(staging / TASK_MODEL_DIR))
    if not labels:
        labels = json.loads(
            (staging / TASK_MODEL_DIR / "augtool_model.json").read_text(encoding="utf-8")
        )["labels"]
    model.encoder = load_encoder(
        str(staging / TASK_MODEL_DIR / "encoder"), device=str(model.lm.device), dtype="float32"
    )
    model.encoder.load()
    model.encoder_info = encoder_info_of(model.encoder)
    model.labels = labels
    model.stage = "refined"
    model.save(staging, task_model_dir=TASK_MODEL_DIR)
    _write_history(staging, state["history"])
    for folder in staging.glob("round-*"):
        shutil.rmtree(folder, ignore_errors=True)
    state_path.unlink(missing_ok=True)
    publish_folder(staging, output)
    dp.barrier()
    return StageResult(model, output, state["history"])


def _load_state(path: Path, key: str) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if state.get("run_key") == key else None
