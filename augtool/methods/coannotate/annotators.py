"""Annotators: anything that gives each row one label of a label set, or none.

An annotator is named on the command line by a spec::

    [NAME=]hf:MODEL[,prompt=FILE][,style=paper|augtool][,scoring=auto|loglik|parse]
    [NAME=]openai:MODEL[,...the same options]
    [NAME=]model:DIR        a task model saved by ``augtool train``
    [NAME=]field:FIELD      labels already in the input (a person's, another tool's)

LLM annotators go through the LLM layer (response cache, retries, rate limits, the
request budget) with the labelling prompt of ``augtool llm label`` and the same request
seeds, so a pool already labelled by ``llm label`` with the same model and settings costs
nothing. Replies naming no label of the label set are *unparsed*: they count as no
answer, never as a guess.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from augtool.core.generation.labels import LabelSet
from augtool.core.generation.prompts import PromptTemplate
from augtool.core.progress import SILENT, Reporter
from augtool.data.records import Record
from augtool.errors import DataError, OptionError

#: Annotator kinds, by scheme (LLM backends are looked up in the LLM registry).
MODEL_SCHEME = "model"
FIELD_SCHEME = "field"
#: Per-annotator options of LLM annotators (``hf:m,style=augtool``).
LLM_OPTIONS = ("prompt", "style", "scoring")

#: Answer statuses: a label; a reply naming no label; a request failed after its
#: retries; no answer in the field.
ANSWERED, UNPARSED, FAILED, MISSING = "answered", "unparsed", "failed", "missing"

_NAME = re.compile(r"^([A-Za-z0-9_.@-]+)=(?=[A-Za-z0-9_]+:)")
_OPTION = re.compile(r",([A-Za-z_]+)=")


@dataclass(frozen=True)
class AnnotatorSpec:
    """A parsed ``--annotator`` value."""

    name: str
    scheme: str
    target: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def kind(self) -> str:
        """``human`` (a field), ``model`` (a task model) or ``llm``."""
        if self.scheme == FIELD_SCHEME:
            return "human"
        if self.scheme == MODEL_SCHEME:
            return "model"
        return "llm"


def known_schemes() -> list[str]:
    """Every annotator scheme: the LLM backends, ``model`` and ``field``."""
    from augtool.core.generation import LLMS

    return sorted({*LLMS.names(), MODEL_SCHEME, FIELD_SCHEME})


def parse_annotator(spec: str) -> AnnotatorSpec:
    """Parse one ``--annotator`` value (see the module docstring); one-line errors."""
    from augtool.core.generation import LLMS
    from augtool.core.registry import UnknownNameError

    text = spec.strip()
    name = ""
    match = _NAME.match(text)
    if match:
        name, text = match.group(1), text[match.end() :]
    scheme, sep, rest = text.partition(":")
    if not sep or not rest.strip():
        raise OptionError(
            "annotator",
            f"{spec!r} needs a scheme: {', '.join(s + ':' for s in known_schemes())}",
        )
    scheme = scheme.strip().lower()
    if scheme not in (MODEL_SCHEME, FIELD_SCHEME):
        try:
            scheme = LLMS.canonical(scheme)
        except UnknownNameError:
            raise OptionError(
                "annotator",
                f"{spec}: unknown annotator scheme {scheme!r} "
                f"(known: {', '.join(known_schemes())})",
            ) from None
    options: dict[str, str] = {}
    pieces = _OPTION.split(rest)
    target = pieces[0].strip()
    for key, value in zip(pieces[1::2], pieces[2::2], strict=True):
        if key not in LLM_OPTIONS:
            raise OptionError(
                "annotator",
                f"{spec}: unknown annotator option {key!r} (known: {', '.join(LLM_OPTIONS)})",
            )
        options[key] = value.strip()
    if not target:
        raise OptionError("annotator", f"{spec}: nothing after {scheme}:")
    if options and scheme in (MODEL_SCHEME, FIELD_SCHEME):
        raise OptionError("annotator", f"{spec}: {', '.join(options)} apply to LLM annotators only")
    if options.get("style") is not None:
        from augtool.core.generation.prompts import PROMPT_STYLES

        if options["style"] not in PROMPT_STYLES:
            raise OptionError(
                "annotator", f"{spec}: style must be one of {', '.join(PROMPT_STYLES)}"
            )
    if options.get("scoring") is not None and options["scoring"] not in ("auto", "loglik", "parse"):
        raise OptionError("annotator", f"{spec}: scoring must be auto, loglik or parse")
    return AnnotatorSpec(name or text, scheme, target, options, spec)


def parse_annotators(specs: Sequence[str]) -> list[AnnotatorSpec]:
    """Parse every ``--annotator``; names must differ."""
    parsed = [parse_annotator(spec) for spec in specs]
    seen: set[str] = set()
    for item in parsed:
        if item.name in seen:
            raise OptionError(
                "annotator",
                f"{item.name!r} is given twice; name them apart with NAME=SPEC",
            )
        seen.add(item.name)
    if len(parsed) < 2:
        raise OptionError(
            "annotator", f"co-annotation needs at least two annotators, got {len(parsed)}"
        )
    return parsed


@dataclass
class Answer:
    """One annotator's answer for one row: a label, or ``None`` with the reason."""

    label: str | None
    status: str = ANSWERED
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "status": self.status, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        return cls(data.get("label"), data.get("status", ANSWERED), data.get("evidence") or {})


