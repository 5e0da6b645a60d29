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


def test_no_adaptor_norm_is_the_papers_plain_single_layer(
    tiny_st: Path, inversion_lm: Path, corpus: Path, tmp_path: Path
) -> None:
    """--no-adaptor-norm trains and saves the paper's one linear map (no LayerNorm), and the
    saved adaptor loads back as such."""
    from safetensors.torch import load_file

    from augtool.core.inversion.model import InversionModel

    out = tmp_path / "plain"
    args = adaptor_args(tiny_st, inversion_lm, "--epochs", 1, "--no-adaptor-norm")
    result = run_cli("invmix", "train-adaptor", corpus, "-o", out, *args)
    assert result.exit_code == 0, result.stderr
    assert set(load_file(out / "adaptor.safetensors")) == {"net.weight", "net.bias"}
    loaded = InversionModel.load(out, device="cpu")
    assert loaded.adaptor.shape()["norm"] is False
    h = torch.randn(3, loaded.adaptor.encoder_dim)
    linear = loaded.adaptor.net
    expected = (h @ linear.weight.T + linear.bias).view(3, loaded.adaptor.soft_tokens, -1)
    assert torch.allclose(loaded.adaptor(h), expected, atol=1e-6)


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
    plot = tmp_path / "aug.html"
    result = run_cli("invmix", "generate", corpus, "-o", out, *args, "--plot", plot)
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
    # --plot: inputs and mixed rows in the model's space, mixed rows by their argmax label
    page = plot.read_text()
    for label in ("even", "odd"):
        assert f'"name":"original: {label}"' in page
        assert f'"name":"mixed (argmax label): {label}"' in page
    meta = json.loads((tmp_path / "aug.jsonl.meta.json").read_text())
    assert meta["plot"]["points"] == {"original": 8, "generated": 12}
    assert meta["plot"]["legend"]["generated"] == "mixed (argmax label)"

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
    plot = tmp_path / "resumed.png"
    result = run_cli("invmix", "generate", corpus, "-o", resumed, *args, "--plot", plot)
    assert result.exit_code == 0 and "resuming: 8 rows already written" in result.stderr
    assert resumed.read_text() == full.read_text()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    meta = json.loads((tmp_path / "resumed.jsonl.meta.json").read_text())
    assert meta["plot"]["points"]["generated"] == 10  # the resumed rows too


