"""Configs of the ``augtool coannotate`` commands (one dataclass per command).

The LLM options are the ones every LLM command has (their help comes from
:class:`~augtool.methods.llm_baselines.LLMConfig`), with labelling defaults: greedy
replies of at most 16 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from augtool.core.config import check
from augtool.methods.llm_baselines import LLMJudgeOptions, check_llm_options, llm_field

#: ``--aggregate`` choices: majority vote, weighted vote (Wawa), Dawid-Skene, GLAD.
AGGREGATES = ("majority", "weighted", "dawid-skene", "glad")
#: ``--export`` choices: the review set in an annotation tool's import format.
EXPORTS = ("argilla", "label-studio")
SCORINGS = ("auto", "loglik", "parse")

_ANNOTATOR_HELP = (
    "An annotator; repeat for each (two at least). hf:MODEL or openai:MODEL: an LLM asked "
    "with the labelling prompt (append ,prompt=FILE ,style=paper|augtool or "
    ",scoring=loglik|parse to give it its own); model:DIR: a task model saved by "
    "`augtool train`; field:NAME: labels already in the input's field NAME, e.g. a "
    "person's. NAME=SPEC names it (default: the spec)."
)


@dataclass
class CoannotateConfig(LLMJudgeOptions):
    """Label every row with several annotators and aggregate their answers."""

    annotator: list[str] = field(default_factory=list, metadata={"help": _ANNOTATOR_HELP})
    labels: str = field(
        default="",
        metadata={
            "help": "Labels file: a JSON/YAML list of names, or a mapping of name to "
            "description (as `augtool llm label` takes). An answer naming no label in it "
            "counts as unparsed, never as a guess."
        },
    )
    aggregate: str = field(
        default="dawid-skene",
        metadata={
            "help": "How answers become one label: majority, weighted (votes weighted by "
            "each annotator's agreement with the majority, Wawa), dawid-skene or glad "
            "(crowd-kit's EM models of annotator reliability)."
        },
    )
    iterations: int = field(
        default=100, metadata={"help": "dawid-skene, glad: most EM iterations."}
    )
    review: str | None = field(
        default=None,
        metadata={
            "help": "Write the rows under --min-agreement or --min-confidence (and rows no "
            "annotator could label) here, with every annotator's answer, for people to "
            "decide; fold their decisions back with `augtool coannotate merge`."
        },
    )
    min_agreement: float = field(
        default=0.67,
        metadata={
            "help": "Rows where fewer than this share of the answering annotators agree "
            "with the aggregate go to --review."
        },
    )
    min_confidence: float = field(
        default=0.0,
        metadata={
            "help": "Rows whose aggregate label has a lower posterior (vote share for "
            "majority and weighted) go to --review."
        },
    )
    export: str | None = field(
        default=None,
        metadata={
            "help": "Also write the review set for an annotation tool, next to --review: "
            "argilla (v2 records JSON) or label-studio (tasks JSON with predictions, and "
            "its labelling config). No server is needed."
        },
    )
    seed: int = llm_field("seed")
    prompt_file: str | None = field(
        default=None,
        metadata={
            "help": "Replace the labelling prompt of every LLM annotator: a text file (the "
            "user message) or YAML with 'user' and 'system' ({text} required; "
            "{label_list}, {label_map}, {label_descriptions} available)."
        },
    )
    prompt_style: str = field(
        default="paper",
        metadata={
            "help": "Built-in labelling prompt: paper (inversedMixup appendix A.3) or "
            "augtool (augtool's own wording)."
        },
    )
    scoring: str = field(
        default="auto",
        metadata={
            "help": "LLM annotators: auto (log-likelihood of each label on hf:, reply "
            "parsing on openai:), loglik or parse."
        },
    )
    normalize: bool = field(
        default=True,
        metadata={"help": "loglik: compare per-token (length-normalised) log-likelihoods."},
    )
    label_field: str = field(
        default="label",
        metadata={"help": "JSON field the aggregate label is written to (and read from)."},
    )

    def __post_init__(self) -> None:
        self.annotator = [str(spec) for spec in (self.annotator or [])]
        check(
            len(self.annotator) >= 2,
            "annotator",
            f"co-annotation needs at least two annotators, got {len(self.annotator)}",
        )
        check(bool(self.labels.strip()), "labels", "is required: a labels file")
        check(
            self.aggregate in AGGREGATES,
            "aggregate",
            f"must be one of {', '.join(AGGREGATES)} (got {self.aggregate!r})",
        )
        check(self.iterations >= 1, "iterations", "must be at least 1")
        check(0 <= self.min_agreement <= 1, "min_agreement", "must be between 0 and 1")
        check(0 <= self.min_confidence <= 1, "min_confidence", "must be between 0 and 1")
        check(
            self.export is None or self.export in EXPORTS,
            "export",
            f"must be one of {', '.join(EXPORTS)} (got {self.export!r})",
        )
        check(
            self.export is None or bool(self.review),
            "export",
            "exports the review set: give --review too",
        )
        check_llm_options(self)
        check(self.scoring in SCORINGS, "scoring", f"must be one of {', '.join(SCORINGS)}")


@dataclass
class MergeConfig:
    """Fold people's decisions on the review set back into the labelled file."""

    label_field: str = field(
        default="label",
        metadata={
            "help": "Field holding the label, in the labelled file and in a JSONL review "
            "file (the decision; rows left null are undecided)."
        },
    )
    question: str = field(
        default="label",
        metadata={
            "help": "Argilla / Label Studio exports: the name of the label question "
            "(the choices control) whose answers are the decisions."
        },
    )


@dataclass
class ReportConfig:
    """Agreement between annotators, and their accuracy against people's labels."""

    human: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Annotators whose answers are people's labels (repeatable; default: the "
            "field: annotators recorded in the file's meta). With reviewed rows, they are "
            "the reference that accuracy is measured against."
        },
    )
    label_field: str = field(
        default="label", metadata={"help": "Field holding the aggregate (or merged) label."}
    )

    def __post_init__(self) -> None:
        self.human = [str(name) for name in (self.human or [])]
