"""invmix on tiny models: the inverter's loss and masking, learning end to end through the
CLI, resume, generation (labels, dedup, determinism), refinement, intrusion, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl
from tiny_models import NO_MATCH, build_inversion_lm

from augtool.testing.stub_openai import Reply, StubOpenAIServer

SENTENCES = [row["text"] for row in read_jsonl(EXAMPLES / "intents-train.jsonl")[:8]]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("invmix-corpus")
    rows = [
        {"id": f"s{i}", "text": text, "label": "even" if i % 2 == 0 else "odd"}
        for i, text in enumerate(SENTENCES)
    ]
    return write_jsonl(folder / "corpus.jsonl", rows)


@pytest.fixture(scope="session")
def inversion_lm(tmp_path_factory) -> Path:
    return build_inversion_lm(tmp_path_factory.mktemp("inv-lm") / "lm", SENTENCES)


def adaptor_args(encoder: Path, lm: Path, *extra: object) -> list[object]:
    return ["--encoder", encoder, "--llm", f"hf:{lm}", "--batch-size", 8, *extra]


@pytest.fixture(scope="session")
def trained(tiny_model_store, inversion_lm, corpus, tmp_path_factory) -> Path:
    """An adaptor trained on the corpus (the session's tiny encoder, the inversion LM)."""
    out = tmp_path_factory.mktemp("adaptors") / "trained"
    result = run_cli(
        "invmix",
        "train-adaptor",
        corpus,
        "-o",
        out,
        *adaptor_args(tiny_model_store["st"], inversion_lm, "--epochs", 150, "--lr", 1e-2),
    )
    assert result.exit_code == 0, result.stderr
    return out


# --- the soft-prompt inverter -------------------------------------------------------------


def test_only_target_tokens_carry_the_loss(inversion_lm: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from augtool.core.inversion.soft_prompt import SoftPromptLM

    model = AutoModelForCausalLM.from_pretrained(inversion_lm)
    lm = SoftPromptLM(model, AutoTokenizer.from_pretrained(inversion_lm))
    soft = torch.randn(2, 3, lm.hidden_size)
    texts = ["I want to change my username", "hi"]
    batch = lm.training_batch(soft, texts)
    prompt = len(lm.prefix_ids) + 3 + len(lm.suffix_ids)
    targets = lm.target_ids(texts)
    assert batch["inputs_embeds"].shape[:2] == batch["labels"].shape
    assert (batch["labels"][:, :prompt] == -100).all()
    for row, ids in enumerate(targets):
        assert batch["labels"][row, prompt : prompt + len(ids)].tolist() == ids
        assert (batch["labels"][row, prompt + len(ids) :] == -100).all()
        assert batch["attention_mask"][row].sum() == prompt + len(ids)
    torch.testing.assert_close(
        batch["inputs_embeds"][:, len(lm.prefix_ids) : len(lm.prefix_ids) + 3], soft
    )
    logits = model(
        inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"]
    ).logits
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=-100,
    )
    torch.testing.assert_close(lm.loss(soft, texts), expected)


def test_training_updates_the_adaptor_and_never_the_lm(
    tiny_st: Path, inversion_lm: Path, tmp_path: Path
) -> None:
    from augtool.core.inversion.model import InversionModel
    from augtool.core.inversion.soft_prompt import frozen_state
    from augtool.core.inversion.train import train_adaptor

    model = InversionModel.create(str(tiny_st), f"hf:{inversion_lm}")
    before_lm = frozen_state(model.lm.model)
    before_adaptor = frozen_state(model.adaptor)
    train_adaptor(
        model,
        SENTENCES,
        model.embed(SENTENCES),
        epochs=3,
        lr=1e-2,
        batch_size=4,
        seed=0,
        checkpoint_dir=tmp_path / "ckpt",
        run_key="k",
    )
    after_lm = model.lm.model.state_dict()
    assert all(torch.equal(before_lm[k], after_lm[k]) for k in before_lm)
    assert all(p.grad is None for p in model.lm.model.parameters())
    assert not all(torch.equal(before_adaptor[k], v) for k, v in model.adaptor.state_dict().items())


# --- learning, end to end through the CLI -----------------------------------------------


def test_trained_adaptor_reconstructs_and_untrained_does_not(
    trained: Path, tiny_model_store, inversion_lm: Path, corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "recon.jsonl"
    plot = tmp_path / "recon.png"
    result = run_cli("invmix", "reconstruct", corpus, "--model", trained, "-o", out, "--plot", plot)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert sum(r["exact"] for r in rows) >= 7
    metrics = json.loads((tmp_path / "recon.jsonl.metrics.json").read_text())
    assert metrics["exact_match"] >= 7 / 8 and metrics["bleu"] > 0.8
    cosine = metrics["cosine"]
    assert cosine["original_vs_reconstruction"] > 0.99
    assert cosine["same_class_originals"] is not None
    assert cosine["different_class_originals"] is not None
    assert plot.stat().st_size > 1000

    untrained = tmp_path / "untrained"
    result = run_cli(
        "invmix",
        "train-adaptor",
        corpus,
        "-o",
        untrained,
        *adaptor_args(tiny_model_store["st"], inversion_lm, "--epochs", 1, "--lr", 1e-12),
    )
    assert result.exit_code == 0, result.stderr
    out0 = tmp_path / "recon0.jsonl"
    assert run_cli("invmix", "reconstruct", corpus, "--model", untrained, "-o", out0).exit_code == 0
    rows0 = read_jsonl(out0)
    assert sum(r["exact"] for r in rows0) == 0
    assert {r["reconstruction"] for r in rows0} == {NO_MATCH}


def test_train_adaptor_resumes_from_its_checkpoint(
    tiny_st: Path, inversion_lm: Path, corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    from safetensors.torch import load_file

    from augtool.core.inversion.soft_prompt import SoftPromptLM

    args = adaptor_args(
        tiny_st, inversion_lm, "--epochs", 4, "--lr", 1e-2, "--batch-size", 4, "--save-every", 3
    )
    reference = tmp_path / "reference"
    assert run_cli("invmix", "train-adaptor", corpus, "-o", reference, *args).exit_code == 0

    original = SoftPromptLM.loss
    calls = {"n": 0}

    def crash_on_step_5(self, soft, texts):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, soft, texts)

    out = tmp_path / "adaptor"
    with monkeypatch.context() as patch:
        patch.setattr(SoftPromptLM, "loss", crash_on_step_5)
        assert run_cli("invmix", "train-adaptor", corpus, "-o", out, *args).exit_code == 130
    assert not out.exists() and (tmp_path / "adaptor.partial" / "checkpoint").is_dir()
    result = run_cli("invmix", "train-adaptor", corpus, "-o", out, *args)
    assert result.exit_code == 0, result.stderr
    assert "resuming adaptor training at step 4" in result.stderr  # the epoch-end checkpoint
    ours, theirs = (
        load_file(out / "adaptor.safetensors"),
        load_file(reference / "adaptor.safetensors"),
    )
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in ours)


# --- generation -------------------------------------------------------------------------


def test_generate_soft_labels_dedup_and_determinism(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "aug.jsonl"
    args = (
        "--model",
        trained,
        "--n",
        12,
        "--alpha",
        0.4,
        "--pairs",
        "inter-class",
        "--seed",
        3,
        "--batch-size",
        4,
        "--keep-duplicates",
    )
    result = run_cli("invmix", "generate", corpus, "-o", out, *args)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"invmix-{i}" for i in range(12)]
    parents = {r["id"]: r for r in read_jsonl(corpus)}
    for row in rows:
        aug = row["aug"]
        first, second = (parents[p] for p in aug["parents"])
        assert first["label"] != second["label"]  # inter-class
        dist = row["label_dist"]
        assert abs(sum(dist.values()) - 1) < 1e-5
        assert dist[first["label"]] == pytest.approx(aug["lambda"], abs=1e-5)
        assert row["label"] == max(dist, key=dist.get)
        assert aug["parent_labels"] == [first["label"], second["label"]]
        assert aug["label_mode"] == "soft" and aug["method"] == "invmix"
    assert any(r["aug"].get("duplicate_of_parent") for r in rows)  # lambda near 0 or 1

    again = tmp_path / "again.jsonl"
    assert run_cli("invmix", "generate", corpus, "-o", again, *args).exit_code == 0
    assert again.read_text() == out.read_text()

    deduped = tmp_path / "dedup.jsonl"
    result = run_cli("invmix", "generate", corpus, "-o", deduped, *args[:-1])
    assert result.exit_code == 0 and "identical to a parent dropped" in result.stdout
    kept = {r["id"] for r in read_jsonl(deduped)}
    assert kept == {r["id"] for r in rows if not r["aug"].get("duplicate_of_parent")}


def test_generate_fixed_lambda_llm_labels_and_resume(
    trained: Path, corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    from augtool.core.inversion.model import InversionModel

    out = tmp_path / "llm.jsonl"
    result = run_cli(
        "invmix",
        "generate",
        corpus,
        "-o",
        out,
        "--model",
        trained,
        "--n",
        6,
        "--lam",
        0.5,
        "--labels",
        "llm",
        "--keep-duplicates",
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert all(r["aug"]["lambda"] == 0.5 and r["aug"]["label_mode"] == "llm" for r in rows)
    assert all(r["label"] in ("even", "odd") and r["llm_label"]["method"] == "loglik" for r in rows)
    assert all("label_dist" not in r for r in rows)

    args = ("--model", trained, "--n", 10, "--batch-size", 2, "--keep-duplicates")
    full = tmp_path / "full.jsonl"
    assert run_cli("invmix", "generate", corpus, "-o", full, *args).exit_code == 0
    original = InversionModel.invert
    calls = {"n": 0}

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    resumed = tmp_path / "resumed.jsonl"
    with monkeypatch.context() as patch:
        patch.setattr(InversionModel, "invert", interrupted)
        assert run_cli("invmix", "generate", corpus, "-o", resumed, *args).exit_code == 130
    result = run_cli("invmix", "generate", corpus, "-o", resumed, *args)
    assert result.exit_code == 0 and "resuming: 8 rows already written" in result.stderr
    assert resumed.read_text() == full.read_text()


# --- refinement ---------------------------------------------------------------------------


def test_refine_saves_task_model_and_adaptor(trained: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "refined"
    result = run_cli(
        "invmix",
        "refine",
        corpus,
        "--adaptor",
        trained,
        "-o",
        out,
        "--rounds",
        2,
        "--task-epochs",
        1,
        "--adaptor-epochs",
        2,
        "--lr",
        1e-2,
        "--batch-size",
        8,
    )
    assert result.exit_code == 0, result.stderr
    info = json.loads((out / "inversion.json").read_text())
    assert info["stage"] == "refined" and info["labels"] == ["even", "odd"]
    assert info["encoder"]["path"] == "task_model/encoder"
    assert (out / "task_model" / "augtool_model.json").is_file()
    assert len(read_jsonl(out / "train_log.jsonl")) == 2
    assert not list(out.glob("round-*"))
    assert run_cli("eval", out / "task_model", corpus, "--json").exit_code == 0

    unknown = write_jsonl(
        tmp_path / "unknown.jsonl",
        [{"text": "a", "label": "even"}, {"text": "b", "label": "weird"}],
    )
    result = run_cli("invmix", "generate", unknown, "--model", out, "-o", tmp_path / "x.jsonl")
    assert_one_line_error(result, f"{unknown}:2", 'unknown label "weird"')


# --- intrusion ----------------------------------------------------------------------------


def test_intrusion_verdicts_by_lambda_bin(trained: Path, corpus: Path, tmp_path: Path) -> None:
    from augtool.data import Record
    from augtool.methods.invmix.intrusion import Mixed, verdict

    mixed = Mixed(Record(id="x", text="t"), 0.7, "even", "odd")
    assert verdict(mixed, "even", "Inside") == "none"
    assert verdict(mixed, "odd", "Inside") == "inside"
    assert verdict(mixed, "even", "Outside") == "outside"
    assert verdict(mixed, "other", "Inside") == "outside"
    assert verdict(mixed, None, "Inside") == "unjudged"

    aug = tmp_path / "aug.jsonl"
    assert (
        run_cli(
            "invmix",
            "generate",
            corpus,
            "-o",
            aug,
            "--model",
            trained,
            "--n",
            4,
            "--pairs",
            "inter-class",
            "--lam",
            0.8,
            "--keep-duplicates",
        ).exit_code
        == 0
    )
    texts = [r["text"] for r in read_jsonl(aug)]
    with StubOpenAIServer() as server:
        # Judge replies: one row per verdict, matched on the row's text in each prompt.
        for text, (label, region) in zip(
            texts,
            [("even", "Inside"), ("odd", "Inside"), ("even", "Outside"), ("no idea", "Inside")],
            strict=False,
        ):
            server.script(
                Reply(label),
                when=f"Which of these labels fits the text best?\n- even\n- odd\nText: {text}",
            )
            server.script(Reply(region), when=f"Text: {text}\nIf the text")
        out = tmp_path / "intrusion.json"
        result = run_cli(
            "invmix",
            "intrusion",
            aug,
            "--judge",
            "openai:judge",
            "--base-url",
            server.base_url,
            "-o",
            out,
            "--plot",
            tmp_path / "i.png",
            "--concurrency",
            1,
        )
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    generated = read_jsonl(aug)
    # lambda = 0.8 favours the first parent's label.
    favoured = [row["aug"]["parent_labels"][0] for row in generated]
    expected = [
        "none" if favoured[0] == "even" else "inside",
        "none" if favoured[1] == "odd" else "inside",
        "outside",
        "unjudged",
    ]
    assert [row["verdict"] for row in report["rows"]] == expected
    assert report["rows"][0]["judged_label"] == "even" and report["rows"][2]["region"] == "Outside"
    assert len(report["bins"]) == 10 and report["bins"][8]["n"] == 4  # lambda 0.8
    assert report["bins"][8]["counts"] == {
        v: expected.count(v) for v in ("none", "inside", "outside", "unjudged")
    }
    assert (tmp_path / "i.png").stat().st_size > 1000


# --- bad input ------------------------------------------------------------------------------


def test_bad_input(
    trained: Path, tiny_hf: Path, tiny_st: Path, inversion_lm: Path, corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "x"
    result = run_cli("invmix", "train-adaptor", corpus, "-o", out, "--llm", "openai:gpt-4o")
    assert_one_line_error(result, "--llm", "invmix needs a local model (hf:")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = run_cli(
        "invmix", "train-adaptor", empty, "-o", out, *adaptor_args(tiny_st, inversion_lm)
    )
    assert_one_line_error(result, "empty.jsonl: no records")
    for option, value, message in (
        ("--alpha", 0, "--alpha: must be positive"),
        ("--lam", 1.5, "--lam: must be between 0 and 1"),
    ):
        result = run_cli(
            "invmix",
            "generate",
            corpus,
            "--model",
            trained,
            "-o",
            tmp_path / "g.jsonl",
            option,
            value,
        )
        assert_one_line_error(result, message)

    # An encoder of another dimension than the adaptor's.
    from transformers import AutoTokenizer, BertConfig, BertModel

    config = BertConfig.from_pretrained(tiny_hf)
    config.update({"hidden_size": 48, "num_attention_heads": 2})
    wide = tmp_path / "wide-bert"
    BertModel(config).save_pretrained(wide)
    AutoTokenizer.from_pretrained(tiny_hf).save_pretrained(wide)
    result = run_cli("invmix", "refine", corpus, "--adaptor", trained, "-o", out, "--encoder", wide)
    assert_one_line_error(result, "gives 48-dim embeddings but the adaptor", "expects 32")

    # The adaptor's encoder changed on disk since training.
    copy = tmp_path / "adaptor-copy"
    shutil.copytree(trained, copy)
    info = json.loads((copy / "inversion.json").read_text())
    moved = tmp_path / "encoder-copy"
    shutil.copytree(info["encoder"]["name"], moved)
    weights = moved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    info["encoder"]["name"] = str(moved)
    (copy / "inversion.json").write_text(json.dumps(info))
    result = run_cli("invmix", "reconstruct", corpus, "--model", copy, "-o", tmp_path / "r.jsonl")
    assert_one_line_error(result, "fingerprint mismatch")
    result = run_cli(
        "invmix", "reconstruct", corpus, "--model", tmp_path / "nope", "-o", tmp_path / "r.jsonl"
    )
    assert_one_line_error(result, "no such folder")


def test_invmix_is_a_bench_method(
    trained: Path, tiny_model_store, corpus: Path, tmp_path: Path
) -> None:
    import yaml

    config = tmp_path / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "datasets": {"toy": {"train": str(corpus), "test": str(corpus)}},
                "k": [2],
                "seeds": [1],
                "task_model": {"encoder": str(tiny_model_store["st"]), "epochs": 2},
                "methods": {
                    "base": {},
                    "invmix": {
                        "adaptor": str(trained),
                        "rounds": 1,
                        "task_epochs": 1,
                        "adaptor_epochs": 1,
                        "keep_duplicates": True,
                    },
                },
                "per_original": 2,
            }
        )
    )
    run = tmp_path / "run"
    result = run_cli("bench", config, "-o", run)
    assert result.exit_code == 0, result.stderr
    cell = json.loads((run / "cells" / "toy__k2__s1__invmix.json").read_text())
    assert cell["status"] == "ok" and cell["n_augmented"] == 8  # per_original x 4 rows
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace(str(trained), str(tmp_path / "missing")))
    assert_one_line_error(
        run_cli("bench", bad, "-o", tmp_path / "run2"), "methods.invmix", "no such folder"
    )


def test_intrusion_prompts_can_be_replaced(trained: Path, corpus: Path, tmp_path: Path) -> None:
    aug = tmp_path / "aug.jsonl"
    assert (
        run_cli(
            "invmix",
            "generate",
            corpus,
            "-o",
            aug,
            "--model",
            trained,
            "--n",
            2,
            "--keep-duplicates",
        ).exit_code
        == 0
    )
    bad = tmp_path / "bad.txt"
    bad.write_text("Is {sentence} inside {label_a}?")
    result = run_cli(
        "invmix",
        "intrusion",
        aug,
        "--judge",
        "openai:j",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "-o",
        tmp_path / "i.json",
        "--region-prompt-file",
        bad,
    )
    assert_one_line_error(result, "--region-prompt-file", "unknown placeholder(s) {sentence}")
    good = tmp_path / "region.txt"
    good.write_text("PAPER TEXT. {text} between {label_a} and {label_b}: Inside or Outside?")
    with StubOpenAIServer() as server:
        result = run_cli(
            "invmix",
            "intrusion",
            aug,
            "--judge",
            "openai:j",
            "--base-url",
            server.base_url,
            "-o",
            tmp_path / "i.json",
            "--region-prompt-file",
            good,
        )
        sent = [r["body"]["messages"][-1]["content"] for r in server.requests]
    assert result.exit_code == 0, result.stderr
    assert sum(text.startswith("PAPER TEXT.") for text in sent) == 2
    prompts = json.loads((tmp_path / "i.json").read_text())["prompts"]
    assert prompts["region_template"]["source"] == str(good)
    assert prompts["label_template"]["verbatim"] is False