def test_generate_llm_labels_with_the_appendix_a3_prompt(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    from augtool.core.generation.labels import load_label_set
    from augtool.core.generation.prompts import LLM_LABEL

    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            {
                "even": {"text": "Even", "description": "rows with an even index"},
                "odd": {"text": "Odd", "description": "rows with an odd index"},
            }
        )
    )
    label_set = load_label_set(labels)
    base = ("invmix", "generate", corpus, "--model", trained, "--n", 4, "--lam", 0.5)
    llm = ("--labels", "llm", "--label-llm", "openai:labeller", "--keep-duplicates")
    out = tmp_path / "a3.jsonl"
    with StubOpenAIServer() as server:
        server.script(*[Reply("Even.")] * 4)
        result = run_cli(
            *base, *llm, "--base-url", server.base_url, "--label-descriptions", labels, "-o", out
        )
        assert result.exit_code == 0, result.stderr
        sent = [r["body"]["messages"] for r in server.requests]
        rows = read_jsonl(out)
        assert all(r["label"] == "even" for r in rows)
        assert all(r["llm_label"]["method"] == "parse" for r in rows)
        assert all(r["llm_label"]["reply"] == "Even." for r in rows)
        assert all(r["llm_label"]["prompt_id"] == "invmix.a3.label" for r in rows)
        # The paper's A.3 prompt, verbatim, with the labels and their descriptions.
        assert sorted(m[-1]["content"] for m in sent) == sorted(
            LLM_LABEL.render(text=r["text"], label_list=label_set.label_list())[-1]["content"]
            for r in rows
        )
        assert all(len(m) == 1 for m in sent)  # no system message
        assert '"Even": "rows with an even index",\n"Odd"' in sent[0][-1]["content"]
        meta = json.loads((tmp_path / "a3.jsonl.meta.json").read_text())
        assert meta["labelling"]["scoring"] == "parse"
        assert meta["labelling"]["prompt"]["verbatim"] is True

        # augtool's wording; a reply naming no label leaves the row unlabelled.
        server.requests.clear()
        server.script(*[Reply("no idea")] * 4)
        other = tmp_path / "augtool.jsonl"
        result = run_cli(
            *base, *llm, "--base-url", server.base_url, "--prompt-style", "augtool", "-o", other
        )
        assert result.exit_code == 0, result.stderr
        assert "4 rows got no label from the LLM" in result.stderr
        assert all(r.get("label") is None for r in read_jsonl(other))
        assert all(
            "Answer with the label name only." in r["body"]["messages"][-1]["content"]
            for r in server.requests
        )

        # A prompt file with the paper's placeholder.
        prompt = tmp_path / "label.txt"
        prompt.write_text("MINE: {text} -> one of {label_list}")
        server.requests.clear()
        server.script(*[Reply("odd")] * 4)
        mine = tmp_path / "mine.jsonl"
        result = run_cli(
            *base, *llm, "--base-url", server.base_url, "--prompt-file", prompt, "-o", mine
        )
        assert result.exit_code == 0, result.stderr
        assert all(r["label"] == "odd" for r in read_jsonl(mine))
        assert all(
            r["body"]["messages"][-1]["content"].startswith("MINE: ") for r in server.requests
        )

    def error(*extra: object):
        return run_cli(*base, "-o", tmp_path / "bad.jsonl", *extra)

    only_even = tmp_path / "even.json"
    only_even.write_text('{"even": "even rows"}')
    assert_one_line_error(
        error(*llm, "--label-descriptions", only_even),
        "--label-descriptions",
        "the data has label(s) odd",
        "it names: even",
    )
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("{sentence} {label_list}")
    assert_one_line_error(
        error(*llm, "--prompt-file", unknown), "--prompt-file", "unknown placeholder(s) {sentence}"
    )
    bare = tmp_path / "bare.txt"
    bare.write_text("Label this: {text}")
    assert_one_line_error(
        error(*llm, "--prompt-file", bare), "--prompt-file", "must show the labels"
    )
    assert_one_line_error(
        error("--prompt-file", prompt), "--prompt-file", "only used with --labels llm"
    )
    assert_one_line_error(
        error(*llm, "--label-scoring", "loglik"), "--label-scoring", "loglik needs a local model"
    )


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
    theta = json.loads((out / "task_model" / "augtool_model.json").read_text())
    assert theta["train_config"]["init_from"]  # round 2 continued round 1's theta

    # Eq. 12: the final task model keeps training from theta* (the refine folder itself).
    final = tmp_path / "final"
    result = run_cli("train", corpus, "-o", final, "--init-from", out, "--epochs", 1)
    assert result.exit_code == 0, result.stderr
    meta = json.loads((final / "meta.json").read_text())
    assert meta["init_from"]["task_model"] == str(out / "task_model")
    assert meta["init_from"]["labels"] == ["even", "odd"]

    unknown = write_jsonl(
        tmp_path / "unknown.jsonl",
        [{"text": "a", "label": "even"}, {"text": "b", "label": "weird"}],
    )
    result = run_cli("invmix", "generate", unknown, "--model", out, "-o", tmp_path / "x.jsonl")
    assert_one_line_error(result, f"{unknown}:2", 'unknown label "weird"')


# --- intrusion ---------------------------------------------------------------------------

TREC_LABELS = Path(__file__).resolve().parents[1] / "examples" / "labels" / "trec.json"


def mixed_row(i: int, text: str, lam: float, a: str, b: str, soft: bool = True) -> dict:
    row = {
        "id": f"invmix-{i}",
        "text": text,
        "label": a if lam >= 0.5 else b,
        "aug": {"method": "invmix", "lambda": lam, "parent_labels": [a, b], "parents": ["p", "q"]},
    }
    if soft:
        row["label_dist"] = {a: lam} if a == b else {a: lam, b: round(1 - lam, 6)}
    return row


