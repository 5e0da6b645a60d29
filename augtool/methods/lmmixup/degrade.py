"""Degradations that turn one clean text into a low-quality or redundant variant.

Each degrader takes a text, a ``random.Random`` and the :class:`DegradeSettings`, and
returns the degraded text:

- ``noise``: keyboard typos (nlpaug ``KeyboardAug``) in about ``noise_rate`` of the words;
- ``drop``: each word dropped with probability ``drop_rate`` (at least one, never all);
- ``truncation``: only the first ``[keep_min, 0.9]`` share of the words is kept;
- ``paraphrase``: a near-duplicate rewrite (WordNet synonyms of a few words and one word
  swap, reusing EDA's operations), or an LLM paraphrase when one is given;
- ``redundancy``: the text followed by a near-duplicate restatement of itself.

Texts are handled as lines of words: line breaks survive every degradation (GSM8K
answers are multi-line), runs of spaces inside a line become one space.
:func:`degrade_fields` applies a list of degradations to a sample's text field values, never
to its ``Tag:`` labels, an ``mcq`` answer letter or a ``tfq`` True/False.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from augtool.core.generation.jobs import ReplyRejected, clean_reply
from augtool.core.generation.params import Message
from augtool.core.generation.prompts import LMMIXUP_PARAPHRASE
from augtool.methods.eda import Sentence, Synonyms, random_swap, synonym_replacement
from augtool.methods.lmmixup.schema import FIELDS, SPECS, label_lines, parse_fields, render_fields

#: The order in which stacked degradations are applied: content rewrites first, then
#: cuts, then surface noise (so truncation can cut into redundant content and typos are
#: not paraphrased away).
ORDER = ("paraphrase", "redundancy", "truncation", "drop", "noise")
#: Degradations that act on the schema's main content field only (the output, the answer,
#: the question of an ``mcq``, the statement of a ``cs`` or ``tfq``, the paragraph).
MAIN_FIELD_ONLY = frozenset({"truncation", "redundancy"})
#: Degradations that can use an LLM paraphrase of the clean value.
USES_PARAPHRASE = frozenset({"paraphrase", "redundancy"})

TRUNCATION_KEEP_MAX = 0.9
#: Rule-based paraphrase: share of the distinct content words replaced by a synonym.
PARAPHRASE_SHARE = 0.15


def paraphrase_prompt(text: str) -> list[Message]:
    """The chat messages asking an LLM for one paraphrase of ``text``."""
    return LMMIXUP_PARAPHRASE.render(text=text.strip())


# --- texts as lines of words --------------------------------------------------------


def split_lines(text: str) -> list[list[str]]:
    """The words of each non-empty line."""
    return [words for words in (line.split() for line in text.splitlines()) if words]


def join_lines(lines: list[list[str]]) -> str:
    """Inverse of :func:`split_lines` (empty lines left out)."""
    return "\n".join(" ".join(words) for words in lines if words)


def normalize(text: str) -> str:
    """``text`` with the spacing every degradation writes (one space, no blank lines)."""
    return join_lines(split_lines(text))


def _regroup(words: list[str], counts: list[int]) -> list[list[str]]:
    """Flat words back into lines of ``counts`` words."""
    lines, start = [], 0
    for count in counts:
        lines.append(words[start : start + count])
        start += count
    return lines


class _LineTokenizer:
    """Whitespace tokenizer for nlpaug that remembers the line lengths of the last text,
    so the reverse tokenizer puts the line breaks back."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def tokenize(self, text: str) -> list[str]:
        lines = split_lines(text)
        self.counts = [len(words) for words in lines]
        return [word for words in lines for word in words]

    def detokenize(self, tokens: list[str]) -> str:
        return join_lines(_regroup(list(tokens), self.counts))


# --- settings -----------------------------------------------------------------------


def _no_synonyms(word: str) -> tuple[str, ...]:
    return ()


