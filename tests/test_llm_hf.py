"""The hf: backend on a tiny local Llama: batched seeded generation, scoring, and the
llm commands end to end through the CLI (including log-likelihood labelling on a model
trained here to prefer one label)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl, write_jsonl

from augtool.core.generation import GenerationParams, load_llm
from augtool.core.generation.hf_backend import HFBackend
from augtool.errors import ModelError

PROMPTS = [
    "Where is my parcel?",
    [{"role": "user", "content": "My card was charged twice"}],
    "app crashes",
    "how do I change my email address on the account page",
]
LABELS = ["billing", "shipping", "account", "technical"]


def test_sampling_is_seeded_per_request_not_per_batch(tiny_llama: Path) -> None:
    llm = load_llm(f"hf:{tiny_llama}", cache=False, device="cpu")
    params = GenerationParams(max_new_tokens=12, temperature=0.9, top_p=0.95)
    seeds = [11, 12, 13, 14]
    together = llm.generate(PROMPTS, params, seeds)
    llm.batch_size = 1
    alone = llm.generate(PROMPTS, params, seeds)
    assert together == alone
    assert all(isinstance(text, str) and text for text in together)
    assert (
        llm.generate(PROMPTS[:1], params, [99]) != together[:1]
        or llm.generate(PROMPTS[:1], params, [98]) != together[:1]
    )


def test_greedy_matches_transformers_generate(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    llm = load_llm(f"hf:{tiny_llama}", cache=False)
    ours = llm.generate(["Where is my parcel?"], GenerationParams(10, temperature=0.0), [0])[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Where is my parcel?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    output = model.generate(**ids, max_new_tokens=10, do_sample=False)
    reference = tokenizer.decode(output[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert ours == reference.strip()


def test_option_scores_are_exact_log_likelihoods_under_left_padding(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    llm = load_llm(f"hf:{tiny_llama}", cache=False)
    assert isinstance(llm, HFBackend)
    llm.load()
    widths = []
    hook = llm._model.register_forward_hook(
        lambda module, args, kwargs, out: widths.append(
            (kwargs["input_ids"].shape[1], out.logits.shape[1])
        ),
        with_kwargs=True,
    )
    batched = llm.score(PROMPTS, LABELS)
    hook.remove()
    longest = max(
        len(llm.tokenizer(label, add_special_tokens=False)["input_ids"]) for label in LABELS
    )
    # Vocabulary logits only where an option token is predicted, not over the prompt:
    # the prompt pass keeps its last position, the option pass runs the options alone.
    assert widths[0][0] > 1 and widths[0][1] == 1
    assert widths[1:] == [(longest - 1, longest - 1)]
    llm.batch_size = 1
    single = llm.score(PROMPTS, LABELS)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    prefix = tokenizer(llm.render(PROMPTS[2]), add_special_tokens=False)["input_ids"]
    option = tokenizer("technical", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prefix + option])).logits[0]
    log_probs = torch.log_softmax(logits, dim=-1)
    expected = sum(float(log_probs[len(prefix) + i - 1, token]) for i, token in enumerate(option))
    assert abs(single[2][3].logprob - expected) < 1e-4
    for row_a, row_b in zip(batched, single, strict=True):
        for a, b in zip(row_a, row_b, strict=True):
            assert abs(a.logprob - b.logprob) < 1e-4 and a.tokens == b.tokens == b.tokens


def test_missing_local_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such folder"):
        load_llm("hf:./no/such/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot load LLM .*empty: "):
        load_llm(f"hf:{tmp_path / 'empty'}").check()


def test_cli_commands_end_to_end(tiny_llama: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", read_jsonl(EXAMPLES / "intents-train.jsonl")[:8])
    llm = ["--llm", f"hf:{tiny_llama}", "--max-new-tokens", 16]
    out = tmp_path / "rew.jsonl"
    result = run_cli("llm", "rewrite", train, "-o", out, *llm, "--n", 2, "--batch-size", 4)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert len(rows) == 16 and all(r["text"] for r in rows)
    again = run_cli("llm", "rewrite", train, "-o", tmp_path / "again.jsonl", *llm, "--n", 2)
    assert "0 requests, 16 from cache" in again.stdout
    assert (tmp_path / "again.jsonl").read_text() == out.read_text()

    result = run_cli(
        "llm",
        "generate",
        train,
        "-o",
        tmp_path / "gen.jsonl",
        *llm,
        "--per-label",
        2,
        "--topic",
        "support",
    )
    assert result.exit_code == 0, result.stderr
    assert len(read_jsonl(tmp_path / "gen.jsonl")) == 8
    result = run_cli("llm", "mix", train, "-o", tmp_path / "mix.jsonl", *llm, "--pairs", 4)
    assert result.exit_code == 0, result.stderr
    assert all("label_dist" in r for r in read_jsonl(tmp_path / "mix.jsonl"))

    dry = run_cli(
        "llm", "rewrite", train, "-o", tmp_path / "dry.jsonl", *llm, "--dry-run", "--no-cache"
    )
    assert dry.exit_code == 0 and "tokenizer" in dry.stdout
    assert not (tmp_path / "dry.jsonl").exists()


def _train_to_answer(model_dir: Path, answer: str, steps: int = 60) -> None:
    """Fine-tune the tiny Llama for a few seconds to reply ``answer`` to labelling prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from augtool.core.generation.labels import label_set_from
    from augtool.core.generation.prompts import LLM_LABEL
    from augtool.data import Record
    from augtool.methods.llm_baselines import label_prompt

    labels = label_set_from(LABELS, "test")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    texts = [row["text"] for row in read_jsonl(EXAMPLES / "intents-train.jsonl")]
    chats = [
        tokenizer.apply_chat_template(
            label_prompt(Record(id="x", text=t), labels, LLM_LABEL)
            + [{"role": "assistant", "content": answer}],
            tokenize=False,
        )
        for t in texts
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    torch.manual_seed(0)
    model.train()
    for step in range(steps):
        batch = tokenizer(
            chats[(step * 8) % len(chats) :][:8],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        labels_ids = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels_ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(model_dir)


def test_loglik_labelling_picks_the_label_a_trained_model_prefers(
    tiny_llama: Path, tmp_path: Path
) -> None:
    unlabeled = EXAMPLES / "intents-unlabeled.jsonl"
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(LABELS))
    before = tmp_path / "before.jsonl"
    assert (
        run_cli(
            "llm", "label", unlabeled, "-o", before, "--llm", f"hf:{tiny_llama}", "--labels", labels
        ).exit_code
        == 0
    )
    assert {r.get("label") for r in read_jsonl(before)} != {"technical"}

    _train_to_answer(tiny_llama, "technical")
    after = tmp_path / "after.jsonl"
    result = run_cli(
        "llm", "label", unlabeled, "-o", after, "--llm", f"hf:{tiny_llama}", "--labels", labels
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(after)
    assert len(rows) == 40 and {r["label"] for r in rows} == {"technical"}
    evidence = rows[0]["llm_label"]
    assert evidence["method"] == "loglik" and set(evidence["scores"]) == set(LABELS)
    assert max(evidence["scores"], key=evidence["scores"].get) == "technical"


def test_llm_bad_input(tiny_llama: Path, tmp_path: Path) -> None:
    train = EXAMPLES / "intents-train.jsonl"
    out = tmp_path / "o.jsonl"
    assert_one_line_error(
        run_cli("llm", "rewrite", train, "-o", out, "--llm", "foo:bar"),
        "unknown LLM backend 'foo'",
        "hf, openai",
    )
    assert_one_line_error(
        run_cli("llm", "rewrite", train, "-o", out, "--llm", "gpt-4o"),
        "--llm",
        "needs a backend prefix",
    )
    assert_one_line_error(run_cli("llm", "rewrite", train, "-o", out), "--llm: is required")
    prompt = tmp_path / "p.txt"
    prompt.write_text("Rewrite {sentence}")
    assert_one_line_error(
        run_cli(
            "llm", "rewrite", train, "-o", out, "--llm", f"hf:{tiny_llama}", "--prompt-file", prompt
        ),
        "--prompt-file",
        "unknown placeholder(s) {sentence}",
    )
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert_one_line_error(
        run_cli("llm", "label", train, "-o", out, "--llm", f"hf:{tiny_llama}", "--labels", empty),
        "label set is empty",
    )
    scalar = tmp_path / "scalar.json"
    scalar.write_text('"billing"')
    assert_one_line_error(
        run_cli("llm", "label", train, "-o", out, "--llm", f"hf:{tiny_llama}", "--labels", scalar),
        "expected a list of labels or a mapping",
    )
    broken = write_jsonl(tmp_path / "broken.jsonl", [{"text": "ok", "label": "a"}, "{nope"])
    assert_one_line_error(
        run_cli("llm", "rewrite", broken, "-o", out, "--llm", f"hf:{tiny_llama}"),
        f"{broken}:2",
        "invalid JSON",
    )
    assert_one_line_error(
        run_cli(
            "llm",
            "label",
            train,
            "-o",
            out,
            "--llm",
            "openai:m",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--labels",
            scalar,
            "--scoring",
            "loglik",
        ),
        "expected a list of labels",
    )
    labels = tmp_path / "l.json"
    labels.write_text('["a", "b"]')
    assert_one_line_error(
        run_cli("llm", "label", train, "-o", out, "--llm", f"hf:{tiny_llama}", "--labels", labels),
        "--labels",
        "the data has label(s) account, billing, shipping, technical",
    )
    labels.write_text('["billing", "shipping", "account", "technical"]')
    assert_one_line_error(
        run_cli(
            "llm",
            "label",
            train,
            "-o",
            out,
            "--llm",
            "openai:m",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--labels",
            labels,
            "--scoring",
            "loglik",
        ),
        "--scoring",
        "needs a local model",
    )
    assert not out.exists()