#: (text, lambda, parents, soft, step-1 reply, step-2 reply or None, label_text, verdict)
INTRUSION_CASES = [
    (
        "Where is Bighorn?",
        0.7,
        ("LOC", "ENTY"),
        True,
        "Yes.",
        None,
        "70% Location and 30% Entity",
        "none",
    ),
    (
        "What do kangaroos eat?",
        0.3,
        ("LOC", "ENTY"),
        True,
        "no",
        "Entity",
        "70% Entity and 30% Location",
        "inside",
    ),
    ("How fast is a taxi?", 0.9, ("NUM", "NUM"), True, "No", "Location", "Numeric", "outside"),
    (
        "What is this planet?",
        0.55,
        ("LOC", "NUM"),
        True,
        "NO!",
        "I cannot tell",
        "55% Location and 45% Numeric",
        "unjudged",
    ),
    (
        "Who wrote it?",
        0.95,
        ("HUM", "DESC"),
        True,
        "Maybe",
        None,
        "95% Human and 5% Description",
        "unjudged",
    ),
    (
        "What is the motto?",
        0.5,
        ("DESC", "HUM"),
        False,
        "Output: yes",
        None,
        "50% Description and 50% Human",
        "none",
    ),
]


@pytest.fixture
def mixed_file(tmp_path: Path) -> Path:
    rows = [
        mixed_row(i, text, lam, a, b, soft)
        for i, (text, lam, (a, b), soft, *_rest) in enumerate(INTRUSION_CASES)
    ]
    return write_jsonl(tmp_path / "mixed.jsonl", rows)


def test_label_text_folding_and_yes_no_parsing() -> None:
    from augtool.audit.intrusion import (
        Mixed,
        by_lambda_bin,
        label_text,
        parse_yes_no,
        verdict,
    )
    from augtool.core.generation.labels import load_label_set
    from augtool.data import Record

    trec = load_label_set(TREC_LABELS)
    assert label_text({"LOC": 0.7, "ENTY": 0.3}, trec) == "70% Location and 30% Entity"
    assert label_text({"LOC": 0.3, "ENTY": 0.7}, trec) == "70% Entity and 30% Location"
    assert label_text({"NUM": 1.0}, trec) == "Numeric"
    assert label_text({"NUM": 0.999, "LOC": 0.001}, trec) == "Numeric"  # 0% left out
    assert label_text({"A": 0.335, "B": 0.335, "C": 0.33}, trec) == "34% A, 33% B and 33% C"
    for reply, answer in (
        ("Yes", "Yes"), ("yes.", "Yes"), ('"No"', "No"), ("NO!", "No"),
        ("Output: Yes", "Yes"), ("No, it does not.", "No"), ("Maybe", None),
        ("", None), ("not yes or no", None),
    ):  # fmt: skip
        assert parse_yes_no(reply) == answer, reply

    mixed = Mixed(Record(id="x", text="t"), 0.3, "LOC", "ENTY", {"LOC": 0.3, "ENTY": 0.7})
    assert mixed.folded == pytest.approx(0.7)
    assert verdict(mixed, "Yes", None) == "none"
    assert verdict(mixed, "No", "LOC") == "inside" and verdict(mixed, "No", "ENTY") == "inside"
    assert verdict(mixed, "No", "NUM") == "outside"
    assert verdict(mixed, "No", None) == "unjudged" and verdict(mixed, None, None) == "unjudged"

    # lambda and 1 - lambda land in the same bin of [0.5, 1].
    results = [
        {"folded_lambda": max(lam, 1 - lam), "verdict": "none"}
        for lam in (0.3, 0.7, 0.5, 1.0, 0.0, 0.95)
    ]
    bins = by_lambda_bin(results, 5)
    assert [b["lambda"] for b in bins][0] == [0.5, 0.6] and bins[-1]["lambda"] == [0.9, 1.0]
    assert [b["n"] for b in bins] == [1, 0, 2, 0, 3]


