"""An embedding-to-text decoder (vec2text, Morris et al. 2023) for PInR particles.

A sentence embedding ``e`` is projected by an MLP to ``num_tokens`` pseudo-token vectors
that a seq2seq model reads as the ``inputs_embeds`` of its encoder; its decoder writes the
text. The seq2seq model is either a pretrained T5-style model (``seq2seq``, vec2text's
choice) or, by default, warm-started from the sentence encoder's own BERT checkpoint
(bert2bert, see :mod:`augtool.core.inversion.warm_start`). The sentence encoder stays
frozen: the decoder is trained on ``(x, psi(x))`` pairs and is only valid for the encoder
it was trained with (checked by fingerprint).

Correction (vec2text's corrector): given ``e``, a hypothesis ``x_hat`` and its embedding
``e_hat = psi(x_hat)``, the model reads pseudo-tokens of ``[e, e_hat, e - e_hat]`` followed
by the token embeddings of ``x_hat`` and writes an improved text. Each step keeps, per row,
the hypothesis whose embedding is closest (cosine) to ``e``.

Saved as a folder::

    augtool_decoder.json      format version, num_tokens, projection shape, encoder info,
                              seq2seq source, max_length, init_from_encoder (how a
                              warm-started generator was built; absent for a T5) and the
                              training config
    projection.safetensors    the projection MLPs and their input centring and scale
    seq2seq/                  the fine-tuned seq2seq model and its tokenizer (save_pretrained)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augtool.core.encoders import Encoder, load_encoder
from augtool.core.inversion.model import encoder_info_of
from augtool.core.model_errors import model_load_errors
from augtool.core.progress import SILENT, Reporter
from augtool.errors import AugtoolError, ModelError, OptionError

DECODER_FILE = "augtool_decoder.json"
PROJECTION_FILE = "projection.safetensors"
SEQ2SEQ_DIR = "seq2seq"
FORMAT_VERSION = 1


class PseudoTokens(nn.Module):
    """``Linear(d, hidden) -> GELU -> Linear(hidden, k * m)``, reshaped to ``(B, k, m)``."""

    def __init__(self, input_dim: int, hidden: int, num_tokens: int, model_dim: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.model_dim = model_dim
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden), nn.GELU(), nn.Linear(hidden, num_tokens * model_dim)
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings).view(-1, self.num_tokens, self.model_dim)


class DecoderProjection(nn.Module):
    """Sentence embeddings -> pseudo-tokens of the seq2seq encoder.

    ``embedding`` maps the target ``e`` (used alone for inversion, first for correction);
    the corrector's ``hypothesis`` and ``difference`` MLPs map ``e_hat`` and ``e - e_hat``,
    which live at other scales than ``e`` and so get their own weights (as in vec2text).
    """

    def __init__(self, encoder_dim: int, model_dim: int, num_tokens: int, hidden: int) -> None:
        super().__init__()
        self.encoder_dim = encoder_dim
        self.model_dim = model_dim
        self.num_tokens = num_tokens
        self.hidden = hidden
        # A fixed centring and scale of the inputs (identity until set from training data):
        # anisotropic encoders put all texts in a narrow cone that the MLP would first
        # have to learn to open up.
        self.register_buffer("center", torch.zeros(encoder_dim))
        self.register_buffer("scale", torch.ones(()))
        self.embedding = PseudoTokens(encoder_dim, hidden, num_tokens, model_dim)
        self.hypothesis = PseudoTokens(encoder_dim, hidden, num_tokens, model_dim)
        self.difference = PseudoTokens(encoder_dim, hidden, num_tokens, model_dim)

    @torch.no_grad()
    def fit_inputs(self, embeddings: torch.Tensor) -> None:
        """Centre inputs on the mean of ``embeddings`` and scale them to unit variance per
        dimension on average (one scalar: the geometry of the space is kept)."""
        embeddings = embeddings.to(self.center.device, torch.float32)
        center = embeddings.mean(dim=0)
        spread = (embeddings - center).pow(2).mean().sqrt()
        self.set_input_stats(center, spread, len(embeddings))

    def set_input_stats(
        self, center: torch.Tensor | np.ndarray, spread: torch.Tensor | float, count: int
    ) -> None:
        """What :meth:`fit_inputs` sets, from statistics computed elsewhere (a trainer
        streams them from the embeddings on disk): the mean of ``count`` embeddings and
        the root mean square of their centred values over all dimensions."""
        spread = torch.as_tensor(spread, dtype=torch.float32, device=self.center.device)
        self.center.copy_(torch.as_tensor(center, dtype=torch.float32))
        self.scale.copy_(1.0 / spread.clamp_min(1e-6) if count > 1 else 1.0)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Inversion input: ``(B, num_tokens, model_dim)``."""
        return self.embedding((embeddings - self.center) * self.scale)

    def correction(self, embeddings: torch.Tensor, hypotheses: torch.Tensor) -> torch.Tensor:
        """Corrector input: ``(B, 3 * num_tokens, model_dim)`` for ``[e, e_hat, e - e_hat]``."""
        return torch.cat(
            [
                self.embedding((embeddings - self.center) * self.scale),
                self.hypothesis((hypotheses - self.center) * self.scale),
                self.difference((embeddings - hypotheses) * self.scale),
            ],
            dim=1,
        )

    def shape(self) -> dict[str, int]:
        return {
            "encoder_dim": self.encoder_dim,
            "model_dim": self.model_dim,
            "num_tokens": self.num_tokens,
            "hidden": self.hidden,
        }


