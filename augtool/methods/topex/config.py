"""Configs of the ``augtool topex`` commands (one dataclass per command)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from augtool.core.clustering.scores import (
    COSINE_AMONG,
    DENSITY_DIAMETERS,
    GEOMEDIAN_TO,
    PAIRWISE_NORMS,
    SCORES,
    WEIGHTED_NORMALISE,
    Variants,
    Weights,
)
from augtool.core.config import check
from augtool.core.generation.prompts import PROMPT_STYLES
from augtool.errors import OptionError
from augtool.methods.llm_baselines import LLMConfig

CLUSTERERS = ("optics", "hdbscan")
PROJECTIONS = ("sparsepca", "umap", "pca")
_METHOD_HELP = (
    "Score that picks the cluster (the highest wins): weighted (the paper's), density, "
    "pairwise, geomedian, ctc or cosine."
)


def _one_of(value: str, known: tuple[str, ...], name: str) -> None:
    check(value in known, name, f"must be one of {', '.join(known)} (got {value!r})")


@dataclass
class ScoreConfig:
    """How clusters are ranked: the choosing score, the reading of each score (the paper's
    equations by default) and the weights of the weighted one."""

    method: str = field(default="weighted", metadata={"help": _METHOD_HELP})
    w_cosine: float = field(default=0.68, metadata={"help": "Weight of cosine similarity."})
    w_pairwise: float = field(default=0.65, metadata={"help": "Weight of pairwise distance."})
    w_density: float = field(default=0.41, metadata={"help": "Weight of density."})
    w_geomedian: float = field(
        default=0.0, metadata={"help": "Weight of the geometric-median distance (paper: 0)."}
    )
    w_ctc: float = field(default=0.0, metadata={"help": "Weight of CTC preservation (paper: 0)."})
    weighted_normalise: str = field(
        default="none",
        metadata={
            "help": "Weighted score: none (the paper's sum of raw scores) or max (each score "
            "divided by its largest value over the clusters first)."
        },
    )
    density_diameter: str = field(
        default="extent",
        metadata={
            "help": "Density's diameter: extent (the paper's: the largest max-min along one "
            "dimension) or euclidean (the largest distance between two points)."
        },
    )
    pairwise_norm: str = field(
        default="outside",
        metadata={
            "help": "Pairwise distance: outside (the paper's: the sum over inside x outside "
            "pairs divided by the points outside) or pairs (divided by the pair count: a mean)."
        },
    )
    geomedian_to: str = field(
        default="outside",
        metadata={
            "help": "Geometric-median distance to: outside (the paper's: the points outside "
            "the cluster) or inside (its own points; lower is better)."
        },
    )
    cosine_among: str = field(
        default="texts",
        metadata={
            "help": "Cosine similarity among: texts (the paper's: every pair of the "
            "cluster's texts) or name (the cluster name against each text)."
        },
    )

    def __post_init__(self) -> None:
        _one_of(self.method, SCORES, "method")
        _one_of(self.weighted_normalise, WEIGHTED_NORMALISE, "weighted_normalise")
        _one_of(self.density_diameter, DENSITY_DIAMETERS, "density_diameter")
        _one_of(self.pairwise_norm, PAIRWISE_NORMS, "pairwise_norm")
        _one_of(self.geomedian_to, GEOMEDIAN_TO, "geomedian_to")
        _one_of(self.cosine_among, COSINE_AMONG, "cosine_among")
        for name in ("w_cosine", "w_pairwise", "w_density", "w_geomedian", "w_ctc"):
            value = getattr(self, name)
            check(value == value and abs(value) != float("inf"), name, "must be a finite number")

    def weights(self) -> Weights:
        return Weights(
            cosine=self.w_cosine,
            pairwise=self.w_pairwise,
            density=self.w_density,
            geomedian=self.w_geomedian,
            ctc=self.w_ctc,
        )

    def variants(self) -> Variants:
        return Variants(
            density=self.density_diameter,
            pairwise=self.pairwise_norm,
            geomedian=self.geomedian_to,
            cosine=self.cosine_among,
            normalise=self.weighted_normalise,
        )


@dataclass
class ExploreConfig(ScoreConfig):
    """Explorer: cluster the normalised outputs, keep clusters of mistakes, name them."""

    classifier: str | None = field(
        default=None,
        metadata={
            "help": "Any Hugging Face sequence classifier (id or folder) instead of --model."
        },
    )
    label_order: str | None = field(
        default=None,
        metadata={
            "help": "--classifier: the data's labels in the model's output order, "
            "comma-separated (for models whose labels are LABEL_0, LABEL_1...)."
        },
    )
    encoder: str | None = field(
        default=None,
        metadata={
            "help": "Sentence encoder for naming and CTC (default: the task model's encoder; "
            "with --classifier, all-MiniLM-L6-v2)."
        },
    )
    with_labels: bool = field(
        default=True,
        metadata={
            "help": "Append the normalised gold labels to the outputs, so mistakes of one "
            "kind cluster apart from the correct points they are confused with."
        },
    )
    clusterer: str = field(default="optics", metadata={"help": "optics (the paper's) or hdbscan."})
    min_samples: int = field(
        default=5, metadata={"help": "Neighbourhood size of a core point (both clusterers)."}
    )
    min_cluster_size: int | None = field(
        default=None,
        metadata={"help": "Smallest cluster (default: min-samples for OPTICS, 5 for HDBSCAN)."},
    )
    xi: float = field(default=0.05, metadata={"help": "OPTICS: steepness for cluster extraction."})
    max_eps: float | None = field(
        default=None, metadata={"help": "OPTICS: largest neighbourhood radius (default: none)."}
    )
    cluster_selection_epsilon: float = field(
        default=0.0, metadata={"help": "HDBSCAN: merge clusters closer than this."}
    )
    error_threshold: float = field(
        default=0.5,
        metadata={"help": "A cluster is a cluster of mistakes when its error rate exceeds this."},
    )
    projection: str = field(
        default="sparsepca", metadata={"help": "2D projection: sparsepca (paper), umap or pca."}
    )
    top_n_words: int = field(default=10, metadata={"help": "Keywords kept per cluster."})
    name_words: int = field(default=4, metadata={"help": "Keywords in a cluster's name."})
    max_outside: int | None = field(
        default=None,
        metadata={
            "help": "Pairwise distance: sample at most this many points on each side and "
            "scale up to estimate the full sum (default: every pair, as the paper)."
        },
    )
    ctc_texts: int | None = field(
        default=None,
        metadata={
            "help": "CTC preservation: average over a seeded sample of this many member "
            "texts per cluster (default: all of them, as the paper)."
        },
    )
    batch_size: int = field(default=64, metadata={"help": "Texts per forward pass."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    seed: int = field(default=0, metadata={"help": "Seed of the projection and the samples."})
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.clusterer in CLUSTERERS, "clusterer", f"must be one of {', '.join(CLUSTERERS)}")
        check(
            self.projection in PROJECTIONS,
            "projection",
            f"must be one of {', '.join(PROJECTIONS)}",
        )
        check(self.min_samples >= 2, "min_samples", "must be at least 2")
        check(
            self.min_cluster_size is None or self.min_cluster_size >= 2,
            "min_cluster_size",
            "must be at least 2",
        )
        check(0 < self.xi < 1, "xi", "must be between 0 and 1")
        check(self.max_eps is None or self.max_eps > 0, "max_eps", "must be positive")
        check(self.cluster_selection_epsilon >= 0, "cluster_selection_epsilon", "must be >= 0")
        check(0 <= self.error_threshold < 1, "error_threshold", "must be in [0, 1)")
        check(self.top_n_words >= 1, "top_n_words", "must be at least 1")
        check(1 <= self.name_words <= self.top_n_words, "name_words", "must be 1..top-n-words")
        check(self.max_outside is None or self.max_outside >= 1, "max_outside", "must be >= 1")
        check(self.ctc_texts is None or self.ctc_texts >= 1, "ctc_texts", "must be at least 1")
        check(self.batch_size >= 1, "batch_size", "must be at least 1")
        check(bool(self.device.strip()), "device", "must not be empty")

    def clusterer_params(self) -> dict[str, object]:
        """Keyword arguments of the chosen clusterer."""
        if self.clusterer == "optics":
            return {
                "min_samples": self.min_samples,
                "min_cluster_size": self.min_cluster_size,
                "xi": self.xi,
                "max_eps": float("inf") if self.max_eps is None else self.max_eps,
            }
        return {
            "min_samples": self.min_samples,
            "min_cluster_size": self.min_cluster_size,
            "cluster_selection_epsilon": self.cluster_selection_epsilon,
        }


#: ``--generator`` values; ``invmix`` takes the model folder after a colon, ``bt`` an
#: optional engine (``bt:apertium``, the offline default, or ``bt:marian``).
GENERATORS = ("llm", "eda", "bt", "invmix:MODEL_DIR")


@dataclass(frozen=True)
class GeneratorSpec:
    """A parsed ``--generator``: the method and its argument (engine or model folder)."""

    method: str
    argument: str | None = None

    @classmethod
    def parse(cls, spec: str) -> GeneratorSpec:
        method, _, argument = spec.strip().partition(":")
        method = method.lower()
        if method not in ("llm", "eda", "bt", "invmix"):
            raise OptionError(
                "generator", f"unknown generator {spec!r} (choose from {', '.join(GENERATORS)})"
            )
        if method == "invmix" and not argument:
            raise OptionError("generator", "invmix needs its model folder: invmix:MODEL_DIR")
        if method in ("llm", "eda") and argument:
            raise OptionError("generator", f"{method} takes no argument (got {spec!r})")
        if method == "bt" and argument not in (None, "", "apertium", "marian"):
            raise OptionError(
                "generator", f"bt engine must be apertium or marian, not {argument!r}"
            )
        return cls(method, argument or None)

    @property
    def uses_llm(self) -> bool:
        return self.method == "llm"

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, **({"argument": self.argument} if self.argument else {})}


@dataclass
class AugmentConfig(LLMConfig):
    """Augmenter: prompt an LLM with the chosen cluster's name and a target label."""

    generator: str = field(
        default="llm",
        metadata={
            "help": "What writes the samples: llm (the paper: prompt --llm with the cluster's "
            "name), or, without an LLM, eda, bt (bt:apertium, bt:marian) or "
            "invmix:MODEL_DIR applied to the cluster's members with the target label."
        },
    )
    n: int = field(default=5, metadata={"help": "Samples to generate (1, 3, 5, 10 typical)."})
    shots: int = field(
        default=0, metadata={"help": "Member samples shown as examples (0: zero-shot)."}
    )
    prompt_style: str = field(
        default="paper",
        metadata={
            "help": "Built-in prompt: paper (TopEx §2.4's task, appendix B's few-shot layout "
            "and pair task, verbatim) or augtool (augtool's wording: examples as a list, a "
            "format line, a system message)."
        },
    )
    cluster: int | None = field(
        default=None, metadata={"help": "Cluster id to augment (default: the chosen one)."}
    )
    target_label: str | None = field(
        default=None,
        metadata={"help": "Label of the new samples (default: the cluster's majority gold)."},
    )
    labels: str | None = field(
        default=None,
        metadata={
            "help": "Labels file (JSON/YAML, as `augtool llm label`): the text the prompt shows "
            "for each label, e.g. examples/labels/trec.json shows NUM as 'Numeric' "
            "(default: the labels as the data spells them)."
        },
    )
    domain: str = field(
        default="text",
        metadata={
            "help": "What a sample is, for the prompt: the paper's IMDb prompt says "
            "'movie review'; text, question, review, claim..."
        },
    )
    pair: bool | None = field(
        default=None,
        metadata={
            "help": "Pair task (text + text_pair, e.g. premise/hypothesis); default: when the "
            "cluster's rows have a text_pair."
        },
    )
    pair_names: str = field(
        default="premise,hypothesis",
        metadata={
            "help": "Pair tasks, --prompt-style augtool: names of the two parts (the paper's "
            "pair task always says premise and hypothesis)."
        },
    )
    delimiter: str = field(
        default="/delim/",
        metadata={"help": "Pair tasks: separator between the two parts (the paper's /delim/)."},
    )
    max_chars: int | None = field(
        default=None,
        metadata={
            "help": "Reject longer replies (default: 3x the longest member text, at least 200)."
        },
    )

    def __post_init__(self) -> None:
        self.generator_spec()  # a bad --generator is the first thing said
        super().__post_init__()
        check(self.n >= 1, "n", f"must be at least 1 (got {self.n})")
        check(self.shots >= 0, "shots", "must be >= 0")
        _one_of(self.prompt_style, PROMPT_STYLES, "prompt_style")
        check(bool(self.domain.strip()), "domain", "must not be empty")
        check(len(self.part_names()) == 2, "pair_names", "must be two comma-separated names")
        check(bool(self.delimiter.strip()), "delimiter", "must not be empty")
        check(self.max_chars is None or self.max_chars >= 1, "max_chars", "must be at least 1")

    def generator_spec(self) -> GeneratorSpec:
        return GeneratorSpec.parse(self.generator)

    def llm_required(self) -> bool:
        return self.generator_spec().uses_llm

    def part_names(self) -> list[str]:
        return [part.strip() for part in self.pair_names.split(",") if part.strip()]
