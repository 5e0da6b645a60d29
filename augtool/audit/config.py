"""The config of ``augtool audit`` (one dataclass, kept apart from the code that runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from augtool.core.config import check
from augtool.core.hub import DEFAULT_ENCODER
from augtool.methods.llm_baselines import LLMJudgeOptions, check_llm_options

#: The checks of the report, in report order.
CHECKS = ("label", "distribution", "diversity", "duplicates")
#: ``--fail-under`` scores: each is "higher is better" and in [0, 1].
GATES = {
    "label": "label fidelity: 1 - the share of judged rows whose label the judge doubts",
    "duplicates": "uniqueness: 1 - the share of rows that duplicate an original or another row",
    "novelty": "1 - the share of rows that copy an original or overlap it too much",
    "distinct_2": "distinct bigrams / all bigrams",
    "precision": "share of augmented rows inside the originals' k-NN manifold",
    "recall": "share of originals inside the augmented rows' k-NN manifold",
    "mauve": "MAUVE against the originals (mean over seeds)",
}
SCORINGS = ("auto", "loglik", "parse")
CLEANLAB = "cleanlab"
SPACES = ("auto", "encoder", "model")

_JUDGE_HELP = (
    "Who judges each row's label: cleanlab (offline, model-free: out-of-fold predictions "
    "on the reference plus the augmented rows, cleanlab finds likely label issues); "
    "model:DIR (a task model saved by `augtool train`: an issue when it predicts a label "
    "the row does not carry); hf:MODEL or openai:MODEL (an LLM asked inversedMixup's "
    "prompts: A.3's labelling prompt for hard labels, A.4's two-step intrusion prompts "
    "for mixed rows)."
)


def parse_gates(values: list[str]) -> dict[str, float]:
    """``["label=0.9", "duplicates=0.95"]`` (or one comma-separated string) as a dict."""
    gates: dict[str, float] = {}
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, number = part.partition("=")
            name = name.strip().replace("-", "_")
            check(
                bool(sep) and name in GATES,
                "fail_under",
                f"{part!r}: write NAME=VALUE with NAME one of {', '.join(GATES)}",
            )
            try:
                threshold = float(number)
            except ValueError:
                threshold = float("nan")
            check(
                0.0 <= threshold <= 1.0,
                "fail_under",
                f"{part!r}: the value must be a number between 0 and 1",
            )
            gates[name] = threshold
    return gates


@dataclass
class AuditConfig(LLMJudgeOptions):
    """One quality report of augmented (or condensed) sets against their originals."""

    reference: str = field(
        default="",
        metadata={"help": "The originals the augmented rows came from (any dataset format)."},
    )
    names: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated names of the audited files, in order (default: each "
            "file's name without its suffix)."
        },
    )
    checks: str = field(
        default=",".join(CHECKS),
        metadata={"help": f"Comma-separated checks to run: {', '.join(CHECKS)}."},
    )
    judge: str = field(default=CLEANLAB, metadata={"help": _JUDGE_HELP})
    labels: str | None = field(
        default=None,
        metadata={
            "help": "LLM judge: labels file (names, or name to description) for the label "
            "texts its prompts show; default: the reference's labels as written."
        },
    )
    encoder: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": "Sentence encoder of the embeddings every check and the map use."},
    )
    space: str = field(
        default="auto",
        metadata={
            "help": "Embedding space: encoder (--encoder), model (the task model's own "
            "encoder; needs --judge model:DIR) or auto (model with a model judge, else "
            "encoder)."
        },
    )
    fail_under: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Gate: NAME=VALUE, repeatable or comma-separated; the run exits with "
            f"code 4 when a set scores under VALUE. NAME: {', '.join(GATES)}."
        },
    )
    folds: int = field(default=5, metadata={"help": "cleanlab: out-of-fold splits."})
    duplicate_threshold: float = field(
        default=0.95, metadata={"help": "Near duplicate: embedding cosine at or above this."}
    )
    overlap_threshold: float = field(
        default=0.9,
        metadata={"help": "Flag rows whose bigram overlap with the nearest original is >= this."},
    )
    bleu_sample: int = field(
        default=100,
        metadata={"help": "Self-BLEU: score each row against this many others (seeded)."},
    )
    seeds: int = field(
        default=3,
        metadata={
            "help": "Distribution: seeds of the noisy measures (k-means KL/TV, sliced "
            "Wasserstein, MAUVE), reported as mean ± std."
        },
    )
    mauve: bool = field(
        default=True,
        metadata={"help": "Distribution: compute MAUVE (needs mauve-text; --no-mauve skips it)."},
    )
    sample: int = field(
        default=0,
        metadata={
            "help": "LLM and model judges: judge a seeded sample of this many rows per "
            "file (0: every row)."
        },
    )
    lambda_bins: int = field(
        default=10, metadata={"help": "Bins of lambda over [0, 1] for the intrusion curve."}
    )
    worst: int = field(default=20, metadata={"help": "report.html: flagged rows shown per check."})
    map: bool = field(
        default=True, metadata={"help": "Draw the map (map.png, and in report.html)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of every sampled or seeded step."})
    prompt_style: str = field(
        default="paper",
        metadata={
            "help": "LLM judge: built-in prompts, paper (inversedMixup A.3 and A.4, "
            "verbatim) or augtool (augtool's wording)."
        },
    )
    scoring: str = field(
        default="auto",
        metadata={
            "help": "LLM judge: auto (log-likelihood of each answer on hf:, reply parsing "
            "on openai:), loglik or parse."
        },
    )
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        check(bool(self.reference.strip()), "reference", "is required: the original rows")
        self.fail_under = [str(v) for v in (self.fail_under or [])]
        self.gates = parse_gates(self.fail_under)
        chosen = self.check_list()
        check(bool(chosen), "checks", f"name at least one of {', '.join(CHECKS)}")
        unknown = [c for c in chosen if c not in CHECKS]
        check(not unknown, "checks", f"unknown {', '.join(unknown)}; use {', '.join(CHECKS)}")
        needs = {
            "label": "label",
            "duplicates": "duplicates",
            "novelty": "diversity",
            "distinct_2": "diversity",
            "precision": "distribution",
            "recall": "distribution",
            "mauve": "distribution",
        }
        for gate in self.gates:
            check(
                needs[gate] in chosen,
                "fail_under",
                f"{gate} needs the {needs[gate]} check (see --checks)",
            )
        check(
            "mauve" not in self.gates or self.mauve,
            "fail_under",
            "mauve needs MAUVE: drop --no-mauve",
        )
        judge = self.judge.strip()
        check(bool(judge), "judge", "is required: cleanlab, model:DIR, hf:MODEL or openai:MODEL")
        check(
            judge == CLEANLAB or ":" in judge,
            "judge",
            f"{judge!r}: use cleanlab, model:DIR, hf:MODEL or openai:MODEL",
        )
        check(self.space in SPACES, "space", f"must be one of {', '.join(SPACES)}")
        check(
            self.space != "model" or self.judge_kind == "model",
            "space",
            "model is the task model's space: give --judge model:DIR",
        )
        check(self.folds >= 2, "folds", "must be at least 2")
        check(0 < self.duplicate_threshold <= 1, "duplicate_threshold", "must be in (0, 1]")
        check(0 < self.overlap_threshold <= 1, "overlap_threshold", "must be in (0, 1]")
        check(self.bleu_sample >= 1, "bleu_sample", "must be at least 1")
        check(self.seeds >= 1, "seeds", "must be at least 1")
        check(self.sample >= 0, "sample", "must be >= 0 (0: every row)")
        check(self.lambda_bins >= 1, "lambda_bins", "must be at least 1")
        check(self.worst >= 0, "worst", "must be >= 0")
        check(self.scoring in SCORINGS, "scoring", f"must be one of {', '.join(SCORINGS)}")
        check_llm_options(self)

    def check_list(self) -> list[str]:
        """The checks asked for, in the order given."""
        return [c.strip() for c in self.checks.split(",") if c.strip()]

    @property
    def judge_kind(self) -> str:
        """``cleanlab``, ``model`` or ``llm``."""
        judge = self.judge.strip()
        if judge == CLEANLAB:
            return CLEANLAB
        return "model" if judge.startswith("model:") else "llm"

    @property
    def resolved_space(self) -> str:
        """``encoder`` or ``model``."""
        if self.space == "auto":
            return "model" if self.judge_kind == "model" else "encoder"
        return self.space