def test_intrusion_follows_appendix_a4(mixed_file: Path, tmp_path: Path) -> None:
    from augtool.core.generation.labels import load_label_set
    from augtool.core.generation.prompts import INTRUSION_LABEL, INTRUSION_MATCH

    trec = load_label_set(TREC_LABELS)
    with StubOpenAIServer() as server:
        for text, *_middle, first, second, _shown, _verdict in INTRUSION_CASES:
            server.script(Reply(first), when=f'Determine if the sentence "{text}"')
            if second is not None:
                server.script(Reply(second), when=f'Choose one label for the sentence "{text}"')
        out = tmp_path / "intrusion.json"
        result = run_cli(
            "invmix", "intrusion", mixed_file, "--judge", "openai:judge",
            "--base-url", server.base_url, "--labels", TREC_LABELS, "-o", out,
            "--plot", tmp_path / "i.png", "--concurrency", 1,
        )  # fmt: skip
        sent = [r["body"]["messages"][-1]["content"] for r in server.requests]
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    assert [r["verdict"] for r in report["rows"]] == [c[-1] for c in INTRUSION_CASES]
    assert [r["label_text"] for r in report["rows"]] == [c[-2] for c in INTRUSION_CASES]
    assert [r["judged_label"] for r in report["rows"]] == [None, "ENTY", "LOC", None, None, None]

    # Step 1 for every row, verbatim; step 2 only for the rows answered "No".
    expected = [
        INTRUSION_MATCH.render(text=c[0], label_text=c[-2])[-1]["content"] for c in INTRUSION_CASES
    ]
    expected += [
        INTRUSION_LABEL.render(text=c[0], label_map=trec.label_map())[-1]["content"]
        for c in INTRUSION_CASES
        if c[4].lower().strip("!") == "no"
    ]
    assert sorted(sent) == sorted(expected)
    assert 'in "Description, Numeric, Entity, Location, Human, Abbreviation".' in expected[-1]

    assert report["counts"] == {"none": 2, "inside": 1, "outside": 1, "unjudged": 2}
    assert report["intrusion_rate"] == 0.5 and report["inside_share"] == 0.5
    assert report["sample"] == {"rows": 6, "judged": 6, "seed": 0}
    assert [b["lambda"] for b in report["bins"]] == [
        [0.5, 0.6], [0.6, 0.7], [0.7, 0.8], [0.8, 0.9], [0.9, 1.0]
    ]  # fmt: skip
    assert [b["n"] for b in report["bins"]] == [2, 0, 2, 0, 2]  # 0.3 folds onto 0.7
    assert report["prompts"]["match_template"]["verbatim"] is True
    assert (tmp_path / "i.png").stat().st_size > 1000


def test_intrusion_sample_styles_and_bad_input(mixed_file: Path, tmp_path: Path) -> None:
    import random

    out = tmp_path / "i.json"
    base = ("invmix", "intrusion", mixed_file, "--judge", "openai:j", "-o", out, "--overwrite")
    with StubOpenAIServer() as server:
        url = ("--base-url", server.base_url)
        server.script(*[Reply("Yes")] * 3)
        result = run_cli(*base, *url, "--sample", 3, "--seed", 4, "--prompt-style", "augtool")
        assert result.exit_code == 0, result.stderr
        report = json.loads(out.read_text())
        chosen = sorted(random.Random(4).sample(range(6), 3))
        assert [r["id"] for r in report["rows"]] == [f"invmix-{i}" for i in chosen]
        assert report["sample"] == {"rows": 6, "judged": 3, "seed": 4}
        sent = [r["body"]["messages"][-1]["content"] for r in server.requests]
        assert all("Does the text carry that mixed label?" in text for text in sent)
        raw = [  # no --labels: the label names as written
            "70% LOC and 30% ENTY", "70% ENTY and 30% LOC", "NUM",
            "55% LOC and 45% NUM", "95% HUM and 5% DESC", "50% DESC and 50% HUM",
        ]  # fmt: skip
        assert sorted(r["label_text"] for r in report["rows"]) == sorted(raw[i] for i in chosen)
        assert all(any(f'"{raw[i]}"' in text for text in sent) for i in chosen)

        # Replacement prompts: the paper's placeholders are accepted in files.
        match = tmp_path / "match.txt"
        match.write_text("MATCH {text} as {label_text}? Yes or No.")
        label = tmp_path / "label.yaml"
        label.write_text('user: "LABEL {text} from {label_map}"\n')
        server.requests.clear()
        server.script(*[Reply("No")] * 6, *[Reply("ENTY")] * 6)
        args = ("--match-prompt-file", match, "--label-prompt-file", label, "--sample", 0)
        result = run_cli(*base, *url, *args, "--concurrency", 1)
        assert result.exit_code == 0, result.stderr
        sent = [r["body"]["messages"][-1]["content"] for r in server.requests]
        assert sum(t.startswith("MATCH ") for t in sent) == 6
        assert sum(t.startswith("LABEL ") for t in sent) == 6
        prompts = json.loads(out.read_text())["prompts"]
        assert prompts["match_template"]["source"] == str(match)

    def error(*extra: object):
        return run_cli(*base, "--base-url", "http://127.0.0.1:9/v1", *extra)

    unknown = tmp_path / "unknown.txt"
    unknown.write_text("Is {sentence} {label_text}?")
    assert_one_line_error(
        error("--match-prompt-file", unknown),
        "--match-prompt-file",
        "unknown placeholder(s) {sentence}",
    )
    missing = tmp_path / "missing.txt"
    missing.write_text('Is "{text}" right? Yes or No.')
    assert_one_line_error(
        error("--match-prompt-file", missing), "--match-prompt-file", "{label_text}"
    )
    no_labels = tmp_path / "nolabels.txt"
    no_labels.write_text("Label {text}.")
    assert_one_line_error(
        error("--label-prompt-file", no_labels), "--label-prompt-file", "{label_map}"
    )
    other = write_jsonl(tmp_path / "labels.json", [])
    other.write_text('["LOC", "ENTY"]')
    assert_one_line_error(
        error("--labels", other), "--labels", "DESC, HUM, NUM", "it names: LOC, ENTY"
    )
    assert_one_line_error(error("--sample", -1), "--sample", "at least 0")
    assert_one_line_error(error("--prompt-style", "fancy"), "--prompt-style")
    assert_one_line_error(error("--scoring", "loglik"), "--scoring", "loglik needs a local model")