@dataclass
class DegradeSettings:
    """How strongly each degradation acts, and the tools they share.

    ``synonyms`` looks up WordNet synonyms of a lowercase word (``WordNetSynonyms``);
    words with digits and one- or two-letter words are never replaced, so numbers,
    formulas and variables stay intact (WordNet maps "x" to "ten").
    """

    noise_rate: float = 0.1
    drop_rate: float = 0.2
    keep_min: float = 0.4
    synonyms: Synonyms = _no_synonyms
    _keyboard: Any = field(default=None, init=False, repr=False)
    _tokenizer: _LineTokenizer = field(default_factory=_LineTokenizer, init=False, repr=False)

    @classmethod
    def from_config(cls, config: Any, synonyms: Synonyms = _no_synonyms) -> DegradeSettings:
        """Settings from a ``BuildConfig``."""
        return cls(config.noise_rate, config.drop_rate, config.keep_min, synonyms)

    def synonyms_of(self, word: str) -> tuple[str, ...]:
        if len(word) < 3 or any(ch.isdigit() for ch in word):
            return ()
        return self.synonyms(word)

    def keyboard(self) -> Any:
        """The nlpaug keyboard-typo augmenter (built once; letters only, lowercase)."""
        if self._keyboard is None:
            from nlpaug.augmenter.char import KeyboardAug

            self._keyboard = KeyboardAug(
                aug_char_min=1,
                aug_char_max=2,
                aug_char_p=0.2,
                aug_word_p=self.noise_rate,
                aug_word_min=1,
                aug_word_max=None,
                include_special_char=False,
                include_numeric=False,
                include_upper_case=False,
                tokenizer=self._tokenizer.tokenize,
                reverse_tokenizer=self._tokenizer.detokenize,
            )
        return self._keyboard


# --- the degradations ---------------------------------------------------------------


class Degrader(Protocol):
    def __call__(
        self,
        text: str,
        rng: random.Random,
        settings: DegradeSettings,
        rewrite: str | None = None,
    ) -> str: ...


def noise(
    text: str, rng: random.Random, settings: DegradeSettings, rewrite: str | None = None
) -> str:
    """Keyboard typos in about ``noise_rate`` of the words (at least one word).

    nlpaug draws from the global ``random`` and ``numpy`` generators: both are seeded from
    ``rng`` for the call and restored afterwards, so the result depends on ``rng`` only.
    """
    import numpy as np

    if settings.noise_rate <= 0 or not split_lines(text):
        return normalize(text)
    augmenter = settings.keyboard()
    seed = rng.getrandbits(32)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        random.seed(seed)
        np.random.seed(seed)
        result = augmenter.augment(text)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    out = result[0] if isinstance(result, list) and result else text
    return normalize(out)


def drop(
    text: str, rng: random.Random, settings: DegradeSettings, rewrite: str | None = None
) -> str:
    """Drop each word with probability ``drop_rate``: at least one word when the text has
    two or more (so the degradation shows), never every word."""
    lines = split_lines(text)
    counts = [len(words) for words in lines]
    words = [word for line in lines for word in line]
    if len(words) < 2 or settings.drop_rate <= 0:
        return join_lines(lines)
    dropped = {i for i in range(len(words)) if rng.random() < settings.drop_rate}
    if not dropped:
        dropped = {rng.randrange(len(words))}
    if len(dropped) == len(words):
        dropped.discard(rng.randrange(len(words)))
    kept = _regroup([w if i not in dropped else "" for i, w in enumerate(words)], counts)
    return join_lines([[w for w in line if w] for line in kept])


def truncation(
    text: str, rng: random.Random, settings: DegradeSettings, rewrite: str | None = None
) -> str:
    """Keep the first ``share`` of the words, ``share`` uniform in ``[keep_min, 0.9]``
    (cut at a word boundary; at least one word kept and one cut when there are two)."""
    lines = split_lines(text)
    words = [word for line in lines for word in line]
    if len(words) < 2:
        return join_lines(lines)
    low, high = sorted((settings.keep_min, TRUNCATION_KEEP_MAX))
    share = rng.uniform(low, high)
    keep = min(len(words) - 1, max(1, round(share * len(words))))
    kept, left = [], keep
    for line in lines:
        if left <= 0:
            break
        kept.append(line[:left])
        left -= len(line)
    return join_lines(kept)


def rule_paraphrase(text: str, rng: random.Random, settings: DegradeSettings) -> str:
    """A near-duplicate: WordNet synonyms for a few distinct content words (EDA's SR),
    then one swap of two words (EDA's RS); line breaks kept."""
    lines = split_lines(text)
    counts = [len(words) for words in lines]
    sentence = Sentence.parse(" ".join(word for line in lines for word in line))
    words = len(sentence.word_positions())
    if not words:
        return join_lines(lines)
    replace = max(1, round(PARAPHRASE_SHARE * words))
    sentence = synonym_replacement(sentence, replace, rng, settings.synonyms_of)
    sentence = random_swap(sentence, 1, rng)
    # One token stays one token (a multi-word synonym is one token), so lines regroup.
    tokens = [f"{lead}{core}{trail}" for lead, core, trail in sentence.tokens]
    return join_lines(_regroup(tokens, counts))


def paraphrase(
    text: str, rng: random.Random, settings: DegradeSettings, rewrite: str | None = None
) -> str:
    """``rewrite`` (an LLM paraphrase) when given, else :func:`rule_paraphrase`."""
    if rewrite is not None:
        return normalize(rewrite)
    return rule_paraphrase(text, rng, settings)


