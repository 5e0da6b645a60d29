"""PInR's prompts in use: the refinement template of a dataset (appendix B.1, verbatim in
:mod:`augtool.core.generation.prompts`), the values its placeholders take, how replies
are read back, and the task prefixes put before every text that is embedded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augtool.core.generation.jobs import clean_reply
from augtool.core.generation.prompts import (
    PINR_PREFIX_SOURCE,
    PINR_PREFIXES,
    PINR_REFINE,
    PromptTemplate,
    load_prompt_file,
)
from augtool.errors import OptionError
from augtool.methods.pinr.qa import join_qa, parse_qa_reply, split_qa

#: Every placeholder a refinement prompt may name (what :func:`refine_values` fills).
REFINE_PLACEHOLDERS = frozenset(
    {"text", "sentence", "category", "label", "label_clause", "question", "answer"}
)
#: The dataset prompts that refine Q&A pairs (they need --question-field/--answer-field).
QA_PROMPTS = ("gsm8k", "quora")


def refine_template(
    dataset: str, prompt_file: str | Path | None = None, *, qa: bool = False
) -> PromptTemplate:
    """The refinement prompt: ``PINR_REFINE[dataset]``, or a prompt file replacing it that
    must name the slot that template needs (``{text}``, ``{sentence}`` or ``{question}``
    and ``{answer}``) and nothing outside :data:`REFINE_PLACEHOLDERS`."""
    if dataset not in PINR_REFINE:
        raise OptionError("dataset_prompt", f"must be one of {', '.join(PINR_REFINE)}")
    if dataset in QA_PROMPTS and not qa:
        raise OptionError(
            "dataset_prompt",
            f"{dataset} refines Q&A pairs: give --question-field and --answer-field",
        )
    template = PINR_REFINE[dataset]
    if prompt_file:
        template = load_prompt_file(
            prompt_file,
            template_id=template.id,
            available=REFINE_PLACEHOLDERS,
            required=template.required,
        )
    return template


def refine_values(text: str, label_text: str | None, *, qa: bool) -> dict[str, str]:
    """The placeholders of a refinement prompt for one candidate text.

    ``{text}`` and ``{sentence}``: the candidate (``question [SEP] answer`` for Q&A);
    ``{question}``/``{answer}``: its two halves (split at ``[SEP]``); ``{category}``: the
    particle's label text, as is ``{label}``; ``{label_clause}``: the clause
    `` (label: <label text>)``, or nothing without a label (the form augtool's generic
    prompt uses).
    """
    question, answer, _ = split_qa(text)
    return {
        "text": text,
        "sentence": text,
        "question": question,
        "answer": answer,
        "category": label_text or "",
        "label": label_text or "",
        "label_clause": f" (label: {label_text})" if label_text else "",
    }


def read_reply(reply: str, *, qa: bool) -> str:
    """A candidate text from a refinement reply: for Q&A the ``Q: ... A: ...`` pair joined
    as ``question [SEP] answer``; otherwise the reply's first substantive line. Raises
    :class:`ReplyRejected` for an unusable reply."""
    if qa:
        return join_qa(*parse_qa_reply(reply))
    return clean_reply(reply)


@dataclass(frozen=True)
class Prefix:
    """The task prompt put before every embedded text: ``psi(x) = encoder(text + x)``."""

    text: str
    name: str | None = None

    def describe(self) -> dict[str, Any]:
        """What the meta records."""
        out: dict[str, Any] = {"text": self.text}
        if self.name:
            out.update(name=self.name, source=PINR_PREFIX_SOURCE)
        return out


def resolve_prefix(value: str | None) -> Prefix | None:
    """``--prefix``: a name of appendix B.1's task prompts (``ag_news``, ``sst2``), which
    joins the text with one space (``prompt + " " + x``), or literal text used exactly as
    given (put a trailing space or newline in it yourself). ``None`` stays ``None``."""
    if value is None:
        return None
    if value in PINR_PREFIXES:
        return Prefix(PINR_PREFIXES[value] + " ", value)
    return Prefix(value)


def prefix_named(text: str) -> Prefix:
    """A prefix read back from a decoder folder, named when it is one of appendix B.1's."""
    for name, prompt in PINR_PREFIXES.items():
        if text == prompt + " ":
            return Prefix(text, name)
    return Prefix(text)