#: ``sink(indices, answers)``: answers for ``records[i]`` as they arrive (checkpointing).
Sink = Callable[[list[int], list[Answer]], None]
#: ``locate(record)``: where a row is, ``file:line``, for error messages.
Locate = Callable[[Record], str]


class Annotator(ABC):
    """Gives rows labels. Subclasses implement :meth:`annotate`."""

    kind: ClassVar[str] = ""

    def __init__(self, spec: AnnotatorSpec) -> None:
        self.spec = spec
        self.name = spec.name
        #: Calls that reached a model or server, and answers served from the cache.
        self.requests = 0
        self.cached = 0

    @abstractmethod
    def annotate(self, records: Sequence[Record], sink: Sink | None = None) -> list[Answer]:
        """One :class:`Answer` per record, in order; ``sink`` gets them as they arrive."""

    def check(self, records: Sequence[Record], locate: Locate) -> None:  # noqa: B027
        """Fail fast, before any annotator runs, on what cannot work."""

    def identity(self) -> dict[str, Any]:
        """What makes this annotator answer as it does (run keys, provenance)."""
        return {"name": self.name, "kind": self.kind, "spec": self.spec.text}

    def describe(self) -> dict[str, Any]:
        """Provenance for the meta file."""
        return self.identity()

    def close(self) -> None:  # noqa: B027 - optional
        """Free what :meth:`annotate` loaded."""


class FieldAnnotator(Annotator):
    """Labels already in a field of the input (``field:NAME``), e.g. a person's."""

    kind = "human"

    def __init__(self, spec: AnnotatorSpec, label_set: LabelSet, label_field: str) -> None:
        super().__init__(spec)
        self.field = spec.target
        self.label_set = label_set
        self.label_field = label_field

    def value(self, record: Record) -> Any:
        if self.field == self.label_field:
            return record.label
        return record.extra.get(self.field)

    def check(self, records: Sequence[Record], locate: Locate) -> None:
        present = False
        names = set(self.label_set.names)
        for record in records:
            value = self.value(record)
            if value is None:
                continue
            present = True
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise _data_error(locate(record), f'field "{self.field}" must be a label string')
            if str(value) not in names:
                raise _data_error(
                    locate(record),
                    f'field "{self.field}" has label "{value}", which the labels file does '
                    f"not name (it names: {', '.join(self.label_set.names)})",
                )
        if not present and records:
            where = locate(records[0]).rsplit(":", 1)[0]
            raise OptionError(
                "annotator",
                f"{self.spec.text}: no row of {where} has a value in field {self.field!r}",
            )

    def annotate(self, records: Sequence[Record], sink: Sink | None = None) -> list[Answer]:
        answers = []
        for record in records:
            value = self.value(record)
            answers.append(Answer(str(value)) if value is not None else Answer(None, MISSING))
        if sink is not None:
            sink(list(range(len(records))), answers)
        return answers

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "field": self.field}


def _data_error(where: str, message: str) -> DataError:
    path, _, line = where.rpartition(":")
    if path and line.isdigit():
        return DataError(path, message, line=int(line))
    return DataError(where, message)