def test_intrusion_with_a_local_judge_scores_yes_no_and_labels(
    trained: Path, corpus: Path, inversion_lm: Path, tmp_path: Path
) -> None:
    aug = tmp_path / "aug.jsonl"
    result = run_cli(
        "invmix", "generate", corpus, "-o", aug, "--model", trained, "--n", 6,
        "--pairs", "inter-class", "--keep-duplicates",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "i.json"
    result = run_cli("invmix", "intrusion", aug, "--judge", f"hf:{inversion_lm}", "-o", out)
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["scoring"] == "loglik" and report["n"] == 6
    for row in report["rows"]:
        match = row["evidence"]["match"]
        assert match["method"] == "loglik" and set(match["scores"]) == {"Yes", "No"}
        assert row["match"] == max(match["scores"], key=match["scores"].get)
        if row["match"] == "No":
            scores = row["evidence"]["label"]["scores"]
            assert set(scores) == {"even", "odd"} and row["judged_label"] in scores
            assert row["verdict"] == "inside"  # both labels are parents here
        else:
            assert row["verdict"] == "none" and row["evidence"]["label"] is None


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
        ("--alpha", 0, "--alpha: must be greater than 0"),
        ("--lam", 1.5, "--lam: must be between 0 and 1"),
        ("--plot", tmp_path / "map.gif", "--plot: " + f"{tmp_path / 'map.gif'}: '.gif' is not"),
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
    assert not (tmp_path / "g.jsonl").exists()
    result = run_cli(
        "invmix", "reconstruct", corpus, "--model", trained, "-o", out, "--plot", out / "r.html"
    )
    assert_one_line_error(result, "'.html' is not a plot format (use .png, .jpg")

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
    # Eq. 12: the cell's task model continued from the refined theta* of its own sample.
    theta = Path(cell["init_from"]["path"])
    assert theta.name == "theta" and theta.parent.name.startswith("invmix-")
    assert cell["init_from"]["labels"] == ["even", "odd"]
    assert json.loads((theta / "augtool_model.json").read_text())["train_config"]["epochs"] == 1
    log = (run / "logs" / "toy__k2__s1__invmix.log").read_text()
    assert f"training continues from {theta}" in log
    assert "init_from" not in json.loads((run / "cells" / "toy__k2__s1__base.json").read_text())

    from augtool.bench.methods import InvmixMethod

    assert InvmixMethod().continues_training({})
    assert not InvmixMethod().continues_training({"init_from_refined": False})
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace(str(trained), str(tmp_path / "missing")))
    assert_one_line_error(
        run_cli("bench", bad, "-o", tmp_path / "run2"), "methods.invmix", "no such folder"
    )


def test_a_relative_llm_path_is_saved_absolute(
    tiny_st: Path, tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adaptor trained with ``--llm hf:<relative folder>`` loads from another folder."""
    from augtool.core.inversion.model import InversionModel

    monkeypatch.chdir(tiny_llama.parent)
    model = InversionModel.create(str(tiny_st), f"hf:{tiny_llama.name}")
    assert model.llm_info["spec"] == f"hf:{tiny_llama.resolve()}"
    model.save(tmp_path / "adaptor")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = InversionModel.load(tmp_path / "adaptor", device="cpu")
    assert loaded.llm_info["fingerprint"] == model.llm_info["fingerprint"]
