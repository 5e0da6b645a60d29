"""SFT and GRPO of the LM-mixup model with TRL (``SFTTrainer``, ``GRPOTrainer``).

augtool does not reimplement either algorithm: it turns mixture pairs into TRL datasets,
plugs in its rewards (:mod:`augtool.methods.lmmixup.rewards`) with their weights as
``GRPOConfig.reward_weights``, adds LoRA (peft) by default, and handles what a CLI run
needs around the trainer: a staging folder ``<out>.partial`` whose checkpoints a rerun of
the same job resumes from, rich progress, provenance, and a final folder that loads with
``from_pretrained`` (LoRA merged by default). Multi-GPU runs go through
``accelerate launch -m augtool lmmixup sft ...``; only the main process writes the model.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augtool.core.progress import SILENT, Reporter
from augtool.data.provenance import config_dict, run_key
from augtool.data.writer import announce_stale, key_state
from augtool.errors import OptionError
from augtool.methods.lmmixup.config import GRPOTrainConfig, SFTTrainConfig, TrainingOptions

MODEL_FILE = "augtool_lmmixup.json"
RUN_FILE = "augtool_run.json"
CHECKPOINTS = "checkpoints"
#: Config fields that do not change the trained weights (left out of the resume key).
_NOT_IN_RUN_KEY = (
    "save_steps",
    "logging_steps",
    "merge",
    "vllm_server_url",
    "vllm_server_timeout",
)


@dataclass
class TrainResult:
    """Where the model went, how training went, and whether it resumed."""

    output: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: str | None = None
    steps: int = 0


def resolve_train_model(spec: str) -> str:
    """The folder or hub id to fine-tune: ``hf:<id or path>`` or a local model folder.

    API models (``openai:...``) cannot be trained; other specs are option errors.
    """
    from augtool.core.hub import resolve_model_source

    scheme, sep, rest = spec.partition(":")
    if sep and scheme in ("hf", "transformers"):
        name = rest.strip()
    elif sep and scheme == "openai":
        raise OptionError(
            "model", f"{spec!r}: training needs a local or hub model (hf:<id or path>), not an API"
        )
    elif os.path.isdir(os.path.expanduser(spec)):
        name = spec
    else:
        raise OptionError(
            "model", f"{spec!r}: give hf:<model id or path> (or a local model folder) to train"
        )
    if not name:
        raise OptionError("model", f"{spec!r}: the model name is empty")
    return resolve_model_source(name, "model")


def load_causal_lm(source: str, config: TrainingOptions) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for training, with a padding token set."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from augtool.core.hub import quiet_transformers
    from augtool.core.model_errors import model_load_errors
    from augtool.core.pretrained import load_pretrained, plan_load

    quiet_transformers()
    # In its dtype, straight onto this process's device (its own GPU under accelerate).
    plan = plan_load(config.device, config.dtype)
    with model_load_errors(source, "LLM"):
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = load_pretrained(AutoModelForCausalLM, source, plan)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def token_count(record: dict[str, Any], tokenizer: Any) -> int:
    """Tokens of a prompt-completion record as the trainer will see it."""
    prompt, completion = record["prompt"], record["completion"]
    if isinstance(prompt, list):
        ids = tokenizer.apply_chat_template(prompt + completion, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)
    return len(tokenizer(prompt + completion)["input_ids"])


def lora_config(config: TrainingOptions) -> Any:
    """peft's LoraConfig for a causal LM, or ``None`` for full fine-tuning."""
    if not config.lora:
        return None
    from peft import LoraConfig

    targets = config.lora_targets.strip()
    modules: str | list[str] = (
        targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t]
    )
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=modules,
        task_type="CAUSAL_LM",
    )


def prepare_staging(output: Path, key: str) -> tuple[Path, bool]:
    """``<out>.partial`` for this job, and whether it holds checkpoints to resume from.

    A staging folder left by another job (other key) is discarded.
    """
    staging = output.with_name(output.name + ".partial")
    state = staging / RUN_FILE
    if staging.exists():
        try:
            same = json.loads(state.read_text(encoding="utf-8")).get("run_key") == key
        except (OSError, ValueError):
            same = False
        if not same:
            announce_stale(staging, state, key)
            shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(key_state(key)), encoding="utf-8")
    checkpoints = staging / CHECKPOINTS
    return staging, checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))


