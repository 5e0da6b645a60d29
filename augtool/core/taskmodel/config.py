"""The task model's training configuration (the options of ``augtool train``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from augtool.core.config import check
from augtool.core.device import DTYPES
from augtool.core.hub import DEFAULT_ENCODER, ENCODER_HELP, POOLING_HELP


@dataclass
class TrainConfig:
    """How to train the classifier every augmentation method is judged by."""

    encoder: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": ENCODER_HELP},
    )
    pooling: str | None = field(
        default=None,
        metadata={"help": POOLING_HELP},
    )
    max_length: int = field(default=128, metadata={"help": "Truncate texts to this many tokens."})
    freeze_encoder: bool = field(
        default=False,
        metadata={
            "help": "Keep the encoder frozen and train only the head (embeddings are "
            "computed once and cached)."
        },
    )
    head_hidden: int = field(
        default=256, metadata={"help": "Hidden size of the MLP head (0: a linear head)."}
    )
    dropout: float = field(default=0.1, metadata={"help": "Dropout before each head layer."})
    epochs: int = field(default=10, metadata={"help": "Training epochs."})
    batch_size: int = field(default=16, metadata={"help": "Training batch size."})
    grad_accum: int = field(
        default=1,
        metadata={
            "help": "Gradient accumulation: each optimizer step trains on N micro-batches "
            "of --batch-size rows (one batch of N x batch size, in less memory); under "
            "`accelerate launch` the processes share each step's rows."
        },
    )
    lr: float = field(default=5e-5, metadata={"help": "Learning rate of the encoder (AdamW)."})
    head_lr: float = field(default=1e-3, metadata={"help": "Learning rate of the head (AdamW)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(
        default=0.06, metadata={"help": "Fraction of steps with linear learning-rate warm-up."}
    )
    mixup: bool = field(
        default=False,
        metadata={
            "help": "Embedding Mixup: interpolate pooled sentence embeddings and their "
            "labels within each batch."
        },
    )
    alpha: float = field(default=0.4, metadata={"help": "Mixup: lambda ~ Beta(alpha, alpha)."})
    dev_fraction: float = field(
        default=0.0,
        metadata={
            "help": "Hold out this stratified fraction of the training data as dev set "
            "for early stopping (ignored when --dev is given)."
        },
    )
    patience: int = field(
        default=3,
        metadata={
            "help": "Early stopping: epochs without dev improvement before stopping "
            "(0: never stop early)."
        },
    )
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "Continue from a saved task model (an `augtool train` folder, or an "
            "`invmix refine` folder's theta*): its encoder and head are the starting "
            "weights, and its labels must cover the data's."
        },
    )
    seed: int = field(default=42, metadata={"help": "Random seed (same seed, same model)."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Autocast dtype on GPU: auto, float32, bfloat16 or float16 "
            "(weights stay float32)."
        },
    )
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        check(bool(self.encoder.strip()), "encoder", "must not be empty")
        check(self.max_length >= 8, "max_length", f"must be at least 8 (got {self.max_length})")
        check(self.head_hidden >= 0, "head_hidden", f"must be >= 0 (got {self.head_hidden})")
        check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1) (got {self.dropout})")
        check(self.epochs >= 1, "epochs", f"must be at least 1 (got {self.epochs})")
        check(self.batch_size >= 1, "batch_size", f"must be at least 1 (got {self.batch_size})")
        check(self.grad_accum >= 1, "grad_accum", f"must be at least 1 (got {self.grad_accum})")
        check(self.lr > 0, "lr", f"must be positive (got {self.lr})")
        check(self.head_lr > 0, "head_lr", f"must be positive (got {self.head_lr})")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0 (got {self.weight_decay})")
        check(
            0.0 <= self.warmup_ratio < 1.0,
            "warmup_ratio",
            f"must be in [0, 1) (got {self.warmup_ratio})",
        )
        check(self.alpha > 0, "alpha", f"must be positive (got {self.alpha})")
        check(
            0.0 <= self.dev_fraction < 1.0,
            "dev_fraction",
            f"must be in [0, 1) (got {self.dev_fraction})",
        )
        check(self.patience >= 0, "patience", f"must be >= 0 (got {self.patience})")
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
        check(
            self.init_from is None or bool(str(self.init_from).strip()),
            "init_from",
            "must name a model folder",
        )
