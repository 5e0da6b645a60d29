"""The options of ``augtool pinr train-decoder`` (kept apart from the torch code that
runs them, so the CLI imports without torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from augtool.core.config import check
from augtool.core.hub import DEFAULT_ENCODER, ENCODER_HELP


@dataclass
class DecoderConfig:
    """Train an embedding-to-text decoder (vec2text) for a frozen sentence encoder."""

    seq2seq: str | None = field(
        default=None,
        metadata={
            "help": "Seq2seq model to fine-tune (hub id or local folder, T5-style; "
            "google-t5/t5-base is vec2text's) instead of warm-starting from the encoder."
        },
    )
    init_from_encoder: bool = field(
        default=False,
        metadata={
            "help": "Build the generator from the encoder's own BERT weights (bert2bert: "
            "causal decoder with new cross-attention, LM head tied to the word "
            "embeddings); the default when --seq2seq is not given. BERT-family "
            "encoders only."
        },
    )
    encoder: str = field(default=DEFAULT_ENCODER, metadata={"help": ENCODER_HELP})
    prefix: str = field(
        default="",
        metadata={
            "help": "Task prompt put before every text before embedding (psi(x) = "
            "encoder(prefix + x)); recorded in the decoder, condense reuses it."
        },
    )
    num_tokens: int = field(
        default=16, metadata={"help": "Pseudo-tokens the embedding is projected to."}
    )
    epochs: int = field(default=5, metadata={"help": "Epochs training the inversion."})
    batch_size: int = field(default=32, metadata={"help": "Texts per training step."})
    grad_accum: int = field(
        default=1,
        metadata={
            "help": "Gradient accumulation: each optimizer step trains on N micro-batches of "
            "--batch-size texts (one batch of N x batch size, in less memory); under "
            "`accelerate launch` the processes share each step's texts."
        },
    )
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate."})
    correction_epochs: int = field(
        default=0,
        metadata={"help": "Extra epochs training the corrector on the model's own hypotheses."},
    )
    max_length: int = field(
        default=64, metadata={"help": "Longest target text, in tokens (longer ones are cut)."}
    )
    save_every: int = field(
        default=500, metadata={"help": "Checkpoint every this many steps (0: epoch ends only)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of initialisation, order and dropout."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    max_samples: int | None = field(
        default=None, metadata={"help": "Train on a seeded random subset of this many texts."}
    )
    max_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Training time budget in minutes (resumed runs included), shared by "
            "the inversion and correction epochs in proportion to their counts; the "
            "decoder is saved as it stands when it runs out."
        },
    )
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})

    def __post_init__(self) -> None:
        check(
            self.seq2seq is None or bool(self.seq2seq.strip()),
            "seq2seq",
            "must name a model (leave it out to warm-start from the encoder)",
        )
        check(
            not (self.seq2seq and self.init_from_encoder),
            "init_from_encoder",
            "and --seq2seq are mutually exclusive: the generator is either warm-started "
            "from the encoder or the --seq2seq model, not both",
        )
        check(bool(self.encoder), "encoder", "must name an encoder")
        check(self.num_tokens >= 1, "num_tokens", f"must be at least 1 (got {self.num_tokens})")
        check(self.epochs >= 1, "epochs", f"must be at least 1 (got {self.epochs})")
        check(self.batch_size >= 1, "batch_size", f"must be at least 1 (got {self.batch_size})")
        check(self.grad_accum >= 1, "grad_accum", f"must be at least 1 (got {self.grad_accum})")
        check(self.lr > 0, "lr", f"must be positive (got {self.lr})")
        check(self.correction_epochs >= 0, "correction_epochs", "must be >= 0")
        check(self.max_length >= 2, "max_length", f"must be at least 2 (got {self.max_length})")
        check(self.save_every >= 0, "save_every", "must be >= 0 (0: epoch ends only)")
        check(
            self.max_samples is None or self.max_samples >= 1,
            "max_samples",
            f"must be at least 1 (got {self.max_samples})",
        )
        check(self.max_minutes is None or self.max_minutes > 0, "max_minutes", "must be positive")
        check(bool(self.text_field), "text_field", "must not be empty")

    @property
    def warm_start(self) -> bool:
        """True when the generator is warm-started from the encoder (no ``seq2seq``)."""
        return self.seq2seq is None