def job_key(stage: str, config: TrainingOptions, source: str, rows: list[dict[str, Any]]) -> str:
    from augtool.core.hub import folder_fingerprint

    settings = {k: v for k, v in config_dict(config).items() if k not in _NOT_IN_RUN_KEY}
    weights = folder_fingerprint(Path(source)) if Path(source).is_dir() else source
    return run_key(stage, settings, weights, [row["id"] for row in rows], len(rows))


def progress_callback(reporter: Reporter, description: str, history: list[dict[str, Any]]) -> Any:
    """A TrainerCallback that drives a rich progress task and keeps the logged metrics."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        advance: Callable[[int], None] | None = None

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            self.advance = reporter.task(description, state.max_steps, completed=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if self.advance is not None:
                self.advance(1)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
            if not logs:
                return
            history.append({"step": state.global_step, **logs})
            shown = {
                k: v for k, v in logs.items() if k in ("loss", "reward", "kl", "learning_rate")
            }
            if shown:
                parts = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
                reporter.log(f"step {state.global_step}: {parts}")

    return _Progress()


def quiet_trainer(trainer: Any) -> Any:
    """Drop the trainer's stdout printer (rich progress and ``reporter.log`` replace it)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def quiet_libraries() -> None:
    """Silence ``datasets`` progress bars and the libraries' deprecation chatter."""
    import warnings

    import datasets

    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"trl\..*")


def training_arguments(cls: type, config: TrainingOptions, staging: Path, **extra: Any) -> Any:
    """TRL config (``SFTConfig`` / ``GRPOConfig``) filled from augtool's options."""
    import torch

    from augtool.core.device import resolve_device, resolve_dtype

    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    return cls(
        output_dir=str(staging / CHECKPOINTS),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=config.logging_steps,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=device != "cpu" and dtype == torch.bfloat16,
        fp16=device != "cpu" and dtype == torch.float16,
        **extra,
    )


