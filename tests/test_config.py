"""Config dataclasses: checks, YAML loading, CLI precedence, and CLI options == fields."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from augtool.audit.config import AuditConfig
from augtool.cli.app import app
from augtool.core.config import build_config, config_fields
from augtool.core.encoders.job import EmbedConfig
from augtool.core.taskmodel.config import TrainConfig
from augtool.errors import AugtoolError, OptionError
from augtool.methods.backtranslation import BTConfig
from augtool.methods.coannotate.config import CoannotateConfig, MergeConfig, ReportConfig
from augtool.methods.eda import EDAConfig
from augtool.methods.invmix.config import (
    AdaptorConfig,
    IntrusionConfig,
    InvmixGenerateConfig,
    ReconstructConfig,
    RefineConfig,
    WarmLMConfig,
)
from augtool.methods.llm_baselines import GenerateConfig, LabelConfig, MixConfig, RewriteConfig
from augtool.methods.lmmixup.config import (
    BuildConfig,
    DistillConfig,
    GRPOTrainConfig,
    RateConfig,
    SFTTrainConfig,
)
from augtool.methods.pinr.config import CondenseConfig, EvaluateConfig, PinrDecoderConfig
from augtool.methods.topex.config import AugmentConfig, ExploreConfig, ScoreConfig

# Options that say where data comes from / goes, not how the method behaves.

IO_OPTIONS = {
    "files",
    "file",
    "output",
    "dev",
    "overwrite",
    "skip_invalid",
    "config",
    "checkpoint_every",
    "dry_run",
    "model",
    "adaptor",
    "plot",
    "compare",
    "folder",
    "as_json",
    "decoder",
    "reference",
    "decisions",
}

COMMANDS = [
    ("train", TrainConfig),
    ("embed", EmbedConfig),
    ("eda", EDAConfig),
    ("bt", BTConfig),
    ("llm rewrite", RewriteConfig),
    ("llm generate", GenerateConfig),
    ("llm mix", MixConfig),
    ("llm label", LabelConfig),
    ("invmix train-adaptor", AdaptorConfig),
    ("invmix refine", RefineConfig),
    ("invmix reconstruct", ReconstructConfig),
    ("invmix generate", InvmixGenerateConfig),
    ("invmix intrusion", IntrusionConfig),
    ("invmix warm-lm", WarmLMConfig),
    ("topex explore", ExploreConfig),
    ("topex score", ScoreConfig),
    ("topex augment", AugmentConfig),
    ("pinr train-decoder", PinrDecoderConfig),
    ("pinr condense", CondenseConfig),
    ("pinr evaluate", EvaluateConfig),
    ("lmmixup build", BuildConfig),
    ("lmmixup sft", SFTTrainConfig),
    ("lmmixup grpo", GRPOTrainConfig),
    ("lmmixup distill", DistillConfig),
    ("lmmixup rate", RateConfig),
    ("coannotate run", CoannotateConfig),
    ("coannotate merge", MergeConfig),
    ("coannotate report", ReportConfig),
    ("audit", AuditConfig),
]


@pytest.mark.parametrize(("command", "config_cls"), COMMANDS, ids=[c for c, _ in COMMANDS])
def test_cli_options_match_config_fields(command: str, config_cls: type) -> None:
    click_command = typer.main.get_command(app)
    for word in command.split():
        click_command = click_command.commands[word]
    options = {param.name for param in click_command.params} - IO_OPTIONS
    # a config may hold an input too (audit's --reference), so YAML can set it
    assert options == set(config_fields(config_cls)) - IO_OPTIONS
    assert set(config_fields(config_cls)) <= {param.name for param in click_command.params}


def test_post_init_checks_name_the_option() -> None:
    with pytest.raises(OptionError, match="--epochs: must be at least 1"):
        TrainConfig(epochs=0)
    with pytest.raises(OptionError, match="--alpha: must be (positive|greater than 0)"):
        TrainConfig(alpha=0)
    with pytest.raises(OptionError, match="--dtype"):
        EmbedConfig(dtype="int4")


def test_yaml_values_are_coerced_and_typed_options_win(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lr: 2e-5\nepochs: '7'\nmixup: yes\nbatch-size: 8\n")
    config = build_config(
        TrainConfig,
        {"epochs": 3, "lr": 5e-5, "mixup": False},
        explicit={"epochs"},
        config_file=path,
    )
    assert config.lr == 2e-5 and config.mixup is True and config.batch_size == 8
    assert config.epochs == 3  # typed on the command line: beats the file


def test_bad_config_files_are_clear_errors(tmp_path: Path) -> None:
    unknown = tmp_path / "u.yaml"
    unknown.write_text("epochs: 2\nlearning_rate: 1\n")
    with pytest.raises(AugtoolError, match="unknown option\\(s\\) learning_rate"):
        build_config(TrainConfig, {}, config_file=unknown)
    wrong = tmp_path / "w.yaml"
    wrong.write_text("epochs: many\n")
    with pytest.raises(OptionError, match="--epochs: expected int, got 'many'"):
        build_config(TrainConfig, {}, config_file=wrong)
    broken = tmp_path / "b.yaml"
    broken.write_text("epochs: [1,\n")
    with pytest.raises(AugtoolError, match="b.yaml"):
        build_config(TrainConfig, {}, config_file=broken)
    with pytest.raises(OptionError, match="--config: .*file not found"):
        build_config(TrainConfig, {}, config_file=tmp_path / "missing.yaml")
