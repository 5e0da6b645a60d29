"""``augtool lmmixup`` end to end through the CLI: build -> sft -> grpo -> distill on a tiny
random Llama, resume after an interruption, what TRL receives, and the bad-input cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl

from augtool.testing.stub_openai import Reply, StubOpenAIServer

CLEAN = EXAMPLES / "instructions-clean.jsonl"
POOL = EXAMPLES / "instructions-lowq.jsonl"
TRAIN = ("--device", "cpu", "--batch-size", 4, "--max-length", 1024, "--logging-steps", 1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lmm") / "mixture.jsonl"
    result = run_cli("lmmixup", "build", CLEAN, "-o", out, "--group-size", "2:3", "--seed", 1)
    assert result.exit_code == 0, result.stderr
    return out


def test_build_writes_groups_with_provenance(mixture: Path) -> None:
    rows = read_jsonl(mixture)
    clean = {r["id"]: r for r in read_jsonl(CLEAN)}
    assert len(rows) == len(clean)
    for row in rows:
        assert 2 <= len(row["inputs"]) <= 3 and row["schema"] == "instruction"
        source = clean[row["aug"]["parents"][0]]
        assert row["target_fields"]["output"] == source["output"]
        assert all(text != row["target"] for text in row["inputs"])
        assert len(row["aug"]["levels"]) == len(row["inputs"]) == row["aug"]["group_size"]
    meta = json.loads(mixture.with_name("mixture.jsonl.meta.json").read_text())
    assert meta["counts"]["groups"] == len(rows) and meta["counts"]["schema"] == "instruction"


def test_build_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    broken = write_jsonl(
        tmp_path / "broken.jsonl",
        [{"instruction": "Say hi.", "output": "Hi."}, {"instruction": "No output here."}],
    )
    assert_one_line_error(
        run_cli("lmmixup", "build", broken, "-o", out), "broken.jsonl:2", "output"
    )
    for option, value, fragment in (
        ("--group-size", "4:2", "--group-size"),
        ("--group-size", "two", "--group-size"),
        ("--degrade", "noise,blur", "unknown degradation 'blur'"),
        ("--levels", "0:2", "--levels"),
    ):
        result = run_cli("lmmixup", "build", CLEAN, "-o", out, option, value)
        assert_one_line_error(result, fragment)
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    assert_one_line_error(run_cli("lmmixup", "build", empty, "-o", out), "empty.jsonl")
    unknown = write_jsonl(tmp_path / "text.jsonl", [{"text": "a classification row"}])
    assert_one_line_error(run_cli("lmmixup", "build", unknown, "-o", out), "cannot tell the schema")
    assert not out.exists()


def interrupt_at(step: int):
    """A progress callback factory that interrupts training after ``step`` (as Ctrl-C)."""
    from augtool.methods.lmmixup import training

    original = training.progress_callback

    def factory(reporter, description, history):
        callback = original(reporter, description, history)
        step_end = callback.on_step_end

        def on_step_end(args, state, control, **kwargs):
            step_end(args, state, control, **kwargs)
            if state.global_step == step:
                raise KeyboardInterrupt

        callback.on_step_end = on_step_end
        return callback

    return factory


def test_sft_trains_lora_merges_and_resumes_after_an_interruption(
    mixture: Path, tiny_llama: Path, tmp_path: Path, monkeypatch
) -> None:
    from transformers import AutoModelForCausalLM

    from augtool.methods.lmmixup import training

    common = (mixture, "--model", f"hf:{tiny_llama}", *TRAIN, "--max-steps", 4, "--lr", 1e-3)
    straight = tmp_path / "straight"
    result = run_cli("lmmixup", "sft", *common, "-o", straight, "--save-steps", 2)
    assert result.exit_code == 0, result.stderr
    info = json.loads((straight / "augtool_lmmixup.json").read_text())
    assert info["stage"] == "sft" and info["merged"] and info["lora"] and info["steps"] == 4
    assert not (straight / "adapter_config.json").exists()  # LoRA merged into the weights
    meta = json.loads((straight / "meta.json").read_text())
    losses = [h["loss"] for h in meta["history"] if "loss" in h]
    assert len(losses) == 4

    resumed = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        patch.setattr(training, "progress_callback", interrupt_at(3))
        result = run_cli("lmmixup", "sft", *common, "-o", resumed, "--save-steps", 2)
    assert result.exit_code == 130 and "rerun the same command" in result.stderr
    assert not resumed.exists()
    assert (tmp_path / "resumed.partial" / "checkpoints" / "checkpoint-2").is_dir()
    result = run_cli("lmmixup", "sft", *common, "-o", resumed, "--save-steps", 2)
    assert result.exit_code == 0, result.stderr
    assert "resuming from the checkpoints" in result.stderr + result.stdout
    assert not (tmp_path / "resumed.partial").exists()
    meta = json.loads((resumed / "meta.json").read_text())
    assert meta["resumed_from"] and [h["step"] for h in meta["history"] if "loss" in h] == [3, 4]
    a = AutoModelForCausalLM.from_pretrained(straight).state_dict()
    b = AutoModelForCausalLM.from_pretrained(resumed).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # same weights as unbroken

    full = tmp_path / "full"
    result = run_cli("lmmixup", "sft", *common[:-4], "--max-steps", 1, "--no-lora", "-o", full)
    assert result.exit_code == 0, result.stderr
    assert json.loads((full / "augtool_lmmixup.json").read_text())["lora"] is False


def test_grpo_hands_trl_our_weighted_rewards(
    mixture: Path, tiny_llama: Path, tiny_model_store, tmp_path: Path, monkeypatch
) -> None:
    from augtool.methods.lmmixup import training
    from augtool.methods.lmmixup.rewards import TRLReward

    seen = {}
    original = training.run_grpo

    def spy(*args, **kwargs):
        def hook(trainer):
            seen["funcs"] = list(trainer.reward_funcs)
            seen["weights"] = trainer.reward_weights.tolist()
            seen["generations"] = trainer.args.num_generations

        return original(*args, **kwargs, trainer_hook=hook)

    monkeypatch.setattr("augtool.cli.lmmixup.run_grpo", spy, raising=False)
    monkeypatch.setattr(training, "run_grpo", spy)
    out = tmp_path / "grpo"
    result = run_cli(
        "lmmixup",
        "grpo",
        mixture,
        "--model",
        f"hf:{tiny_llama}",
        "-o",
        out,
        *TRAIN,
        "--group",
        4,
        "--max-steps",
        2,
        "--max-completion-length",
        8,
        "--encoder",
        tiny_model_store["st"],
        "--reward",
        "quality=0.5,alignment=0.3,format=0.2",
        "--quality",
        "cosine",
    )
    assert result.exit_code == 0, result.stderr
    assert [f.__name__ for f in seen["funcs"]] == ["quality", "alignment", "format"]
    assert all(isinstance(f, TRLReward) for f in seen["funcs"])
    assert seen["weights"] == pytest.approx([0.5, 0.3, 0.2]) and seen["generations"] == 4
    info = json.loads((out / "augtool_lmmixup.json").read_text())
    assert info["stage"] == "grpo" and info["rewards"] == pytest.approx(
        {"quality": 0.5, "alignment": 0.3, "format": 0.2}
    )
    meta = json.loads((out / "meta.json").read_text())
    calibration = meta["rewards"]["alignment"]["calibration"]
    assert calibration["source"] == "auto" and calibration["quantile"] == 0.5
    assert meta["rewards"]["alignment"]["threshold"] == calibration["threshold"]
    assert calibration["own_inputs"]["q50"] == calibration["threshold"]
    assert meta["rewards"]["quality"]["scorer"] == "cosine"
    logged = [h for h in meta["history"] if "reward" in h]
    assert logged and all("rewards/format/mean" in h for h in logged)


def test_trl_optimises_the_weighted_sum_of_our_rewards(mixture: Path, tiny_llama: Path, tmp_path):
    """With rewards of known values, TRL's logged reward is sum_i w_i * mean(r_i)."""
    from augtool.methods.lmmixup.config import GRPOTrainConfig
    from augtool.methods.lmmixup.training import run_grpo

    def quality(prompts, completions, **kwargs):
        assert {"reference", "inputs", "schema"} <= set(kwargs)
        return [1.0] * len(completions)

    def format(prompts, completions, **kwargs):
        return [float(i % 2) for i in range(len(completions))]

    rows = read_jsonl(mixture)[:8]
    config = GRPOTrainConfig(
        max_steps=2, group=4, batch_size=4, device="cpu", max_completion_length=8, logging_steps=1
    )
    result = run_grpo(
        rows,
        config,
        f"hf:{tiny_llama}",
        tmp_path / "g",
        reward_funcs=[quality, format],
        reward_weights=[0.7, 0.1],
    )
    logged = [h for h in result.history if "reward" in h]
    assert len(logged) == 2
    for entry in logged:
        expected = 0.7 * entry["rewards/quality/mean"] + 0.1 * entry["rewards/format/mean"]
        assert entry["reward"] == pytest.approx(expected, abs=1e-5)
        assert entry["rewards/format/mean"] == pytest.approx(0.5)


