"""Every prompt augtool sends lives here; backends only send requests.

Templates use named placeholders (``{text}``, ``{label}``...; literal braces doubled).
A user's ``--prompt-file`` replaces a template; its placeholders are checked against the
ones the step fills (unknown names) and the ones it needs (missing names) before any
model loads or any call is made.

Where a paper prints a prompt, that text is the default, copied verbatim
(``verbatim=True``, with the section it comes from in ``source``) from the copies in
``shared/papers``: inversedMixup (Kong et al.) App. A.2-A.4, PInR App. B.1 and TopEx
App. B / §2.4. Only the placeholder spelling is ours where the paper names a slot in
words (TopEx's *label* and *issue*). augtool's earlier wordings stay available as the
``augtool`` prompt style (``--prompt-style augtool``); they are never the default where a
paper prints a prompt.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

from augtool.core.generation.params import Message
from augtool.errors import AugtoolError, OptionError

#: ``--prompt-style`` values: the papers' printed prompts, or augtool's own wordings.
PROMPT_STYLES = ("paper", "augtool")


@dataclass(frozen=True)
class PromptTemplate:
    """A system message (optional) and a user message with named placeholders.

    ``required`` names the placeholders the step cannot work without (checked in user
    prompt files); ``verbatim`` marks text copied exactly from the paper in ``source``.
    """

    id: str
    user: str
    system: str | None = None
    source: str = "augtool"
    verbatim: bool = False
    required: frozenset[str] = frozenset()
    placeholders: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        names = placeholders_of(self.user) | placeholders_of(self.system or "")
        object.__setattr__(self, "placeholders", frozenset(names))
        object.__setattr__(self, "required", frozenset(self.required))

    def render(self, **values: object) -> list[Message]:
        """Chat messages with the placeholders filled in (extra values are ignored)."""
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system.format(**values)})
        messages.append({"role": "user", "content": self.user.format(**values)})
        return messages

    def check(
        self,
        available: set[str] | frozenset[str],
        where: str,
        option: str = "prompt_file",
        required: set[str] | frozenset[str] | None = None,
    ) -> None:
        """Fail before any call if the template uses placeholders the step cannot fill,
        or leaves out one it needs (``required``, default the template's own)."""
        unknown = sorted(self.placeholders - set(available))
        if unknown:
            raise OptionError(
                option,
                f"{where}: unknown placeholder(s) {_braced(unknown)} "
                f"(available: {_braced(sorted(available))})",
            )
        missing = sorted(set(self.required if required is None else required) - self.placeholders)
        if missing:
            raise OptionError(
                option, f"{where}: the prompt must use the placeholder(s) {_braced(missing)}"
            )

    def describe(self) -> dict[str, object]:
        """The template as recorded in outputs' meta (id, source, text)."""
        return {
            "id": self.id,
            "source": self.source,
            "verbatim": self.verbatim,
            "system": self.system,
            "user": self.user,
        }


def _braced(names: list[str]) -> str:
    return ", ".join("{" + n + "}" for n in names)


def placeholders_of(template: str) -> set[str]:
    """Named fields of a ``str.format`` template; positional or malformed fields are errors."""
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise AugtoolError(
            f"malformed prompt template ({exc}); write literal braces as {{{{ }}}}"
        ) from exc
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name or name.isdigit() or not name.isidentifier():
            raise AugtoolError(f"prompt placeholder {{{name}}} must be a name such as {{text}}")
        names.add(name)
    return names


# ----------------------------------------------------------------------------------------
# inversedMixup (Kong et al.), appendix A.2-A.4: the LLM baselines, labelling, intrusion

_INVMIX = "inversedMixup (Kong et al.), appendix A.{section}, verbatim"
_AUGTOOL_INVMIX = "augtool's wording of inversedMixup appendix A.{section} (--prompt-style augtool)"

LLM_REW = PromptTemplate(
    id="invmix.a2.llm-rew",
    source=_INVMIX.format(section=2) + " (LLM-Rew)",
    verbatim=True,
    required={"text"},
    user='Please provide a clear and concise rewrite of this {label} sentence: "{text}"\n'
    "Rewritten version:",
)

LLM_GEN = PromptTemplate(
    id="invmix.a2.llm-gen",
    source=_INVMIX.format(section=2) + " (LLM-Gen)",
    verbatim=True,
    required={"label"},
    user="Write a {label} {topic} sentence. Output only the sentence, nothing else.\n"
    "The sentence is:",
)

LLM_MIX = PromptTemplate(
    id="invmix.a2.llm-mix",
    source=_INVMIX.format(section=2) + " (LLM-Mix)",
    verbatim=True,
    required={"text1", "text2"},
    user="Mix the two sentences into one sentence:\n\n"
    "sentence1: {text1}\n\n"
    "sentence2: {text2}\n\n"
    "The mixed sentence is:",
)

LLM_LABEL = PromptTemplate(
    id="invmix.a3.label",
    source=_INVMIX.format(section=3),
    verbatim=True,
    required={"text"},
    user="Classify the following sentence into one of the labels below.\n\n"
    'Sentence: "{text}"\n\n'
    "Labels: {label_list}\n\n"
    "Respond with only the label name exactly as given above.\n\n"
    "Answer:",
)

INTRUSION_MATCH = PromptTemplate(
    id="invmix.a4.intrusion-match",
    source=_INVMIX.format(section=4) + " (first set: is the interpolated label valid)",
    verbatim=True,
    required={"text", "label_text"},
    user="You are a text classification model.\n"
    'Determine if the sentence "{text}" can be labeled as\n'
    '"{label_text}."\n'
    'If it matches, output "Yes"; otherwise, output "No".',
)

INTRUSION_LABEL = PromptTemplate(
    id="invmix.a4.intrusion-label",
    source=_INVMIX.format(section=4) + " (second set: Inside or Outside)",
    verbatim=True,
    required={"text"},
    user="You are a text classification model.\n"
    'Choose one label for the sentence "{text}" in "{label_map}".',
)

# augtool's own wordings (--prompt-style augtool), kept from before the papers were at hand.
_ANNOTATOR = "You are an expert annotator for text classification."
_AUGMENTER = "You are a data augmentation assistant for text classification."

AUGTOOL_LLM_REW = PromptTemplate(
    id="augtool.llm-rew",
    source=_AUGTOOL_INVMIX.format(section=2),
    required={"text"},
    system=_AUGMENTER,
    user=(
        "Rewrite the following text so that it keeps its meaning and its label "
        '"{label}", but uses different wording.\n'
        "Text: {text}\n"
        "Answer with the rewritten text only."
    ),
)

AUGTOOL_LLM_GEN = PromptTemplate(
    id="augtool.llm-gen",
    source=_AUGTOOL_INVMIX.format(section=2) + "; few-shot, unlike the paper's zero-shot",
    required={"label"},
    system=_AUGMENTER,
    user=(
        'Here are examples of texts with the label "{label}"{description}:\n'
        "{examples}\n"
        'Write one new, different text that also has the label "{label}".\n'
        "Answer with the new text only."
    ),
)

AUGTOOL_LLM_MIX = PromptTemplate(
    id="augtool.llm-mix",
    source=_AUGTOOL_INVMIX.format(section=2) + "; tells the LLM the mixing ratio",
    required={"text_a", "text_b"},
    system=_AUGMENTER,
    user=(
        "Write one new text that blends the two texts below. About {ratio_a}% of its "
        'content should come from text A (label "{label_a}") and about {ratio_b}% from '
        'text B (label "{label_b}").\n'
        "Text A: {text_a}\n"
        "Text B: {text_b}\n"
        "Answer with the new text only."
    ),
)

AUGTOOL_LLM_LABEL = PromptTemplate(
    id="augtool.label",
    source=_AUGTOOL_INVMIX.format(section=3),
    required={"text"},
    system=_ANNOTATOR,
    user=(
        "Classify the text into exactly one of these labels:\n"
        "{label_descriptions}\n"
        "Text: {text}\n"
        "Answer with the label name only."
    ),
)

AUGTOOL_INTRUSION_MATCH = PromptTemplate(
    id="augtool.intrusion-match",
    source=_AUGTOOL_INVMIX.format(section=4),
    required={"text", "label_text"},
    system=_ANNOTATOR,
    user=(
        "A text was made by mixing sentences, and given the mixed label "
        '"{label_text}".\n'
        "Text: {text}\n"
        "Does the text carry that mixed label? Answer Yes or No only."
    ),
)

AUGTOOL_INTRUSION_LABEL = PromptTemplate(
    id="augtool.intrusion-label",
    source=_AUGTOOL_INVMIX.format(section=4),
    required={"text"},
    system=_ANNOTATOR,
    user=(
        "Which of these labels fits the text best?\n"
        "{label_descriptions}\n"
        "Text: {text}\n"
        "Answer with the label name only."
    ),
)

# ----------------------------------------------------------------------------------------
# TopEx: the Augmenter's task prompt (§2.4) and the few-shot layout (appendix B)

_TOPEX = "TopEx, {where}, verbatim"

#: §2.4's IMDb task ("Generate a *label* movie review, choose a title based on the topic:
#: '*issue*'"); ``{domain}`` stands where the paper writes "movie review" for IMDb.
TOPEX_TASK = PromptTemplate(
    id="topex.s2.4.task",
    source=_TOPEX.format(where="§2.4 (the IMDb task prompt; {domain} for 'movie review')"),
    verbatim=True,
    required={"label", "issue"},
    user="Generate a {label} {domain}, choose a title based on the topic: '{issue}'",
)

#: Appendix B's task for sentence pairs (HANS): premise and hypothesis around a delimiter.
#: ``{label}``, ``{issue}``, ``{delimiter}`` and ``{label_choices}`` stand where the
#: example shows 'entailment', the cluster name, /delim/ and the two HANS labels.
TOPEX_PAIR_TASK = PromptTemplate(
    id="topex.b.pair-task",
    source=_TOPEX.format(where="appendix B (the HANS task)"),
    verbatim=True,
    required={"label", "issue", "delimiter"},
    user="Generate a premise and a hypothesis based on {issue}, delimited by '{delimiter}', "
    "in a Subject-Verb-Object sentence structure. The sentence pair of premise and "
    "hypothesis should have a {label} relation out of {label_choices} Generate exactly one "
    "pair of premise and hypothesis. Don't provide any post reasoning or explanation, just "
    "the hypothesis and premise. Remember to put the delimiter between premise and "
    "hypothesis, not at the end. The delimiter is {delimiter}, you should use the delimiter "
    "exactly once in your response, to delimit the premise you provide from the hypothesis "
    "you provide.",
)

#: Appendix B's few-shot frame: the preamble, then "Task:" / "Your answer:" per shot, and
#: the open task last. ``{task}`` is a rendered task prompt, ``{answer}`` a member row.
TOPEX_FEWSHOT_PREAMBLE = (
    "You have to complete the following text according to the instructions in 'Task' "
    "where the desired answer is followed by 'Answer'."
)
TOPEX_FEWSHOT_SHOT = "Task:\n\n{task}\n\nYour answer:\n\n{answer}"
TOPEX_FEWSHOT_OPEN = "Task: {task} Your answer:"

AUGTOOL_TOPEX_AUGMENT = PromptTemplate(
    id="augtool.topex-augment",
    source=(
        "TopEx §2.4's task sentence inside augtool's wording (examples as a list, a "
        "format line; --prompt-style augtool)"
    ),
    required={"label", "issue"},
    system="You write new, realistic examples for a text classification dataset.",
    user=(
        "{examples}Generate a {label} {domain}, choose a title based on the topic: '{issue}'."
        "{format}"
    ),
)

# ----------------------------------------------------------------------------------------
# PInR, appendix B.1: refinement prompts and the task prefixes applied before embedding

_PINR = "PInR (model-agnostic text condensation), appendix B.1, verbatim ({name})"

#: The per-dataset refinement prompts. The GSM8K and Quora-QuAD prompts are printed in
#: italics; the asterisks around the whole prompt are that typesetting and are left out,
#: the inner ``*corrected ...*`` marks are kept as printed.
PINR_REFINE: dict[str, PromptTemplate] = {
    "gsm8k": PromptTemplate(
        id="pinr.b1.refine-gsm8k",
        source=_PINR.format(name="GSM8K"),
        verbatim=True,
        required={"question", "answer"},
        user="You are a math tutor. Your job is to correct flawed reasoning in following math "
        "Q&A. Always output the corrected Q&A in the following exact format. Do not add "
        "explanations or extra text. Format: Q: *corrected question text* A: *corrected "
        "answer*. Input Q: {question} Input A: {answer}",
    ),
    "quora": PromptTemplate(
        id="pinr.b1.refine-quora",
        source=_PINR.format(name="Quora-QuAD"),
        verbatim=True,
        required={"question", "answer"},
        user="You are a helpful assistant that writes Q&A pairs in the style of Quora. Your "
        "job is to make sentences fluent, grammatically correct, and logically coherent. "
        "Write questions and answers in the natural, conversational, and explanatory style "
        "of Quora, where questions are natural, curious and clear, and answers are clear, "
        "concise, conversational, thoughtful, detailed, and easy to understand. Return only "
        "the corrected Q&A, nothing else. Format: Q: *corrected question text* A: "
        "*corrected answer* Input Q: {question} Input A: {answer}",
    ),
    "ag_news": PromptTemplate(
        id="pinr.b1.refine-ag_news",
        source=_PINR.format(name="Ag-News"),
        verbatim=True,
        required={"text"},
        user="You will be given a piece of News text, The text may be grammatically "
        "incorrect, awkward, incomplete, or unnatural. Your task is to polish and rewrite "
        "the text. Please polish the following text into fluent, coherent English that "
        "reads like a professional {category} news report, completing unclear expressions "
        "while preserving the original meaning. Input Text: {text}",
    ),
    "sst2": PromptTemplate(
        id="pinr.b1.refine-sst2",
        source=_PINR.format(name="SST-2"),
        verbatim=True,
        required={"sentence"},
        user="You will be given a piece of sentence in movie review, The sentence may be "
        "incorrect, awkward, incomplete, or unnatural. Your task is to polish and rewrite "
        "the it. Please polish the following sentence into fluent, coherent English that "
        "reads like convey a {category} sentiment, rewrite the unclear expressions while "
        "preserving the original words and meaning as much as possible. Input Sentence: "
        "{sentence}",
    ),
    # The paper prints no prompt for other datasets; §3 names the kind of instruction
    # ("rephrase the given text to be logical with minimal changes").
    "generic": PromptTemplate(
        id="augtool.pinr-refine-generic",
        source=(
            "augtool's wording, after the example instruction in PInR §3 ('rephrase the "
            "given text to be logical with minimal changes'); the paper prints no prompt "
            "for datasets other than its four"
        ),
        required={"text"},
        user="Rephrase the given text to be logical with minimal changes{label_clause}. "
        "Reply with the rephrased text only.\n\nText: {text}",
    ),
}

# Aug-PE (Xie et al., 2024), PInR's API-based baseline: the PInR paper prints no prompt
# for it, so these are augtool's wording of Aug-PE's RANDOM_API and VARIATION_API.
_AUG_PE_SOURCE = (
    "augtool's wording of Aug-PE's {api} (Xie et al., 2024); the PInR paper prints no "
    "prompt for its Aug-PE baseline"
)
_AUG_PE_SYSTEM = "You write realistic, varied samples for a dataset."
_AUG_PE_QA_FORMAT = "Reply in exactly this format: Q: <question> A: <answer>"

#: RANDOM_API: a new sample from the label alone. ``{label_clause}`` is the clause
#: ` whose label is "<label text>" (<description>)`, empty without labels.
AUG_PE_RANDOM = PromptTemplate(
    id="augtool.aug-pe.random",
    source=_AUG_PE_SOURCE.format(api="RANDOM_API"),
    system=_AUG_PE_SYSTEM,
    required={"topic"},
    user="Write one new {topic}{label_clause}. Reply with the {topic} only.",
)
AUG_PE_RANDOM_QA = PromptTemplate(
    id="augtool.aug-pe.random-qa",
    source=_AUG_PE_SOURCE.format(api="RANDOM_API") + " (Q&A rows)",
    system=_AUG_PE_SYSTEM,
    required={"topic"},
    user="Write one new {topic}{label_clause} as a question and its answer. " + _AUG_PE_QA_FORMAT,
)
#: VARIATION_API, Aug-PE's default: fill in the blanks of a masked copy.
AUG_PE_BLANK_FILL = PromptTemplate(
    id="augtool.aug-pe.blank-fill",
    source=_AUG_PE_SOURCE.format(api="VARIATION_API (fill-in-the-blanks)"),
    system=_AUG_PE_SYSTEM,
    required={"text"},
    user="Fill in the blanks (_) in the following {topic}{label_clause} so that it reads as one "
    "complete, fluent {topic}. Keep every word that is not a blank; if there are no "
    "blanks, repeat it unchanged. Reply with the completed {topic} only.\n\n{text}",
)
AUG_PE_BLANK_FILL_QA = PromptTemplate(
    id="augtool.aug-pe.blank-fill-qa",
    source=_AUG_PE_SOURCE.format(api="VARIATION_API (fill-in-the-blanks)") + " (Q&A rows)",
    system=_AUG_PE_SYSTEM,
    required={"question", "answer"},
    user="Fill in the blanks (_) in the following question and answer ({topic}{label_clause}) "
    "so that both read as complete, fluent and correct. Keep every word that is not a "
    "blank. " + _AUG_PE_QA_FORMAT + "\n\nQ: {question} A: {answer}",
)
#: VARIATION_API, paraphrasing.
AUG_PE_REPHRASE = PromptTemplate(
    id="augtool.aug-pe.rephrase",
    source=_AUG_PE_SOURCE.format(api="VARIATION_API (paraphrase)"),
    system=_AUG_PE_SYSTEM,
    required={"text"},
    user="Rephrase the following {topic}{label_clause} in different words, keeping its meaning. "
    "Reply with the rephrased {topic} only.\n\n{text}",
)
AUG_PE_REPHRASE_QA = PromptTemplate(
    id="augtool.aug-pe.rephrase-qa",
    source=_AUG_PE_SOURCE.format(api="VARIATION_API (paraphrase)") + " (Q&A rows)",
    system=_AUG_PE_SYSTEM,
    required={"question", "answer"},
    user="Rephrase the following question and answer ({topic}{label_clause}) in different "
    "words, keeping their meaning and the answer correct. " + _AUG_PE_QA_FORMAT + "\n\n"
    "Q: {question} A: {answer}",
)


#: The task-specific prompts PInR applies to classification data before embedding
#: (appendix B.1, after Tao et al., 2024), by dataset.
PINR_PREFIXES: dict[str, str] = {
    "ag_news": "Read the following news article and classify it into one of our categories: "
    "World, Sports, Business, or Science/Technology. Provide a brief rationale for your "
    "classification.",
    "sst2": "Read the following sentences and classify it as either positive or negative "
    "sentiment. Provide a brief rationale for your classification.",
}
PINR_PREFIX_SOURCE = "PInR (model-agnostic text condensation), appendix B.1, verbatim"

_LMMIXUP_SOURCE = (
    "LM-mixup (Deng et al., 2025): the public implementation's <think>/<answer> layout; "
    "augtool's wording"
)

LMMIXUP_FUSE = PromptTemplate(
    id="lmmixup.fuse",
    source=_LMMIXUP_SOURCE,
    system=(
        "You are an expert in data mix-up. You are given several low-quality, noisy or "
        "redundant versions of related {kind} samples. Merge them into a single coherent, "
        "correct and information-dense sample that keeps every essential fact. Reply with "
        "optional reasoning in <think></think> and then the sample in <answer></answer>, "
        "written as:\n{layout}\nWrite nothing outside these tags."
    ),
    user="Merge these samples into one:\n\n{inputs}",
)

LMMIXUP_PARAPHRASE = PromptTemplate(
    id="lmmixup.paraphrase",
    source="augtool (lmmixup build's LLM paraphraser)",
    system=(
        "You rewrite texts for a data-augmentation pipeline. Restate the text you are given "
        "in different words: keep its meaning and every fact, number and name, keep roughly "
        "its length and its line breaks. Reply with the rewritten text only, with no "
        "introduction, quotes or labels."
    ),
    user="Rewrite this text:\n\n{text}",
)

LMMIXUP_JUDGE = PromptTemplate(
    id="lmmixup.judge",
    source=(
        "LM-mixup's quality rating (rarity, complexity, informativeness, overall; 1-10 as "
        "JSON); augtool's wording"
    ),
    system=(
        "You review candidate training examples for instruction tuning. You are shown ONE "
        "example. Judge it on four criteria, each an integer from 1 (poor) to 10 "
        "(excellent):\n"
        "- Rarity: how uncommon, non-trivial and non-generic its content is;\n"
        "- Complexity: how much reasoning, knowledge or skill it takes to produce;\n"
        "- Informativeness: how much correct, useful and self-contained information it "
        "gives;\n"
        "- Overall rating: its value as a training example, all things considered.\n"
        "Answer with ONLY a JSON object and nothing else, exactly in this form:\n"
        '{{"Rarity": <int>, "Complexity": <int>, "Informativeness": <int>, '
        '"Overall rating": <int>}}'
    ),
    user="Example to rate:\n\n{sample}\n\nYour JSON rating:",
)


#: LM-mixup's rating rubric, word for word from the public code (yuu250/LM-mixup,
#: data_process/gpt_rating.py, ``build_rubric`` and the prompt built from it): one user
#: message; ``{task_desc}``/``{task_name}`` name the schema (``RATING_TASKS``).
LMMIXUP_RATE = PromptTemplate(
    id="lmmixup.rate",
    source="LM-mixup public code, data_process/gpt_rating.py (build_rubric), word for word",
    required={"sample", "task_desc", "task_name"},
    user=(
        "You are a data-quality estimator. "
        "Rate this {task_desc} on "
        "Rarity, Complexity, Informativeness, and Overall (1-10 integers).\n"
        "Return ONLY a JSON object like:\n"
        '{{ "Rarity": <int>, "Complexity": <int>, '
        '"Informativeness": <int>, "Overall rating": <int> }}\n\n'
        "### {task_name}:\n"
        "\n\n### Output:\n{sample}\n\n### Rating:"
    ),
)


# ----------------------------------------------------------------------------------------
# The built-in templates of each step, by prompt style

#: step -> {style: template}. A step without an ``augtool`` entry has only the paper's.
STEPS: dict[str, dict[str, PromptTemplate]] = {
    "llm.rewrite": {"paper": LLM_REW, "augtool": AUGTOOL_LLM_REW},
    "llm.generate": {"paper": LLM_GEN, "augtool": AUGTOOL_LLM_GEN},
    "llm.mix": {"paper": LLM_MIX, "augtool": AUGTOOL_LLM_MIX},
    "llm.label": {"paper": LLM_LABEL, "augtool": AUGTOOL_LLM_LABEL},
    "invmix.intrusion-match": {"paper": INTRUSION_MATCH, "augtool": AUGTOOL_INTRUSION_MATCH},
    "invmix.intrusion-label": {"paper": INTRUSION_LABEL, "augtool": AUGTOOL_INTRUSION_LABEL},
    "topex.augment": {"paper": TOPEX_TASK, "augtool": AUGTOOL_TOPEX_AUGMENT},
}


def builtin(step: str, style: str = "paper") -> PromptTemplate:
    """The built-in template of ``step`` in ``style`` (``paper`` or ``augtool``)."""
    if step not in STEPS:
        raise AugtoolError(f"no built-in prompt for step {step!r} (known: {', '.join(STEPS)})")
    if style not in PROMPT_STYLES:
        raise OptionError("prompt_style", f"must be one of {', '.join(PROMPT_STYLES)}")
    return STEPS[step][style]


PROMPTS: dict[str, PromptTemplate] = {
    template.id: template
    for template in (
        *(t for styles in STEPS.values() for t in styles.values()),
        TOPEX_PAIR_TASK,
        *PINR_REFINE.values(),
        AUG_PE_RANDOM,
        AUG_PE_RANDOM_QA,
        AUG_PE_BLANK_FILL,
        AUG_PE_BLANK_FILL_QA,
        AUG_PE_REPHRASE,
        AUG_PE_REPHRASE_QA,
        LMMIXUP_FUSE,
        LMMIXUP_PARAPHRASE,
        LMMIXUP_JUDGE,
        LMMIXUP_RATE,
    )
}


def load_prompt_file(
    path: str | Path,
    *,
    template_id: str,
    available: set[str] | frozenset[str],
    required: set[str] | frozenset[str] = frozenset(),
    option: str = "prompt_file",
) -> PromptTemplate:
    """A user's template: YAML/JSON with ``user`` (and optional ``system``), or plain text
    used as the user message. Placeholders are checked against ``available`` (unknown
    names) and ``required`` (names the step needs) before anything runs."""
    path = Path(path)
    if not path.is_file():
        raise OptionError(option, f"{path}: file not found")
    raw = path.read_text(encoding="utf-8")
    system = None
    user = raw
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        from augtool.core.yamlfile import yaml_error_message

        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise OptionError(option, yaml_error_message(path, exc)) from exc
        if not isinstance(data, dict) or not isinstance(data.get("user"), str):
            raise OptionError(
                option,
                f'{path}: expected a mapping with a "user" template (and optionally "system")',
            )
        unknown_keys = sorted(set(data) - {"user", "system", "source"})
        if unknown_keys:
            raise OptionError(option, f"{path}: unknown key(s) {', '.join(unknown_keys)}")
        user, system = data["user"], data.get("system")
    if not user.strip():
        raise OptionError(option, f"{path}: the prompt template is empty")
    try:
        template = PromptTemplate(
            id=f"{template_id}:file", user=user, system=system, source=str(path)
        )
    except AugtoolError as exc:
        raise OptionError(option, f"{path}: {exc}") from exc
    template.check(available, str(path), option, required=required)
    return template


def step_template(
    step: str,
    style: str,
    path: str | Path | None,
    *,
    available: set[str] | frozenset[str],
    required: set[str] | frozenset[str] = frozenset(),
    alternatives: tuple[frozenset[str], ...] = (),
    needs: str = "use",
    option: str = "prompt_file",
) -> PromptTemplate:
    """The prompt a step sends: the built-in one of ``style``, or the user's file at
    ``path``, checked before anything runs: unknown or missing placeholders, and (with
    ``alternatives``) none of the groups of placeholders of which one must be used whole,
    are one-line errors naming ``option``."""
    default = builtin(step, style)
    if not path:
        return default
    template = load_prompt_file(
        path, template_id=default.id, available=available, required=required, option=option
    )
    if alternatives and not any(group <= template.placeholders for group in alternatives):
        spelled = " or ".join(" and ".join(_braced(sorted(g)).split(", ")) for g in alternatives)
        raise OptionError(option, f"{path}: the prompt must {needs} {spelled}")
    return template
