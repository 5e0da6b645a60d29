"""Label sets for LLM labelling and generation, and tolerant parsing of label replies.

A labels file is JSON or YAML, either a list of names::

    ["billing", "shipping"]

or a mapping from name to a description, or to ``{text, description, aliases}``::

    {"billing": "payments, refunds, invoices",
     "shipping": {"description": "delivery and parcels", "aliases": ["delivery"]},
     "DESC": {"text": "Description", "description": "descriptions of objects, people, or events"}}

The name is the label as it appears in the data; ``text`` is what prompts show (the
inversedMixup paper shows TREC's ``DESC`` as "Description"), and replies naming the
text, the name or an alias all map back to the name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from augtool.errors import AugtoolError, OptionError


@dataclass(frozen=True)
class LabelInfo:
    name: str
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    text: str = ""

    @property
    def shown(self) -> str:
        """What prompts call the label: its ``text``, else its name."""
        return self.text or self.name

    @property
    def surfaces(self) -> tuple[str, ...]:
        """Every spelling a reply may use for the label."""
        return (self.name, *((self.text,) if self.text else ()), *self.aliases)


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of labels with optional descriptions and aliases."""

    labels: tuple[LabelInfo, ...]

    def __post_init__(self) -> None:
        if not self.labels:
            raise OptionError("labels", "the label set is empty")
        seen: dict[str, str] = {}
        for info in self.labels:
            for surface in info.surfaces:
                key = normalize(surface)
                if not key:
                    raise OptionError("labels", f"label {info.name!r} has an empty name or alias")
                if key in seen and seen[key] != info.name:
                    raise OptionError(
                        "labels", f"{surface!r} names both {seen[key]!r} and {info.name!r}"
                    )
                seen[key] = info.name

    @property
    def names(self) -> list[str]:
        return [info.name for info in self.labels]

    def describe(self) -> str:
        """One line per label, ``- text: description``, for prompts (augtool's layout)."""
        return "\n".join(
            f"- {i.shown}: {i.description}" if i.description else f"- {i.shown}"
            for i in self.labels
        )

    def label_list(self) -> str:
        """The labels as inversedMixup's A.3 prompt lists them: each with its description,
        ``"Description": "descriptions of ...",`` one per line as the appendix prints
        them; plain names joined by commas when no label has a description."""
        if not any(i.description for i in self.labels):
            return self.label_map()
        return ",\n".join(
            f'"{i.shown}": "{i.description}"' if i.description else f'"{i.shown}"'
            for i in self.labels
        )

    def label_map(self) -> str:
        """The label texts joined by commas (A.4's ``{label_map}``)."""
        return ", ".join(i.shown for i in self.labels)

    def text_of(self, name: str) -> str:
        """The text prompts show for label ``name`` (the name when it has none)."""
        return next((i.shown for i in self.labels if i.name == name), name)

    def description(self, name: str) -> str:
        return next((i.description for i in self.labels if i.name == name), "")

    def require(self, labels: Iterable[str | None], where: str, option: str = "labels") -> None:
        """Fail in one line when the data has labels this set does not name."""
        unknown = sorted({str(x) for x in labels if x is not None} - set(self.names))
        if unknown:
            raise OptionError(
                option,
                f"{where}: the data has label(s) {', '.join(unknown)} that the labels file "
                f"does not name (it names: {', '.join(self.names)})",
            )

    def parse(self, reply: str) -> str | None:
        """The label a reply names, or ``None`` when it names none or several.

        Tolerates case, whitespace, punctuation, quotes and a leading ``Label:``; accepts
        aliases; a longer reply counts only if exactly one label appears in it as a whole
        word (phrase). Never guesses.
        """
        surfaces = {normalize(s): info.name for info in self.labels for s in info.surfaces}
        text = normalize(reply)
        text = re.sub(r"^(the )?(label|answer|category|class)( is)?\s*", "", text)
        if text in surfaces:
            return surfaces[text]
        found = {
            name
            for surface, name in surfaces.items()
            if re.search(rf"(?<![\w]){re.escape(surface)}(?![\w])", text)
        }
        return found.pop() if len(found) == 1 else None


def normalize(text: str) -> str:
    """Case-folded, accent-free, punctuation-free, single-spaced."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = re.sub(r"[^\w\s/&+-]", " ", text).replace("_", " ")
    return " ".join(text.split())


def label_set_from(data: object, where: str) -> LabelSet:
    """Build a :class:`LabelSet` from a decoded list or mapping."""
    infos: list[LabelInfo] = []
    if isinstance(data, list):
        for item in data:
            if not isinstance(item, (str, int)) or isinstance(item, bool):
                raise AugtoolError(f"{where}: labels must be strings, got {item!r}")
            infos.append(LabelInfo(str(item)))
    elif isinstance(data, dict):
        for name, value in data.items():
            if value is None or isinstance(value, str):
                infos.append(LabelInfo(str(name), value or ""))
            elif isinstance(value, dict):
                unknown = set(value) - {"description", "aliases", "text"}
                if unknown:
                    raise AugtoolError(
                        f"{where}: label {name!r} has unknown key(s) {', '.join(sorted(unknown))}"
                    )
                aliases = value.get("aliases") or []
                if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                    raise AugtoolError(f"{where}: aliases of {name!r} must be a list of strings")
                shown = value.get("text") or ""
                if not isinstance(shown, str):
                    raise AugtoolError(f"{where}: text of {name!r} must be a string")
                infos.append(
                    LabelInfo(str(name), str(value.get("description") or ""), tuple(aliases), shown)
                )
            else:
                raise AugtoolError(
                    f"{where}: label {name!r} must map to a description or to "
                    "{text, description, aliases}"
                )
    else:
        raise AugtoolError(
            f"{where}: expected a list of labels or a mapping of label to "
            f"description, got {type(data).__name__}"
        )
    try:
        return LabelSet(tuple(infos))
    except OptionError as exc:
        raise AugtoolError(f"{where}: {str(exc).split(': ', 1)[1]}") from exc


def load_label_set(path: str | Path) -> LabelSet:
    """Read a labels file (JSON or YAML)."""
    path = Path(path)
    if not path.is_file():
        raise OptionError("labels", f"{path}: file not found")
    from augtool.core.yamlfile import load_yaml_file

    data = load_yaml_file(path)
    return label_set_from(data, str(path))