def redundancy(
    text: str, rng: random.Random, settings: DegradeSettings, rewrite: str | None = None
) -> str:
    """The text, then a near-duplicate restatement of it (``rewrite`` when given): the
    same content twice. Multi-line texts get the restatement on a new line."""
    base = normalize(text)
    again = normalize(rewrite) if rewrite is not None else rule_paraphrase(text, rng, settings)
    separator = "\n" if "\n" in base else " "
    return f"{base}{separator}{again}"


DEGRADERS: dict[str, Degrader] = {
    "noise": noise,
    "drop": drop,
    "truncation": truncation,
    "paraphrase": paraphrase,
    "redundancy": redundancy,
}


def ordered(names: list[str]) -> list[str]:
    """``names`` in the order they are applied (:data:`ORDER`), duplicates removed."""
    return [name for name in ORDER if name in names]


# --- LLM replies --------------------------------------------------------------------


def tag_lines(schema: str, text: str) -> int:
    """How many lines of ``text`` start like a field label of ``schema`` (``A:``...)."""
    return label_lines(schema, text)


def clean_paraphrase(reply: str, original: str, schema: str) -> str:
    """The paraphrase in an LLM reply, or :class:`ReplyRejected`.

    A one-line original keeps the reply's first substantive line (:func:`clean_reply`);
    a multi-line one keeps every line after a leading ``Here is...:`` line. A reply with
    more field-label lines than the original (it would break the sample's layout) is
    rejected.
    """
    if "\n" not in original.strip():
        text = clean_reply(reply)
    else:
        lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
        while len(lines) > 1 and lines[0].endswith(":"):
            lines.pop(0)
        text = "\n".join(lines)
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
            text = text[1:-1].strip()
        if not text:
            raise ReplyRejected("empty reply")
    if tag_lines(schema, text) > tag_lines(schema, original):
        raise ReplyRejected("reply contains field labels")
    return normalize(text)


# --- whole samples ------------------------------------------------------------------

Rewrites = dict[tuple[str, str], str]


def targets_of(schema: str, values: dict[str, str], name: str) -> list[str]:
    """The fields a degradation acts on: the main content field for truncation/redundancy,
    every non-empty text field for the others (never an answer letter or True/False)."""
    spec = SPECS[schema]
    if name in MAIN_FIELD_ONLY:
        return [spec.main] if (values.get(spec.main) or "").strip() else []
    return [n for n in spec.text_fields if (values.get(n) or "").strip()]


def reads_back(schema: str, values: dict[str, str]) -> bool:
    """Whether the text of ``values`` parses back into exactly these (stripped) values."""
    expected = {n: (values.get(n) or "").strip() for n in FIELDS[schema]}
    return parse_fields(schema, render_fields(schema, expected)) == expected


def degrade_fields(
    schema: str,
    values: dict[str, str],
    names: list[str],
    rng: random.Random,
    settings: DegradeSettings,
    rewrites: Rewrites | None = None,
) -> dict[str, str]:
    """Apply ``names`` (in the given order) to the field values of one sample.

    ``rewrites[(field, name)]`` is an LLM paraphrase of the clean value of ``field`` for
    ``paraphrase`` / ``redundancy``; missing ones fall back to the rule-based paraphrase.
    A result that would add field-label lines to a value, or whose text would not read
    back into the same fields, is not kept (the value stays as it was), so the variant
    always parses back into the schema's fields.
    """
    rewrites = rewrites or {}
    current = {n: (values.get(n) or "").strip() for n in FIELDS[schema]}
    for name in names:
        degrader = DEGRADERS[name]
        for target in targets_of(schema, current, name):
            before = current[target]
            after = degrader(before, rng, settings, rewrites.get((target, name)))
            if not after.strip() or tag_lines(schema, after) > tag_lines(schema, before):
                continue
            candidate = {**current, target: after}
            # (a sample that did not read back before is only held to the label count)
            if reads_back(schema, candidate) or not reads_back(schema, current):
                current = candidate
    return current


def force_typo(text: str, rng: random.Random) -> str:
    """A typo that always changes ``text``: one character of a random word doubled."""
    lines = split_lines(text)
    counts = [len(words) for words in lines]
    words = [word for line in lines for word in line]
    if not words:
        return text + text[-1:] if text else text
    candidates = [i for i, w in enumerate(words) if any(ch.isalnum() for ch in w)]
    index = rng.choice(candidates or list(range(len(words))))
    word = words[index]
    position = rng.randrange(len(word))
    words[index] = word[: position + 1] + word[position:]
    return join_lines(_regroup(words, counts))
