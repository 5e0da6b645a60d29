"""EDA: Easy Data Augmentation (Wei & Zou, 2019), as the paper defines it.

For a sentence of ``l`` words and ``n = max(1, int(alpha * l))``:

- **SR** (synonym replacement): choose ``n`` distinct non-stop-words that have WordNet
  synonyms; replace every occurrence of each with one of its synonyms, at random.
- **RI** (random insertion): ``n`` times, take a random non-stop-word with synonyms and
  insert a random synonym of it at a random position.
- **RS** (random swap): ``n`` times, swap two random words.
- **RD** (random deletion): delete each word with probability ``p``; never all of them.

Each augmented sentence comes from one operation; ``n_aug`` sentences per input are drawn
from ``int(n_aug / len(ops)) + 1`` slots per operation, shuffled, as in the reference
code. Unlike that code, text is not lowercased or stripped of punctuation: operations act
on words, and untouched words keep their casing and punctuation. Every row has its own
random generator seeded from ``(seed, row id)``, so resumed and sharded runs produce the
same rows as one run.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from augtool.core.config import check
from augtool.core.generation.jobs import derive_seed
from augtool.data.provenance import make_aug
from augtool.data.records import Record, child_id

OPS = ("sr", "ri", "rs", "rd")

# The stop-word list of the reference EDA implementation (NLTK's English list).
STOP_WORDS = frozenset(
    """
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
she her hers herself it its itself they them their theirs themselves what which who whom this
that these those am is are was were be been being have has had having do does did doing a an
the and but if or because as until while of at by for with about against between into through
during before after above below to from up down in out on off over under again further then
once here there when where why how all any both each few more most other some such no nor not
only own same so than too very s t can will just don should now
""".split()
)

_TOKEN = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)

Synonyms = Callable[[str], tuple[str, ...]]


@dataclass
class EDAConfig:
    """The EDA operations and how strongly each one changes a sentence."""

    n_aug: int = field(default=9, metadata={"help": "Augmented sentences per input row."})
    alpha_sr: float = field(
        default=0.1, metadata={"help": "Synonym replacement: fraction of words changed."}
    )
    alpha_ri: float = field(
        default=0.1, metadata={"help": "Random insertion: fraction of words inserted."}
    )
    alpha_rs: float = field(
        default=0.1, metadata={"help": "Random swap: fraction of words swapped."}
    )
    p_rd: float = field(default=0.1, metadata={"help": "Random deletion: probability per word."})
    ops: str = field(
        default="sr,ri,rs,rd",
        metadata={"help": "Operations to use, comma-separated: sr, ri, rs, rd."},
    )
    keep_original: bool = field(
        default=False, metadata={"help": "Also write each original row (as the EDA code does)."}
    )
    seed: int = field(default=0, metadata={"help": "Run seed; each row gets its own from it."})
    text_field: str = field(default="text", metadata={"help": "JSON field holding the text."})
    label_field: str = field(default="label", metadata={"help": "JSON field holding the label."})

    def __post_init__(self) -> None:
        check(self.n_aug >= 1, "n_aug", f"must be at least 1 (got {self.n_aug})")
        for name in ("alpha_sr", "alpha_ri", "alpha_rs", "p_rd"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, name, f"must be between 0 and 1 (got {value})")
        chosen = self.op_list()
        unknown = [op for op in chosen if op not in OPS]
        check(
            not unknown,
            "ops",
            f"unknown operation(s) {', '.join(unknown)} (choose from {', '.join(OPS)})",
        )
        check(
            bool(chosen),
            "ops",
            "no operation left: give at least one of sr, ri, rs, rd with a strength above 0",
        )

    def op_list(self) -> list[str]:
        """The operations requested and switched on (strength above 0), in EDA order."""
        requested = [op.strip().lower() for op in self.ops.split(",") if op.strip()]
        strength = {"sr": self.alpha_sr, "ri": self.alpha_ri, "rs": self.alpha_rs, "rd": self.p_rd}
        return [op for op in requested if op not in strength or strength[op] > 0]


class Sentence:
    """A sentence as tokens; a token is (leading punctuation, word, trailing punctuation)."""

    __slots__ = ("tokens",)

    def __init__(self, tokens: list[tuple[str, str, str]]) -> None:
        self.tokens = tokens

    @classmethod
    def parse(cls, text: str) -> Sentence:
        tokens = []
        for raw in text.split():
            lead, core, trail = _TOKEN.match(raw).groups()  # type: ignore[union-attr]
            tokens.append((lead, core, trail))
        return cls(tokens)

    def word_positions(self) -> list[int]:
        return [i for i, (_, core, _) in enumerate(self.tokens) if core]

    def text(self) -> str:
        return " ".join(f"{lead}{core}{trail}" for lead, core, trail in self.tokens)


def _match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def synonym_replacement(
    sentence: Sentence, n: int, rng: random.Random, synonyms: Synonyms
) -> Sentence:
    tokens = list(sentence.tokens)
    candidates = sorted(
        {
            core.lower()
            for _, core, _ in tokens
            if core and core.lower() not in STOP_WORDS and synonyms(core.lower())
        }
    )
    rng.shuffle(candidates)
    for word in candidates[:n]:
        replacement = rng.choice(synonyms(word))
        tokens = [
            (lead, _match_case(core, replacement), trail)
            if core.lower() == word
            else (lead, core, trail)
            for lead, core, trail in tokens
        ]
    return Sentence(tokens)


def random_insertion(
    sentence: Sentence, n: int, rng: random.Random, synonyms: Synonyms
) -> Sentence:
    tokens = list(sentence.tokens)
    candidates = [
        core.lower()
        for _, core, _ in tokens
        if core and core.lower() not in STOP_WORDS and synonyms(core.lower())
    ]
    if not candidates:
        return Sentence(tokens)
    for _ in range(n):
        word = rng.choice(candidates)
        tokens.insert(rng.randint(0, len(tokens)), ("", rng.choice(synonyms(word)), ""))
    return Sentence(tokens)


def random_swap(sentence: Sentence, n: int, rng: random.Random) -> Sentence:
    tokens = list(sentence.tokens)
    positions = sentence.word_positions()
    if len(positions) < 2:
        return Sentence(tokens)
    for _ in range(n):
        i, j = rng.sample(positions, 2)
        (lead_i, core_i, trail_i), (lead_j, core_j, trail_j) = tokens[i], tokens[j]
        tokens[i], tokens[j] = (lead_i, core_j, trail_i), (lead_j, core_i, trail_j)
    return Sentence(tokens)


def random_deletion(sentence: Sentence, p: float, rng: random.Random) -> Sentence:
    positions = sentence.word_positions()
    if len(positions) <= 1:
        return Sentence(list(sentence.tokens))
    deleted = {i for i in positions if rng.random() < p}
    if len(deleted) == len(positions):
        deleted.discard(rng.choice(positions))  # never delete every word
    return Sentence([t for i, t in enumerate(sentence.tokens) if i not in deleted])


def augment_text(
    text: str, config: EDAConfig, rng: random.Random, synonyms: Synonyms
) -> list[tuple[str, str]]:
    """``n_aug`` (operation, augmented text) pairs for one text."""
    sentence = Sentence.parse(text)
    words = len(sentence.word_positions())
    ops = config.op_list()
    per_op = config.n_aug // len(ops) + 1
    slots = [op for op in ops for _ in range(per_op)]
    rng.shuffle(slots)
    results = []
    for op in slots[: config.n_aug]:
        if op == "sr":
            new = synonym_replacement(sentence, max(1, int(config.alpha_sr * words)), rng, synonyms)
        elif op == "ri":
            new = random_insertion(sentence, max(1, int(config.alpha_ri * words)), rng, synonyms)
        elif op == "rs":
            new = random_swap(sentence, max(1, int(config.alpha_rs * words)), rng)
        else:
            new = random_deletion(sentence, config.p_rd, rng)
        results.append((op, new.text()))
    return results


def needs_synonyms(config: EDAConfig) -> bool:
    return any(op in ("sr", "ri") for op in config.op_list())


def vocabulary(records: list[Record]) -> set[str]:
    """Lowercased words of all texts (what SR/RI may look up)."""
    words: set[str] = set()
    for record in records:
        for _, core, _ in Sentence.parse(record.text or "").tokens:
            if core:
                words.add(core.lower())
    return words - STOP_WORDS


def augment_record(
    record: Record, config: EDAConfig, synonyms: Synonyms, taken: Collection[str] = ()
) -> list[Record]:
    """The rows EDA makes from one input row (and the row itself with ``keep_original``).

    ``taken``: the input's ids; generated ids never repeat one of them.
    """
    seed = derive_seed(config.seed, "eda", record.id)
    rng = random.Random(seed)
    rows = [record] if config.keep_original else []
    original = " ".join((record.text or "").split())
    for index, (op, text) in enumerate(augment_text(record.text or "", config, rng, synonyms)):
        aug = make_aug(
            "eda",
            [record.id],
            seed=seed,
            ops=[op],
            alpha_sr=config.alpha_sr,
            alpha_ri=config.alpha_ri,
            alpha_rs=config.alpha_rs,
            p_rd=config.p_rd,
            unchanged=True if text == original else None,
        )
        rows.append(
            Record(
                id=child_id(record.id, f"eda{index}", taken),
                text=text,
                label=record.label,
                label_dist=record.label_dist,
                text_pair=record.text_pair,
                aug=aug,
                extra=dict(record.extra),
            )
        )
    return rows