def finish(
    trainer: Any,
    tokenizer: Any,
    config: TrainingOptions,
    staging: Path,
    output: Path,
    info: dict[str, Any],
) -> None:
    """Save the final model (LoRA merged unless ``--no-merge``) and publish it at ``output``."""
    from augtool.data.writer import publish_folder

    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    merged = config.lora and config.merge
    if merged:
        model = model.merge_and_unload()
    final = staging / "final"
    if final.exists():
        shutil.rmtree(final)
    model.save_pretrained(final, safe_serialization=True)
    tokenizer.save_pretrained(final)
    info = {**info, "lora": config.lora, "merged": merged}
    (final / MODEL_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    publish_folder(final, output)
    shutil.rmtree(staging, ignore_errors=True)


@dataclass
class Job:
    """One training run: its model, tokenizer, staging folder and resume state."""

    model_spec: str
    source: str
    output: Path
    staging: Path
    resume: bool
    model: Any
    tokenizer: Any

    def run(
        self,
        trainer: Any,
        config: TrainingOptions,
        history: list[dict[str, Any]],
        info: dict[str, Any],
        reporter: Reporter,
    ) -> TrainResult:
        """Train (resuming when checkpoints exist), then save and publish the model."""
        quiet_trainer(trainer)
        if self.resume:
            reporter.log(f"resuming from the checkpoints in {self.staging / CHECKPOINTS}")
        trainer.train(resume_from_checkpoint=True if self.resume else None)
        steps = trainer.state.global_step
        info = {**info, "base_model": self.model_spec, "source": self.source, "steps": steps}
        finish(trainer, self.tokenizer, config, self.staging, self.output, info)
        resumed = str(self.staging) if self.resume else None
        return TrainResult(self.output, history, resumed, steps)


def start_job(
    stage: str,
    rows: list[dict[str, Any]],
    config: TrainingOptions,
    model_spec: str,
    output: str | Path,
) -> Job:
    """Resolve the model, open (or resume) the staging folder and load the model."""
    quiet_libraries()
    output = Path(output)
    source = resolve_train_model(model_spec)
    staging, resume = prepare_staging(output, job_key(stage, config, source, rows))
    model, tokenizer = load_causal_lm(source, config)
    return Job(model_spec, source, output, staging, resume, model, tokenizer)


def run_sft(
    rows: list[dict[str, Any]],
    config: SFTTrainConfig,
    model_spec: str,
    output: str | Path,
    *,
    reporter: Reporter = SILENT,
) -> TrainResult:
    """Fine-tune ``model_spec`` on mixture pairs with TRL's SFTTrainer."""
    import trl
    from datasets import Dataset

    from augtool.methods.lmmixup.mixture import sft_records

    job = start_job("lmmixup sft", rows, config, model_spec, output)
    model, tokenizer = job.model, job.tokenizer
    records = sft_records(rows, tokenizer)
    fitting = [r for r in records if token_count(r, tokenizer) <= config.max_length]
    if not fitting:
        raise OptionError(
            "max_length",
            f"every mixture pair is longer than {config.max_length} tokens (prompt + target); "
            "raise --max-length or build smaller groups",
        )
    if len(fitting) < len(records):
        reporter.log(
            f"skipping {len(records) - len(fitting)} of {len(records)} pairs longer than "
            f"--max-length {config.max_length} tokens"
        )
    dataset = Dataset.from_list(fitting)
    history: list[dict[str, Any]] = []
    args = training_arguments(
        trl.SFTConfig,
        config,
        job.staging,
        max_length=config.max_length,
        completion_only_loss=True,
        packing=False,
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=[progress_callback(reporter, "SFT", history)],
    )
    return job.run(trainer, config, history, {"stage": "sft"}, reporter)


def grpo_arguments(config: GRPOTrainConfig, staging: Path, reward_weights: list[float]) -> Any:
    """TRL's ``GRPOConfig`` from augtool's options. ``--use-vllm`` selects TRL's vLLM
    server mode: completions are sampled by a separate ``trl vllm-serve`` process (which
    gets the policy's weights after every step) instead of ``model.generate``."""
    import trl

    from augtool.methods.lmmixup.config import DEFAULT_VLLM_SERVER

    vllm: dict[str, Any] = {}
    if config.use_vllm:
        vllm = {
            "use_vllm": True,
            "vllm_mode": "server",
            "vllm_server_base_url": config.vllm_server_url or DEFAULT_VLLM_SERVER,
            "vllm_server_timeout": config.vllm_server_timeout,
        }
    return training_arguments(
        trl.GRPOConfig,
        config,
        staging,
        num_generations=config.group,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        beta=config.beta,
        reward_weights=reward_weights,
        remove_unused_columns=False,
        **vllm,
    )


def run_grpo(
    rows: list[dict[str, Any]],
    config: GRPOTrainConfig,
    model_spec: str,
    output: str | Path,
    *,
    reward_funcs: list[Callable[..., list[float]]],
    reward_weights: list[float],
    reporter: Reporter = SILENT,
    trainer_hook: Callable[[Any], None] | None = None,
) -> TrainResult:
    """Optimise ``model_spec`` with TRL's GRPOTrainer on the weighted rewards.

    ``reward_funcs`` and ``reward_weights`` (from :func:`rewards.reward_functions`) go to
    TRL unchanged: its reward is ``sum_i w_i * r_i`` per completion, normalised within
    each group of ``config.group`` completions. ``trainer_hook`` sees the trainer before
    training (tests check what TRL received).
    """
    import trl
    from datasets import Dataset

    from augtool.methods.lmmixup.mixture import grpo_records

    job = start_job("lmmixup grpo", rows, config, model_spec, output)
    model, tokenizer = job.model, job.tokenizer
    dataset = Dataset.from_list(grpo_records(rows, tokenizer))
    history: list[dict[str, Any]] = []
    args = grpo_arguments(config, job.staging, reward_weights)
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=[progress_callback(reporter, "GRPO", history)],
    )
    if trainer_hook is not None:
        trainer_hook(trainer)
    names = [getattr(f, "__name__", type(f).__name__) for f in reward_funcs]
    info = {"stage": "grpo", "rewards": dict(zip(names, reward_weights, strict=True))}
    return job.run(trainer, config, history, info, reporter)
