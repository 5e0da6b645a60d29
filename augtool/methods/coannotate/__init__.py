"""Co-annotation: several annotators (LLMs, saved task models, people's labels) label a
pool; their answers are aggregated into one label per row with agreement and confidence;
doubtful rows go to people, whose decisions merge back; a report measures agreement.

From Python, with answers already collected (no model needed)::

    from augtool.methods.coannotate import coannotate
    result = coannotate(records, {"gpt": [...], "clf": [...], "ann": [...]},
                        method="dawid-skene", min_agreement=0.67)
    result.rows, result.review, result.aggregation.estimated_accuracy
"""

from __future__ import annotations

from augtool.methods.coannotate.aggregate import METHODS, Aggregation, aggregate, needs_review
from augtool.methods.coannotate.annotators import (
    Annotator,
    AnnotatorSpec,
    Answer,
    FieldAnnotator,
    LLMAnnotator,
    TaskModelAnnotator,
    load_annotators,
    parse_annotator,
    parse_annotators,
)
from augtool.methods.coannotate.config import CoannotateConfig, MergeConfig, ReportConfig
from augtool.methods.coannotate.metrics import AgreementReport, agreement_report
from augtool.methods.coannotate.pipeline import (
    AnswerCheckpoint,
    CoannotationResult,
    coannotate,
    collect_answers,
    merge_decisions,
)

__all__ = [
    "METHODS",
    "AgreementReport",
    "Aggregation",
    "Annotator",
    "AnnotatorSpec",
    "Answer",
    "AnswerCheckpoint",
    "CoannotateConfig",
    "CoannotationResult",
    "FieldAnnotator",
    "LLMAnnotator",
    "MergeConfig",
    "ReportConfig",
    "TaskModelAnnotator",
    "agreement_report",
    "aggregate",
    "coannotate",
    "collect_answers",
    "load_annotators",
    "merge_decisions",
    "needs_review",
    "parse_annotator",
    "parse_annotators",
]