def test_training_bad_input(mixture: Path, tiny_llama: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "m"
    for spec in ("openai:gpt-4o-mini", "no-such-folder"):
        result = run_cli("lmmixup", "sft", mixture, "--model", spec, "-o", out)
        assert_one_line_error(result, "--model")
    result = run_cli("lmmixup", "sft", mixture, "--model", f"hf:{tmp_path}/missing", "-o", out)
    assert_one_line_error(result, "no such folder")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"inputs": ["a"], "target": "b"}, {"inputs": []}])
    result = run_cli("lmmixup", "sft", bad, "--model", f"hf:{tiny_llama}", "-o", out)
    assert_one_line_error(result, "bad.jsonl:2", "inputs")
    grpo = ("lmmixup", "grpo", mixture, "--model", f"hf:{tiny_llama}", "-o", out)
    assert_one_line_error(run_cli(*grpo, "--reward", "quality=1,fluency=2"), "unknown reward")
    assert_one_line_error(run_cli(*grpo, "--reward", "quality=high"), "--reward")
    assert_one_line_error(run_cli(*grpo, "--reward", "quality"), "name=weight")
    assert_one_line_error(run_cli(*grpo, "--group", 3, "--batch-size", 4), "multiple of --group")
    assert_one_line_error(run_cli(*grpo, "--quality", "judge"), "--judge-llm")
    assert not out.exists()

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a)
    )
    result = run_cli("lmmixup", "sft", mixture, "--model", f"hf:{tiny_llama}", "-o", out)
    assert_one_line_error(result, "pip install 'augtool[train]'")