def load_seq2seq(source_name: str, *, what: str = "seq2seq model") -> tuple[Any, Any]:
    """``(model, tokenizer)`` of an encoder-decoder model (local folder or hub id)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from augtool.core.hub import loading, quiet_transformers, resolve_model_source
    from augtool.core.pretrained import LoadPlan, load_pretrained

    quiet_transformers()
    source = resolve_model_source(source_name, what)
    with loading(what, source_name):
        tokenizer = AutoTokenizer.from_pretrained(source)
        # Trained and run in float32 (a decoder is small; its training needs full
        # precision): loaded in it on the host, moved by the caller.
        model = load_pretrained(AutoModelForSeq2SeqLM, source, LoadPlan("cpu", torch.float32))
    if not getattr(model.config, "is_encoder_decoder", False):
        raise ModelError(f"{what} {source_name!r} is not an encoder-decoder model")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.eos_token_id is None:
        raise ModelError(f"{what} {source_name!r}: its tokenizer has no end-of-sequence token")
    if model.config.decoder_start_token_id is None:
        model.config.decoder_start_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


class EmbeddingDecoder:
    """Projection + seq2seq model + tokenizer, tied to one sentence encoder."""

    def __init__(
        self,
        projection: DecoderProjection,
        model: Any,
        tokenizer: Any,
        encoder_info: dict[str, Any],
        *,
        seq2seq_source: str,
        max_length: int = 64,
        device: str = "cpu",
        folder: Path | None = None,
        training: dict[str, Any] | None = None,
        init_from_encoder: dict[str, Any] | None = None,
    ) -> None:
        self.projection = projection
        self.model = model
        self.tokenizer = tokenizer
        self.encoder_info = encoder_info
        self.seq2seq_source = seq2seq_source
        self.max_length = max_length
        self.device = device
        self.folder = folder
        self.training = training
        #: How a warm-started generator was built (encoder, checkpoint folder, fingerprint).
        self.init_from_encoder = init_from_encoder

    @property
    def num_tokens(self) -> int:
        return self.projection.num_tokens

    @property
    def dimension(self) -> int:
        """Dimension of the sentence embeddings this decoder reads."""
        return self.projection.encoder_dim

    @classmethod
    def create(
        cls,
        seq2seq: str | None,
        encoder: Encoder | str,
        num_tokens: int = 16,
        device: str = "auto",
        *,
        max_length: int = 64,
        hidden: int | None = None,
        seed: int | None = None,
    ) -> EmbeddingDecoder:
        """A fresh decoder: an untrained projection in front of a pretrained seq2seq model
        (``seq2seq``), or with ``seq2seq=None`` in front of a seq2seq model warm-started
        from the encoder's own BERT checkpoint (bert2bert; BERT-family encoders only).

        ``hidden`` (the MLP width) defaults to the encoder's dimension, as in vec2text.
        """
        from augtool.core.device import resolve_device
        from augtool.core.inversion.warm_start import build_warm_seq2seq, warm_start_source

        if isinstance(encoder, str):
            encoder = load_encoder(encoder, device=device, dtype="float32")
        resolved = resolve_device(device)
        warm: dict[str, Any] | None = None
        if seq2seq is None:
            source = warm_start_source(encoder)
            check_warm_lengths(source.max_positions, num_tokens, max_length)
            if seed is not None:  # the new cross-attention weights are drawn at random
                torch.manual_seed(seed)
            model, tokenizer = build_warm_seq2seq(source)
            warm = source.describe(encoder)
            seq2seq_source = str(source.folder)
        else:
            model, tokenizer = load_seq2seq(seq2seq)
            seq2seq_source = seq2seq
        info = encoder_info_of(encoder)  # type: ignore[arg-type]
        model_dim = int(model.get_input_embeddings().embedding_dim)
        if seed is not None:
            torch.manual_seed(seed)
        projection = DecoderProjection(
            info["dimension"], model_dim, num_tokens, hidden or info["dimension"]
        )
        model.to(device=resolved, dtype=torch.float32)
        projection.to(resolved)
        decoder = cls(
            projection,
            model,
            tokenizer,
            info,
            seq2seq_source=seq2seq_source,
            max_length=max_length,
            device=resolved,
            init_from_encoder=warm,
        )
        decoder.eval()
        return decoder

    # -- modes and parameters ---------------------------------------------------------

    def train(self, mode: bool = True) -> EmbeddingDecoder:
        """Set training mode (dropout) on both the projection and the seq2seq model."""
        self.projection.train(mode)
        self.model.train(mode)
        return self

    def eval(self) -> EmbeddingDecoder:
        return self.train(False)

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters: the projection's, then the seq2seq model's."""
        return [*self.projection.parameters(), *self.model.parameters()]

    # -- inputs -----------------------------------------------------------------------

    def _as_tensor(self, embeddings: np.ndarray | torch.Tensor) -> torch.Tensor:
        tensor = torch.as_tensor(embeddings, dtype=torch.float32, device=self.device)
        if tensor.ndim != 2 or tensor.shape[1] != self.dimension:
            raise AugtoolError(
                f"the decoder reads {self.dimension}-dim embeddings, got shape "
                f"{tuple(tensor.shape)}"
            )
        return tensor

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of ``texts``, EOS-terminated and cut to ``max_length`` tokens in all."""
        eos = self.tokenizer.eos_token_id
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [list(seq[: max(self.max_length - 1, 0)]) + [eos] for seq in ids]

    def _pad(self, rows: list[list[int]], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(row) for row in rows)
        ids = torch.full((len(rows), width), fill, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[index, : len(row)] = 1
        return ids.to(self.device), mask.to(self.device)

    def encoder_inputs(
        self,
        embeddings: torch.Tensor,
        hypotheses: list[str] | None = None,
        hypothesis_embeddings: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs_embeds, attention_mask)`` of the seq2seq encoder.

        Inversion: the pseudo-tokens of ``e``. Correction: pseudo-tokens of
        ``[e, e_hat, e - e_hat]`` followed by the token embeddings of the hypotheses.
        """
        if hypotheses is None:
            pseudo = self.projection(embeddings)
            mask = torch.ones(pseudo.shape[:2], dtype=torch.long, device=self.device)
            return pseudo, mask
        if hypothesis_embeddings is None:
            raise AugtoolError("correction needs the embeddings of the hypotheses")
        if len(hypotheses) != len(embeddings):
            raise AugtoolError(f"{len(hypotheses)} hypotheses for {len(embeddings)} embeddings")
        hypothesis_embeddings = self._as_tensor(hypothesis_embeddings)
        pseudo = self.projection.correction(embeddings, hypothesis_embeddings)
        ids, token_mask = self._pad(self.token_ids(hypotheses), self.tokenizer.pad_token_id)
        tokens = self.model.get_input_embeddings()(ids)
        inputs = torch.cat([pseudo, tokens.to(pseudo.dtype)], dim=1)
        ones = torch.ones(pseudo.shape[:2], dtype=torch.long, device=self.device)
        return inputs, torch.cat([ones, token_mask], dim=1)

    # -- training and decoding --------------------------------------------------------

    def loss(
        self,
        embeddings: torch.Tensor,
        texts: list[str],
        hypotheses: list[str] | None = None,
        hypothesis_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced token cross-entropy of ``texts`` given their embeddings (and, for
        the corrector, the hypotheses and their embeddings)."""
        embeddings = self._as_tensor(embeddings)
        if len(texts) != len(embeddings):
            raise AugtoolError(f"{len(texts)} texts for {len(embeddings)} embeddings")
        inputs, mask = self.encoder_inputs(embeddings, hypotheses, hypothesis_embeddings)
        labels, label_mask = self._pad(self.token_ids(texts), self.tokenizer.pad_token_id)
        labels = labels.masked_fill(label_mask == 0, -100)
        with warnings.catch_warnings():
            # EncoderDecoderModel warns on every call with labels that its loss moved in
            # v4.12; the loss is computed as intended (token cross-entropy, -100 ignored).
            warnings.filterwarnings("ignore", "Version v4.12.0", FutureWarning)
            return self.model(inputs_embeds=inputs, attention_mask=mask, labels=labels).loss

    @torch.inference_mode()
    def _decode(
        self,
        embeddings: torch.Tensor,
        hypotheses: list[str] | None,
        hypothesis_embeddings: np.ndarray | None,
        *,
        max_new_tokens: int,
        num_beams: int,
        no_repeat_ngram_size: int = 0,
    ) -> list[str]:
        hyp = None if hypothesis_embeddings is None else self._as_tensor(hypothesis_embeddings)
        inputs, mask = self.encoder_inputs(embeddings, hypotheses, hyp)
        output = self.model.generate(
            inputs_embeds=inputs,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            decoder_start_token_id=self.model.config.decoder_start_token_id,
            use_cache=True,  # reuse earlier steps' keys and values
            no_repeat_ngram_size=no_repeat_ngram_size,
        )
        texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]

    def generate(
        self,
        embeddings: np.ndarray | torch.Tensor,
        *,
        max_new_tokens: int = 48,
        num_beams: int = 1,
        batch_size: int = 32,
        correction_steps: int = 0,
        encoder: Encoder | None = None,
        reporter: Reporter = SILENT,
        no_repeat_ngram_size: int = 0,
    ) -> list[str]:
        """Texts for sentence embeddings, decoded in batches (greedy or beam search).

        ``no_repeat_ngram_size`` > 0 forbids repeating any n-gram of that size within a text
        (weak decoders otherwise loop on one word).

        ``correction_steps`` > 0 runs the corrector that many times; it needs ``encoder``
        (the one the decoder was trained for) to embed the hypotheses. ``reporter`` gets a
        "decoding embeddings" task advanced per row.
        """
        if correction_steps > 0 and encoder is None:
            raise AugtoolError("decoder correction steps need the encoder to embed hypotheses")
        if encoder is not None:
            self.check_encoder(encoder)
        if (
            batch_size < 1
            or num_beams < 1
            or max_new_tokens < 1
            or correction_steps < 0
            or no_repeat_ngram_size < 0
        ):
            raise AugtoolError(
                "decoding needs batch_size, num_beams and max_new_tokens >= 1 and "
                "correction_steps >= 0"
            )
        if len(embeddings) == 0:
            return []
        vectors = self._as_tensor(embeddings)
        targets = vectors.detach().cpu().numpy()
        was_training = self.projection.training
        self.eval()
        advance = reporter.task("decoding embeddings", len(vectors))
        texts: list[str] = []
        try:
            for start in range(0, len(vectors), batch_size):
                chunk = vectors[start : start + batch_size]
                options = {
                    "max_new_tokens": max_new_tokens,
                    "num_beams": num_beams,
                    "no_repeat_ngram_size": no_repeat_ngram_size,
                }
                best = self._decode(chunk, None, None, **options)
                if correction_steps > 0:
                    assert encoder is not None
                    target = targets[start : start + batch_size]
                    best_embeddings = encoder.encode(best)
                    best_scores = _cosine(target, best_embeddings)
                    for _ in range(correction_steps):
                        proposed = self._decode(chunk, best, best_embeddings, **options)
                        proposed_embeddings = encoder.encode(proposed)
                        scores = _cosine(target, proposed_embeddings)
                        better = scores > best_scores
                        best = [
                            p if b else h for p, h, b in zip(proposed, best, better, strict=True)
                        ]
                        best_embeddings = np.where(
                            better[:, None], proposed_embeddings, best_embeddings
                        )
                        best_scores = np.maximum(scores, best_scores)
                texts.extend(best)
                advance(len(chunk))
        finally:
            self.train(was_training)
        return texts

    # -- encoder check, save, load ----------------------------------------------------

    def check_encoder(self, encoder: Encoder) -> None:
        """Refuse an encoder other than the one this decoder was trained for."""
        saved = self.encoder_info
        where = str(self.folder) if self.folder is not None else "(unsaved)"
        trained_prefix = saved.get("prefix", "")
        if encoder.name == saved.get("name") and encoder.prefix != trained_prefix:
            raise ModelError(
                f"decoder {where} was trained with the prompt prefix {trained_prefix!r}, "
                f"not {encoder.prefix!r} (leave --prefix out to use the decoder's)"
            )
        if encoder.fingerprint != saved.get("fingerprint"):
            raise ModelError(
                f"decoder {where} was trained for encoder {saved.get('name')} "
                f"(fingerprint {saved.get('fingerprint')}), not {encoder.name} "
                f"(fingerprint {encoder.fingerprint})"
            )
        dimension = getattr(encoder, "dimension", self.dimension)
        if dimension != self.dimension:  # pragma: no cover - implied by the fingerprint
            raise ModelError(
                f"decoder {where} reads {self.dimension}-dim embeddings; encoder "
                f"{encoder.name} gives {dimension}"
            )

    def save(self, folder: str | Path) -> Path:
        """Write the projection (safetensors), the seq2seq model and tokenizer
        (``save_pretrained``) and ``augtool_decoder.json``."""
        from safetensors.torch import save_model

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_model(self.projection, str(folder / PROJECTION_FILE))
        self.model.save_pretrained(folder / SEQ2SEQ_DIR)
        self.tokenizer.save_pretrained(folder / SEQ2SEQ_DIR)
        info: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "num_tokens": self.num_tokens,
            "projection": self.projection.shape(),
            "max_length": self.max_length,
            "encoder": self.encoder_info,
            "seq2seq": {"source": self.seq2seq_source, "path": SEQ2SEQ_DIR},
        }
        if self.init_from_encoder is not None:
            info["init_from_encoder"] = self.init_from_encoder
        if self.training is not None:
            info["training"] = self.training
        (folder / DECODER_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(
        cls, folder: str | Path, *, device: str = "auto", encoder: Encoder | None = None
    ) -> EmbeddingDecoder:
        """Load a folder written by :meth:`save`; with ``encoder``, check it is the one the
        decoder was trained for."""
        from safetensors.torch import load_model

        from augtool.core.device import resolve_device

        folder = Path(folder)
        path = folder / DECODER_FILE
        info = read_decoder_info(folder)
        try:
            shape = info["projection"]
            encoder_info = info["encoder"]
            version = int(info.get("format", 0))
            dims = [int(shape[k]) for k in ("encoder_dim", "model_dim", "num_tokens", "hidden")]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path}: unreadable ({exc})") from exc
        if version > FORMAT_VERSION:
            raise ModelError(
                f"{folder}: decoder format {version} is newer than this augtool reads "
                f"({FORMAT_VERSION}); upgrade augtool"
            )
        resolved = resolve_device(device)
        with model_load_errors(folder, "decoder"):
            model, tokenizer = load_seq2seq(str(folder / SEQ2SEQ_DIR), what="decoder seq2seq model")
            model_dim = int(model.get_input_embeddings().embedding_dim)
            if model_dim != dims[1]:
                raise ModelError(
                    f"{folder}: the projection writes {dims[1]}-dim pseudo-tokens but the "
                    f"seq2seq model takes {model_dim}-dim inputs"
                )
            projection = DecoderProjection(*dims)
            with model_load_errors(folder / PROJECTION_FILE, "weights"):
                load_model(projection, str(folder / PROJECTION_FILE))
        model.to(device=resolved, dtype=torch.float32)
        projection.to(resolved)
        decoder = cls(
            projection,
            model,
            tokenizer,
            encoder_info,
            seq2seq_source=str(info.get("seq2seq", {}).get("source", "")),
            max_length=int(info.get("max_length", 64)),
            device=resolved,
            folder=folder,
            training=info.get("training"),
            init_from_encoder=info.get("init_from_encoder"),
        )
        decoder.eval()
        if encoder is not None:
            decoder.check_encoder(encoder)
        return decoder


def check_warm_lengths(max_positions: int, num_tokens: int, max_length: int) -> None:
    """A warm-started BERT has ``max_positions`` positions: the corrector's encoder input
    (3 * num_tokens pseudo-tokens and a hypothesis) and the decoder's target must fit."""
    if 3 * num_tokens + max_length > max_positions or max_length + 1 > max_positions:
        raise OptionError(
            "max_length",
            f"the encoder's checkpoint has {max_positions} positions: 3 * --num-tokens "
            f"({3 * num_tokens}) + --max-length ({max_length}) must fit in them",
        )


def read_decoder_info(folder: str | Path) -> dict[str, Any]:
    """The ``augtool_decoder.json`` of a decoder folder (encoder info, shapes), read without
    loading any weights."""
    folder = Path(folder)
    path = folder / DECODER_FILE
    if not folder.is_dir():
        raise ModelError(f"decoder {str(folder)!r}: no such folder")
    if not path.is_file():
        raise ModelError(
            f"{folder}: not an embedding decoder folder (no {DECODER_FILE}; train one "
            "with train_decoder)"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(info, dict) or not isinstance(info.get("encoder"), dict):
        raise ModelError(f"{path}: unreadable (no encoder section)")
    return info