def task_model_labels(folder: str | Path, spec: str) -> list[str]:
    """The labels of the task model in ``folder``; a one-line error naming ``--annotator``
    when it is not one."""
    from augtool.core.taskmodel.model import MODEL_FILE

    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "no such folder"
        raise OptionError("annotator", f"{spec}: {folder}: {what}, expected a task model folder")
    config_path = folder / MODEL_FILE
    if not config_path.is_file():
        raise OptionError(
            "annotator",
            f"{spec}: {folder} is not a task model (no {MODEL_FILE}; train one with "
            "`augtool train`)",
        )
    try:
        labels = json.loads(config_path.read_text(encoding="utf-8"))["labels"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OptionError("annotator", f"{spec}: {config_path}: unreadable ({exc})") from exc
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise OptionError("annotator", f"{spec}: {config_path}: labels must be a list of names")
    return labels


class TaskModelAnnotator(Annotator):
    """A task model saved by ``augtool train`` (``model:DIR``): its most likely label."""

    kind = "model"

    def __init__(
        self,
        spec: AnnotatorSpec,
        label_set: LabelSet,
        *,
        device: str = "auto",
        batch_size: int = 64,
        reporter: Reporter = SILENT,
    ) -> None:
        super().__init__(spec)
        self.folder = Path(spec.target)
        self.labels = task_model_labels(self.folder, spec.text)
        unknown = sorted(set(self.labels) - set(label_set.names))
        if unknown:
            raise OptionError(
                "annotator",
                f"{spec.text}: the model predicts label(s) {', '.join(unknown)} that the "
                f"labels file does not name (it names: {', '.join(label_set.names)})",
            )
        self.device = device
        self.batch_size = batch_size
        self.reporter = reporter

    def annotate(self, records: Sequence[Record], sink: Sink | None = None) -> list[Answer]:
        import numpy as np

        from augtool.core.taskmodel.model import TaskModel, softmax

        answers: list[Answer] = []
        if not records:
            return answers
        model = TaskModel.load(self.folder, device=self.device, batch_size=self.batch_size)
        advance = self.reporter.task(f"annotating ({self.name})", len(records))
        for start in range(0, len(records), self.batch_size):
            part = records[start : start + self.batch_size]
            logits = model.logits([r.text or "" for r in part], batch_size=self.batch_size)
            probs = softmax(np.asarray(logits))
            got = []
            for row in probs:
                best = int(np.argmax(row))
                got.append(Answer(model.labels[best], evidence={"p": round(float(row[best]), 4)}))
            answers.extend(got)
            if sink is not None:
                sink(list(range(start, start + len(part))), got)
            self.requests += len(part)
            advance(len(part))
        return answers

    def identity(self) -> dict[str, Any]:
        from augtool.core.hub import model_key

        return {**super().identity(), "model": str(self.folder), "content": model_key(self.folder)}

    def describe(self) -> dict[str, Any]:
        return {**super().identity(), "model": str(self.folder), "labels": self.labels}


class LLMAnnotator(Annotator):
    """An LLM asked the labelling prompt (``hf:``/``openai:``): log-likelihood of each
    label's text on a local model, or its reply parsed to a label."""

    kind = "llm"

    def __init__(
        self,
        spec: AnnotatorSpec,
        llm: Any,
        label_set: LabelSet,
        template: PromptTemplate,
        *,
        scoring: str,
        params: Any,
        seed: int = 0,
        normalize: bool = True,
        budget: Any = None,
        reporter: Reporter = SILENT,
    ) -> None:
        super().__init__(spec)
        self.llm = llm
        self.label_set = label_set
        self.template = template
        self.scoring = scoring
        self.params = params
        self.seed = seed
        self.normalize = normalize
        self.budget = budget
        self.reporter = reporter

    def check(self, records: Sequence[Record], locate: Locate) -> None:
        self.llm.check()

    def prompts(self, records: Sequence[Record]) -> list[Any]:
        from augtool.methods.llm_baselines import label_prompt

        return [label_prompt(record, self.label_set, self.template) for record in records]

    def annotate(self, records: Sequence[Record], sink: Sink | None = None) -> list[Answer]:
        if not records:
            return []
        if self.scoring == "loglik":
            return self._score(records, sink)
        return self._ask(records, sink)

    def _ask(self, records: Sequence[Record], sink: Sink | None) -> list[Answer]:
        from augtool.core.generation.jobs import derive_seed

        # The seeds of `augtool llm label`: the same request is the same cache entry.
        seeds = [derive_seed(self.seed, "label", record.id) for record in records]
        answers: list[Answer | None] = [None] * len(records)
        advance = self.reporter.task(f"asking {self.name}", len(records))

        def on_results(indices: list[int], results: list[Any], cached: bool) -> None:
            got = [self._parsed(result) for result in results]
            for index, answer in zip(indices, got, strict=True):
                answers[index] = answer
            if cached:
                self.cached += len(indices)
            else:
                self.requests += len(indices)
            if sink is not None:
                sink(indices, got)
            advance(len(indices))

        self.llm.generate(
            self.prompts(records), self.params, seeds, budget=self.budget, on_results=on_results
        )
        return [a if a is not None else Answer(None, FAILED) for a in answers]

    def _parsed(self, result: Any) -> Answer:
        from augtool.core.generation.params import Failure

        if isinstance(result, Failure):
            return Answer(None, FAILED, {"error": result.error})
        label = self.label_set.parse(result) if result.strip() else None
        if label is None:
            return Answer(None, UNPARSED, {"reply": result})
        return Answer(label, ANSWERED, {"reply": result})

    def _score(self, records: Sequence[Record], sink: Sink | None) -> list[Answer]:
        names = self.label_set.names
        options = [self.label_set.text_of(name) for name in names]
        prompts = self.prompts(records)
        answers: list[Answer] = []
        advance = self.reporter.task(f"scoring with {self.name}", len(records))
        indices = list(range(len(records)))
        step = max(1, int(getattr(self.llm, "batch_size", 16)))
        for start in range(0, len(indices), step):
            wanted = indices[start : start + step]
            chunk = self.budget.take(wanted) if self.budget is not None else wanted
            scores = self.llm.score([prompts[i] for i in chunk], options)
            got = []
            for row in scores:
                values = [s.mean if self.normalize else s.logprob for s in row]
                best = max(range(len(names)), key=values.__getitem__)
                scored = {n: round(v, 4) for n, v in zip(names, values, strict=True)}
                got.append(Answer(names[best], ANSWERED, {"scores": scored}))
            answers.extend(got)
            self.requests += len(chunk)
            if sink is not None:
                sink(chunk, got)
            advance(len(chunk))
            if len(chunk) < len(wanted):
                self.budget.take([])  # the budget cut this chunk short: raises
        return answers

    def identity(self) -> dict[str, Any]:
        return {
            **super().identity(),
            "llm": self.llm.identity(),
            "prompt": [self.template.user, self.template.system],
            "scoring": self.scoring,
            "normalize": self.normalize if self.scoring == "loglik" else None,
            "params": self.params.to_dict() if self.scoring == "parse" else None,
        }

    def describe(self) -> dict[str, Any]:
        return {
            **super().identity(),
            "llm": self.llm.identity(),
            "prompt_id": self.template.id,
            "scoring": self.scoring,
        }

    def close(self) -> None:
        self.llm.close()
        if getattr(self.llm, "_model", None) is not None:
            # a local LM's weights go now, before the next annotator loads its own (a
            # later call loads them again: hf: loads lazily)
            self.llm._model = None


def load_annotators(
    specs: Sequence[AnnotatorSpec],
    config: Any,
    label_set: LabelSet,
    *,
    budget: Any = None,
    reporter: Reporter = SILENT,
) -> list[Annotator]:
    """Build the annotators of a :class:`~augtool.methods.coannotate.config.CoannotateConfig`
    (LLMs load their weights lazily, task models when they annotate)."""
    annotators: list[Annotator] = []
    try:
        for spec in specs:
            if spec.scheme == FIELD_SCHEME:
                annotators.append(FieldAnnotator(spec, label_set, config.label_field))
            elif spec.scheme == MODEL_SCHEME:
                annotators.append(
                    TaskModelAnnotator(
                        spec,
                        label_set,
                        device=config.device,
                        batch_size=config.batch_size,
                        reporter=reporter,
                    )
                )
            else:
                annotators.append(_llm_annotator(spec, config, label_set, budget, reporter))
    except BaseException:
        for annotator in annotators:
            annotator.close()
        raise
    return annotators


def _llm_annotator(
    spec: AnnotatorSpec, config: Any, label_set: LabelSet, budget: Any, reporter: Reporter
) -> LLMAnnotator:
    from augtool.core.generation import load_llm
    from augtool.core.generation.params import GenerationParams
    from augtool.core.generation.prompts import step_template
    from augtool.methods.llm_baselines import PLACEHOLDERS, REQUIRED

    own_prompt = "prompt" in spec.options
    template = step_template(
        "llm.label",
        spec.options.get("style", config.prompt_style),
        spec.options["prompt"] if own_prompt else config.prompt_file,
        available=PLACEHOLDERS["llm.label"],
        required=REQUIRED["llm.label"],
        option="annotator" if own_prompt else "prompt_file",
    )
    scoring = spec.options.get("scoring", config.scoring)
    if scoring == "auto":
        scoring = "loglik" if spec.scheme == "hf" else "parse"
    try:
        llm = load_llm(f"{spec.scheme}:{spec.target}", **config.backend_options())
    except OptionError as exc:
        raise OptionError("annotator", f"{spec.text}: {str(exc).split(': ', 1)[-1]}") from exc
    from augtool.core.generation.base import ScoringLLM

    if scoring == "loglik" and not isinstance(llm, ScoringLLM):
        llm.close()
        raise OptionError(
            "annotator",
            f"{spec.text}: loglik scoring needs a local model (hf:), not {spec.scheme}:",
        )
    params = GenerationParams(config.max_new_tokens, config.temperature, 1.0)
    return LLMAnnotator(
        spec,
        llm,
        label_set,
        template,
        scoring=scoring,
        params=params,
        seed=config.seed,
        normalize=config.normalize,
        budget=budget,
        reporter=reporter,
    )


__all__ = [
    "ANSWERED",
    "FAILED",
    "MISSING",
    "UNPARSED",
    "Annotator",
    "AnnotatorSpec",
    "Answer",
    "FieldAnnotator",
    "LLMAnnotator",
    "TaskModelAnnotator",
    "load_annotators",
    "parse_annotator",
    "parse_annotators",
]