def fused(instruction: str, output: str) -> str:
    return (
        f"<think>merge</think>\n<answer>\nInstruction: {instruction}\nOutput: {output}\n</answer>"
    )


def test_distill_groups_fuses_scores_and_resumes(tmp_path: Path, tiny_llama: Path) -> None:
    replies = [
        fused(
            "Explain how to reset a forgotten password.",
            "Use 'Forgot password' and the email link.",
        ),
        "I could not merge these.",  # no tags: rejected
        fused("Explain how to cancel a subscription.", "Open billing, select it, cancel, confirm."),
        fused("Name a colour.", "Blue."),  # well-formed but unrelated to its group
    ] + [fused("Explain the samples.", "They are about one topic.")] * 8
    out = tmp_path / "distilled.jsonl"
    with StubOpenAIServer() as stub:
        stub.script(*[Reply(r) for r in replies])
        common = (
            POOL,
            "--model",
            "openai:stub",
            "--base-url",
            stub.base_url,
            "--concurrency",
            1,
            "--group-size",
            3,
            "--reward",
            "alignment=0.5,format=0.5",
            "--threshold",
            0.75,
            "-o",
            out,
        )
        result = run_cli("lmmixup", "distill", *common, "--max-requests", 4)
        assert result.exit_code == 3 and "rerun" in result.stderr
        assert not out.exists()
        result = run_cli("lmmixup", "distill", *common)
        assert result.exit_code == 0, result.stderr
        assert len(stub.requests) == 8  # the first 4 groups were not asked again
    rows = read_jsonl(out)
    pool = {r["id"]: r for r in read_jsonl(POOL)}
    assert len({r["id"] for r in rows}) == len(rows)
    by_id = {r["id"]: r for r in rows}
    first = by_id["distill-0"]
    assert first["instruction"] == "Explain how to reset a forgotten password."
    assert first["output"] == "Use 'Forgot password' and the email link."
    sources = first["aug"]["parents"]
    assert sources == ["lowq-0", "lowq-1", "lowq-2"]  # the three password questions
    assert all("pas" in pool[s]["instruction"] for s in sources)
    assert first["aug"]["score"] >= 0.75 and first["aug"]["rewards"]["format"] == 1.0
    rejected = {r["id"]: r for r in read_jsonl(out.with_name("distilled.jsonl.rejected.jsonl"))}
    assert "does not parse" in rejected["distill-1"]["reason"]
    assert "below the threshold" in rejected["distill-3"]["reason"]  # unrelated to its group
    assert rejected["distill-3"]["scores"]["format"] == 1.0
    meta = json.loads(out.with_name("distilled.jsonl.meta.json").read_text())
    assert meta["counts"]["groups"] == 8 and meta["counts"]["kept"] == len(rows)

    # a trained local model folder works as --model too (gibberish here: nothing passes)
    result = run_cli(
        "lmmixup",
        "distill",
        POOL,
        "--model",
        tiny_llama,
        "--device",
        "cpu",
        "--max-new-tokens",
        8,
        "--reward",
        "format=1",
        "-o",
        tmp_path / "tiny.jsonl",
    )
    assert result.exit_code == 0, result.stderr
    assert read_jsonl(tmp_path / "tiny.jsonl") == []
    assert len(read_jsonl(tmp_path / "tiny.jsonl.rejected.jsonl")) == 8


