"""An inversion model: sentence encoder + adaptor + frozen causal LM, saved as a folder.

::

    inversion.json        encoder and LLM references (with fingerprints), adaptor shape,
                          prompt template, stage, labels (after refinement)
    adaptor.safetensors   the adaptor's weights
    task_model/           after `invmix refine`: the refined task model (its encoder/ is
                          the encoder of this inversion model)
    meta.json             provenance

The frozen LM is referenced, not copied. Loading checks that the encoder still has the
weights the adaptor was trained for, and that its dimension matches the adaptor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augtool.core.encoders import TorchEncoder, load_encoder
from augtool.core.inversion.adaptor import Adaptor
from augtool.core.inversion.soft_prompt import DEFAULT_TEMPLATE, PromptTemplate, SoftPromptLM
from augtool.core.model_errors import model_load_errors
from augtool.errors import ModelError, OptionError

INVERSION_FILE = "inversion.json"
ADAPTOR_FILE = "adaptor.safetensors"
TASK_MODEL_DIR = "task_model"
FORMAT_VERSION = 1


def hf_model_name(spec: str) -> str:
    """The model of an ``hf:`` spec; other LLM schemes cannot take soft prompts."""
    scheme, sep, rest = spec.partition(":")
    if sep and scheme in ("hf", "transformers"):
        return rest
    if sep and scheme == "openai":
        raise OptionError(
            "llm",
            "invmix needs a local model (hf:<id or folder>): soft prompts "
            "go in as inputs_embeds, which an HTTP API cannot take",
        )
    if sep and not Path(spec).exists():
        raise OptionError("llm", f"unknown LLM backend {scheme!r} for invmix (use hf:)")
    return spec


def load_causal_lm(
    spec: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    gradient_checkpointing: bool = False,
    device_map: str | None = None,
    load_in_4bit: bool = False,
) -> tuple[Any, Any, str, dict[str, Any]]:
    """``(model, tokenizer, input device, info)`` for an ``hf:`` spec, frozen, in eval
    mode, loaded in its dtype straight onto its device(s) (:mod:`augtool.core.pretrained`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from augtool.core.hub import (
        light_fingerprint,
        loading,
        model_key,
        quiet_transformers,
        resolve_model_source,
    )
    from augtool.core.pretrained import input_device, load_pretrained, plan_load

    name = hf_model_name(spec)
    if Path(name).expanduser().is_dir():
        # A local folder is recorded by its absolute path, so a model folder saved with it
        # (an adaptor, a refined model) loads from any working directory.
        name = str(Path(name).expanduser().resolve())
    quiet_transformers()
    source = resolve_model_source(name, "LLM")
    plan = plan_load(device, dtype, device_map=device_map, load_in_4bit=load_in_4bit)
    with loading("LLM", name):
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = load_pretrained(AutoModelForCausalLM, source, plan)
    model.requires_grad_(False)
    if gradient_checkpointing:
        enable_checkpointing(model)
    resolved_device = input_device(model)
    info = {
        "spec": f"hf:{name}",
        "source": source,
        "fingerprint": light_fingerprint(source),
        "content": model_key(source),
        "hidden_size": int(model.get_input_embeddings().embedding_dim),
    }
    return model, tokenizer, resolved_device, info


def enable_checkpointing(model: Any) -> None:
    """Gradient checkpointing that really recomputes on a frozen LM.

    HF layers checkpoint only in training mode, and a frozen LM sits in eval mode, so the
    flag alone does nothing. Dropout is switched off here (the LM is frozen: training mode
    must not change its outputs) and :class:`SoftPromptLM` runs the training forward in
    training mode; checkpointing is non-reentrant, so gradients reach the soft prompt
    through recomputed activations.
    """
    from torch import nn

    options = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5.x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for name in ("attention_dropout", "dropout", "hidden_dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)
    config = model.config
    for name in ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "embd_pdrop"):
        if isinstance(getattr(config, name, None), float):
            setattr(config, name, 0.0)


def is_checkpointing(model: Any) -> bool:
    """Whether gradient (activation) checkpointing is on, under either transformers name."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name):
            return bool(getattr(model, name))
    return False


@dataclass
class InversionModel:
    """Everything needed to embed texts and invert embeddings back to text."""

    encoder: TorchEncoder
    adaptor: Adaptor
    lm: SoftPromptLM
    llm_info: dict[str, Any]
    encoder_info: dict[str, Any]
    labels: list[str] = field(default_factory=list)
    stage: str = "adaptor"

    @classmethod
    def create(
        cls,
        encoder_spec: str,
        llm_spec: str,
        *,
        soft_tokens: int = 1,
        adaptor_hidden: int = 0,
        adaptor_norm: bool = True,
        max_target_tokens: int = 64,
        device: str = "auto",
        dtype: str = "auto",
        gradient_checkpointing: bool = False,
        device_map: str | None = None,
        load_in_4bit: bool = False,
        template: PromptTemplate = DEFAULT_TEMPLATE,
        seed: int = 0,
    ) -> InversionModel:
        """A fresh (untrained) adaptor between an encoder and an LLM."""
        model, tokenizer, resolved, llm_info = load_causal_lm(
            llm_spec,
            device=device,
            dtype=dtype,
            gradient_checkpointing=gradient_checkpointing,
            device_map=device_map,
            load_in_4bit=load_in_4bit,
        )
        encoder = load_encoder(encoder_spec, device=resolved, dtype="float32")
        if not isinstance(encoder, TorchEncoder):  # pragma: no cover - registry guard
            raise ModelError(f"encoder {encoder_spec!r} cannot be used for inversion")
        encoder.load()
        torch.manual_seed(seed)
        adaptor = Adaptor(
            encoder.dimension, llm_info["hidden_size"], soft_tokens, adaptor_hidden, adaptor_norm
        ).to(resolved)
        lm = SoftPromptLM(model, tokenizer, template, max_target_tokens=max_target_tokens)
        return cls(encoder, adaptor, lm, llm_info, encoder_info_of(encoder))

    def embed(self, texts: list[str], progress: Any = None) -> np.ndarray:
        """Sentence embeddings (through the embedding cache)."""
        return self.encoder.encode(texts, progress=progress)

    def invert(
        self,
        embeddings: np.ndarray,
        *,
        batch_size: int = 32,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seeds: list[int] | None = None,
        progress: Any = None,
        no_repeat_ngram_size: int = 0,
    ) -> list[str]:
        """Texts for sentence embeddings (greedy, or sampled with one seed per row);
        ``no_repeat_ngram_size`` > 0 forbids repeating an n-gram of that size."""
        seeds = seeds or [0] * len(embeddings)
        texts: list[str] = []
        self.adaptor.eval()
        for start in range(0, len(embeddings), batch_size):
            chunk = torch.as_tensor(
                embeddings[start : start + batch_size], dtype=torch.float32, device=self.lm.device
            )
            with torch.inference_mode():
                soft = self.adaptor(chunk)
            texts.extend(
                self.lm.generate(
                    soft,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    top_p=top_p,
                    seeds=seeds[start : start + batch_size],
                    no_repeat_ngram_size=no_repeat_ngram_size,
                )
            )
            if progress is not None:
                progress(len(chunk))
        return texts

    def save(self, folder: str | Path, *, task_model_dir: str | None = None) -> None:
        """Write adaptor weights and ``inversion.json`` (the LM is referenced, not copied)."""
        from safetensors.torch import save_model

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_model(self.adaptor, str(folder / ADAPTOR_FILE))
        info = {
            "format": FORMAT_VERSION,
            "stage": self.stage,
            "encoder": {
                **self.encoder_info,
                **({"path": f"{task_model_dir}/encoder"} if task_model_dir else {}),
            },
            "llm": self.llm_info,
            "adaptor": self.adaptor.shape(),
            "prompt": {"prefix": self.lm.template.prefix, "suffix": self.lm.template.suffix},
            "max_target_tokens": self.lm.max_target_tokens,
            "labels": self.labels,
            "task_model": task_model_dir,
        }
        (folder / INVERSION_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        encoder_spec: str | None = None,
        llm_spec: str | None = None,
        gradient_checkpointing: bool = False,
        device_map: str | None = None,
        load_in_4bit: bool = False,
    ) -> InversionModel:
        """Load a folder written by :meth:`save`; ``encoder_spec`` swaps in another encoder
        of the same dimension, ``llm_spec`` another path to the same LM."""
        from safetensors.torch import load_model

        folder = Path(folder)
        path = folder / INVERSION_FILE
        if not folder.is_dir():
            raise ModelError(f"inversion model {str(folder)!r}: no such folder")
        if not path.is_file():
            raise ModelError(
                f"{folder}: not an invmix model folder (no {INVERSION_FILE}; "
                "make one with `augtool invmix train-adaptor`)"
            )
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            shape = info["adaptor"]
        except (ValueError, KeyError) as exc:
            raise ModelError(f"{path}: unreadable ({exc})") from exc
        with model_load_errors(folder):
            model, tokenizer, resolved, llm_info = load_causal_lm(
                llm_spec or info["llm"]["spec"],
                device=device,
                dtype=dtype,
                gradient_checkpointing=gradient_checkpointing,
                device_map=device_map,
                load_in_4bit=load_in_4bit,
            )
            if llm_info["hidden_size"] != shape["llm_dim"]:
                raise ModelError(
                    f"{folder}: the adaptor writes {shape['llm_dim']}-dim soft tokens but "
                    f"LLM {llm_info['spec']} takes {llm_info['hidden_size']}-dim inputs"
                )
            if llm_spec is None and llm_info["fingerprint"] != info["llm"].get("fingerprint"):
                raise ModelError(
                    f"{folder}: LLM {info['llm']['spec']} now resolves to other weights "
                    "than the adaptor was trained with"
                )
            saved = info["encoder"]
            spec = encoder_spec or (
                str(folder / saved["path"]) if saved.get("path") else saved["name"]
            )
            encoder = load_encoder(
                spec,
                backend=saved.get("backend", "auto") if not encoder_spec else "auto",
                device=resolved,
                dtype="float32",
                max_length=saved.get("max_length"),
            )
            if not isinstance(encoder, TorchEncoder):  # pragma: no cover
                raise ModelError(f"encoder {spec!r} cannot be used for inversion")
            encoder.load()
            if encoder.dimension != shape["encoder_dim"]:
                raise ModelError(
                    f"encoder {spec!r} gives {encoder.dimension}-dim embeddings but the "
                    f"adaptor in {folder} expects {shape['encoder_dim']}"
                )
            if encoder_spec is None and encoder.fingerprint != saved.get("fingerprint"):
                raise ModelError(
                    f"{folder}: encoder {spec!r} now resolves to other weights than the "
                    "adaptor was trained with (fingerprint mismatch)"
                )
            adaptor = Adaptor(
                shape["encoder_dim"],
                shape["llm_dim"],
                shape["soft_tokens"],
                shape["hidden"],
                bool(shape.get("norm", True)),  # adaptors saved before the option had it
            ).to(resolved)
            with model_load_errors(folder / ADAPTOR_FILE, "weights"):
                load_model(adaptor, str(folder / ADAPTOR_FILE), device=str(resolved))
            prompt = info.get("prompt", {})
            template = PromptTemplate(
                prompt.get("prefix", PromptTemplate.prefix),
                prompt.get("suffix", PromptTemplate.suffix),
            )
            lm = SoftPromptLM(
                model, tokenizer, template, max_target_tokens=int(info.get("max_target_tokens", 64))
            )
        return cls(
            encoder,
            adaptor,
            lm,
            llm_info,
            encoder_info_of(encoder),
            labels=list(info.get("labels") or []),
            stage=info.get("stage", "adaptor"),
        )


def encoder_info_of(encoder: TorchEncoder) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": encoder.name,
        "backend": encoder.backend,
        "fingerprint": encoder.fingerprint,
        "dimension": encoder.dimension,
        "max_length": encoder.max_length,
    }
    pooling = getattr(encoder, "pooling", None)
    if pooling:
        info["pooling"] = pooling
    if getattr(encoder, "prefix", ""):
        info["prefix"] = encoder.prefix
    return info
