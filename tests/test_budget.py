"""--max-minutes: a training time budget that stops the decoder, warm-LM and adaptor
trainers where it runs out, saves the model as it stands, is carried across a resume, and
(for the decoder) is shared by the inversion and correction epochs. A fake clock makes the
stopping point exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl

from augtool.core import budget as budget_module
from augtool.core.budget import STOPPED_BY_BUDGET, TimeBudget
from augtool.core.inversion.decoder_train import DecoderConfig, train_decoder

TEXTS = [r["text"] for r in read_jsonl(EXAMPLES / "intents-train.jsonl")][:16]


class FakeClock:
    """``time.monotonic`` that moves ``tick`` seconds each time it is read."""

    def __init__(self, tick: float) -> None:
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(1.0)
    monkeypatch.setattr(budget_module.time, "monotonic", fake)
    return fake


def test_the_budget_counts_earlier_runs_and_splits_into_shares(clock: FakeClock) -> None:
    budget = TimeBudget(1.0, spent=50.0)  # one minute, 50 s spent before a resume
    assert budget.limit == 60.0 and budget.share(0.5) == 30.0
    assert budget.exhausted(30.0)  # the 50 s already spent are past a 30 s share
    assert not budget.exhausted()
    clock.now += 20
    assert budget.exhausted()
    assert TimeBudget(None).share(0.5) is None and not TimeBudget(None).exhausted()


def test_decoder_training_stops_each_phase_at_its_share_of_the_budget(
    tiny_st: Path, tmp_path: Path, clock: FakeClock
) -> None:
    cfg = DecoderConfig(
        encoder=str(tiny_st),
        num_tokens=2,
        epochs=2,
        correction_epochs=2,
        batch_size=4,
        max_length=8,
        save_every=0,
        device="cpu",
        max_minutes=0.2,  # 12 fake seconds: 6 for inversion, the rest for correction
    )
    result = train_decoder(TEXTS, cfg, tmp_path / "decoder")
    phases = [record["phase"] for record in result.history]
    assert phases[0] == "inversion" and phases[-1] == "correction"
    stopped = [r for r in result.history if r.get("stopped") == STOPPED_BY_BUDGET]
    assert [r["phase"] for r in stopped] == ["inversion", "correction"]
    assert result.history[-1]["step"] < 4 * 4  # 4 steps per epoch, 4 epochs unbudgeted
    assert 12 <= result.seconds < 20
    assert (tmp_path / "decoder" / "augtool_decoder.json").is_file()


def test_an_unbudgeted_run_is_unchanged(tiny_st: Path, tmp_path: Path) -> None:
    cfg = DecoderConfig(
        encoder=str(tiny_st), num_tokens=2, epochs=1, batch_size=8, max_length=8, device="cpu"
    )
    result = train_decoder(TEXTS, cfg, tmp_path / "decoder")
    assert [r["step"] for r in result.history] == [2]
    assert "stopped" not in result.history[0]


def test_warm_lm_stops_at_the_budget_and_records_it(
    tiny_model_store: dict[str, Path], tmp_path: Path, clock: FakeClock
) -> None:
    out = tmp_path / "lm"
    result = run_cli(
        "invmix", "warm-lm", EXAMPLES / "intents-unlabeled.jsonl", "-o", out,
        "--encoder", tiny_model_store["st"], "--device", "cpu", "--batch-size", 4,
        "--max-length", 16, "--epochs", 3, "--max-minutes", 0.1,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    info = json.loads((out / "warm_lm.json").read_text())
    assert info["history"][-1]["stopped"] == STOPPED_BY_BUDGET
    assert len(info["history"]) == 1 and 6 <= info["seconds"] < 10
    assert info["config"]["max_minutes"] == 0.1


def test_adaptor_training_stops_at_the_budget(
    tiny_model_store: dict[str, Path], tiny_llama: Path, tmp_path: Path, clock: FakeClock
) -> None:
    out = tmp_path / "inverter"
    result = run_cli(
        "invmix", "train-adaptor", EXAMPLES / "intents-unlabeled.jsonl", "-o", out,
        "--encoder", tiny_model_store["st"], "--llm", f"hf:{tiny_llama}", "--device", "cpu",
        "--batch-size", 4, "--epochs", 2, "--max-minutes", 0.05,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    history = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(history) == 1 and history[0]["stopped"] == STOPPED_BY_BUDGET


@pytest.mark.parametrize("command", [("pinr", "train-decoder"), ("invmix", "warm-lm")])
def test_a_budget_that_is_not_positive_is_refused(command: tuple[str, str], tmp_path: Path):
    result = run_cli(
        *command, EXAMPLES / "intents-unlabeled.jsonl", "-o", tmp_path / "x", "--max-minutes", 0
    )
    assert_one_line_error(result, "--max-minutes", "must be greater than 0")