def test_distill_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    base = ("lmmixup", "distill", POOL, "--model", "openai:m", "-o", out)
    assert_one_line_error(run_cli(*base), "--quality-bank")
    result = run_cli(
        *base, "--reward", "format=1", "--base-url", "http://127.0.0.1:9/v1", "--max-retries", 0
    )
    assert_one_line_error(result, "127.0.0.1:9")
    assert_one_line_error(run_cli(*base, "--min-group", 5), "--min-group")
    assert not out.exists()


def test_distill_judge_has_its_own_server(tmp_path: Path) -> None:
    """--judge-base-url sends the quality judge to its own server, not the fusing model's."""
    out = tmp_path / "judged.jsonl"
    rating = '{"Rarity": 6, "Complexity": 6, "Informativeness": 8, "Overall rating": 8}'
    with StubOpenAIServer() as fuser, StubOpenAIServer() as judge:
        fuser.script(*[Reply(fused("Explain the samples.", "They share one topic."))] * 20)
        judge.script(*[Reply(rating)] * 20)
        result = run_cli(
            "lmmixup",
            "distill",
            POOL,
            "--model",
            "openai:fuser",
            "--base-url",
            fuser.base_url,
            "--quality",
            "judge",
            "--judge-llm",
            "openai:judge",
            "--judge-base-url",
            judge.base_url,
            "--reward",
            "quality=0.5,format=0.5",
            "--threshold",
            0.0,
            "--concurrency",
            1,
            "-o",
            out,
        )
        assert result.exit_code == 0, result.stderr
        fused_requests = len(fuser.requests)
        assert fused_requests >= 1 and len(judge.requests) >= 1
        assert {r["body"]["model"] for r in fuser.requests} == {"fuser"}
        assert {r["body"]["model"] for r in judge.requests} == {"judge"}
    rows = read_jsonl(out)
    assert len(rows) == fused_requests  # one fused row per group, each judged
