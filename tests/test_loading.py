"""Models load in their dtype, straight onto their device, and checkpointing recomputes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from conftest import write_jsonl

from augtool.core import pretrained
from augtool.core.pretrained import LoadPlan, plan_load, pretrained_kwargs
from augtool.errors import OptionError


@pytest.fixture
def load_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``from_pretrained`` keyword set that :func:`load_pretrained` passes."""
    calls: list[dict[str, Any]] = []
    real = pretrained.load_pretrained

    def spy(auto_class: Any, source: str, plan: LoadPlan, **extra: Any) -> Any:
        calls.append({"class": auto_class.__name__, **pretrained_kwargs(plan)})
        return real(auto_class, source, plan, **extra)

    monkeypatch.setattr(pretrained, "load_pretrained", spy)
    return calls


def test_plan_on_cpu_is_float32_unless_asked() -> None:
    assert plan_load("cpu").dtype == torch.float32
    assert plan_load("cpu", "bfloat16").dtype == torch.bfloat16
    kwargs = pretrained_kwargs(plan_load("cpu", "bfloat16"))
    assert kwargs["dtype"] == torch.bfloat16
    assert kwargs["low_cpu_mem_usage"] is True
    assert "device_map" not in kwargs  # on the host already: nothing to place


def test_an_accelerator_gets_the_weights_directly() -> None:
    """On CUDA the weights are placed by ``from_pretrained`` (no host copy, no ``.to``)."""
    plan = LoadPlan("cuda:0", torch.bfloat16)
    assert pretrained_kwargs(plan)["device_map"] == {"": "cuda:0"}
    assert plan.places_itself
    spread = LoadPlan("cuda", torch.bfloat16, device_map="auto")
    assert pretrained_kwargs(spread)["device_map"] == "auto"


@pytest.mark.parametrize(
    ("options", "option"),
    [({"device_map": "auto"}, "device-map"), ({"load_in_4bit": True}, "load-in-4bit")],
)
def test_gpu_only_loading_is_refused_on_cpu(options: dict[str, Any], option: str) -> None:
    with pytest.raises(OptionError, match=option):
        plan_load("cpu", **options)


def test_unknown_device_map_is_an_option_error() -> None:
    with pytest.raises(OptionError, match="device-map"):
        plan_load("cpu", device_map="balanced_low_0")


def test_hf_backend_loads_in_the_requested_dtype(
    tiny_llama: Path, load_calls: list[dict[str, Any]]
) -> None:
    from augtool.core.generation import load_llm

    llm = load_llm(f"hf:{tiny_llama}", device="cpu", dtype="bfloat16")
    llm.load()
    assert load_calls == [
        {"class": "AutoModelForCausalLM", "dtype": torch.bfloat16, "low_cpu_mem_usage": True}
    ]
    assert {p.dtype for p in llm._model.parameters()} == {torch.bfloat16}


def test_invmix_lm_loads_in_the_requested_dtype(
    tiny_llama: Path, load_calls: list[dict[str, Any]]
) -> None:
    from augtool.core.inversion.model import load_causal_lm

    model, _, device, _ = load_causal_lm(f"hf:{tiny_llama}", device="cpu", dtype="float16")
    assert load_calls[0]["dtype"] == torch.float16
    assert next(model.parameters()).dtype == torch.float16
    assert device == "cpu"


def test_cli_refuses_4bit_without_cuda_before_any_work(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "hello", "label": "x"}])
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "llm", "rewrite", data, "-o", out, "--llm", f"hf:{tiny_llama}",
        "--device", "cpu", "--load-in-4bit",
    )  # fmt: skip
    assert_one_line_error(result, "--load-in-4bit", "CUDA")
    assert "generating" not in result.stdout + result.stderr  # refused before any work
    assert not out.exists()


def _layer_calls_and_grad(tiny_llama: Path, tiny_st: Path, checkpointing: bool) -> tuple:
    from augtool.core.inversion.model import InversionModel

    model = InversionModel.create(
        str(tiny_st),
        f"hf:{tiny_llama}",
        device="cpu",
        dtype="float32",
        gradient_checkpointing=checkpointing,
        seed=3,
    )
    layers = model.lm.model.model.layers
    calls = [0] * len(layers)
    for index, layer in enumerate(layers):
        # A sub-module of the layer: the checkpoint replays the layer's forward, which
        # enters it again (hooks on the layer itself stay outside the checkpoint; a
        # pre-hook, since the replay stops once the tensors backward needs are back).
        layer.mlp.register_forward_pre_hook(lambda *_, i=index: calls.__setitem__(i, calls[i] + 1))
    vectors = torch.randn(4, model.encoder.dimension, generator=torch.Generator().manual_seed(0))
    soft = model.adaptor(vectors)
    loss = model.lm.loss(soft, ["one two", "three four five", "six", "seven eight"])
    forward_calls = list(calls)
    loss.backward()
    grads = [p.grad.clone() for p in model.adaptor.parameters()]
    return forward_calls, list(calls), grads, model.lm.model.training


def test_gradient_checkpointing_recomputes_every_layer(tiny_llama: Path, tiny_st: Path) -> None:
    """Without the fix, a frozen LM in eval mode never checkpoints: each layer runs once.
    With it, each layer runs once forward and once more in backward, and gradients to the
    adaptor are those of the plain computation."""
    plain_fwd, plain_all, plain_grads, _ = _layer_calls_and_grad(tiny_llama, tiny_st, False)
    ckpt_fwd, ckpt_all, ckpt_grads, training = _layer_calls_and_grad(tiny_llama, tiny_st, True)
    assert plain_fwd == plain_all == [1] * len(plain_all)
    assert ckpt_fwd == [1] * len(ckpt_fwd)
    assert ckpt_all == [2] * len(ckpt_all)  # recomputed in backward
    for plain, ckpt in zip(plain_grads, ckpt_grads, strict=True):
        torch.testing.assert_close(plain, ckpt, rtol=1e-4, atol=1e-6)
    assert not training  # back in eval mode for generation


def test_checkpointing_switches_dropout_off(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    from augtool.core.inversion.model import enable_checkpointing, is_checkpointing

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, attention_dropout=0.3)
    enable_checkpointing(model)
    assert is_checkpointing(model)
    assert model.config.attention_dropout == 0.0
    assert all(getattr(m, "attention_dropout", 0.0) == 0.0 for m in model.modules())


def test_translation_models_load_in_the_requested_dtype(
    tiny_marian: Path, load_calls: list[dict[str, Any]]
) -> None:
    from augtool.core.translation.marian import MarianBackTranslator

    translator = MarianBackTranslator(str(tiny_marian), str(tiny_marian), device="cpu",
                                      dtype="bfloat16")  # fmt: skip
    translator.load()
    assert [call["class"] for call in load_calls] == ["AutoModelForSeq2SeqLM"] * 2
    assert all(call["dtype"] == torch.bfloat16 for call in load_calls)


def test_lmmixup_trainer_loads_in_the_requested_dtype(
    tiny_llama: Path, load_calls: list[dict[str, Any]]
) -> None:
    from augtool.methods.lmmixup.config import SFTTrainConfig
    from augtool.methods.lmmixup.training import load_causal_lm

    config = SFTTrainConfig(device="cpu", dtype="bfloat16")
    model, _ = load_causal_lm(str(tiny_llama), config)
    assert load_calls[0]["dtype"] == torch.bfloat16
    assert next(model.parameters()).dtype == torch.bfloat16
