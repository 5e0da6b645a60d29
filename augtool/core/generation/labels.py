"""Label sets for LLM labelling and generation, and tolerant parsing of label replies.

A labels file is JSON or YAML, either a list of names::

    ["billing", "shipping"]

or a mapping from name to a description, or to ``{description, aliases}``::

    {"billing": "payments, refunds, invoices",
     "shipping": {"description": "delivery and parcels", "aliases": ["delivery"]}}
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from augtool.errors import AugtoolError, OptionError


@dataclass(frozen=True)
class LabelInfo:
    name: str
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of labels with optional descriptions and aliases."""

    labels: tuple[LabelInfo, ...]

    def __post_init__(self) -> None:
        if not self.labels:
            raise OptionError("labels", "the label set is empty")
        seen: dict[str, str] = {}
        for info in self.labels:
            for surface in (info.name, *info.aliases):
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
        """One line per label, ``- name: description``, for prompts."""
        return "\n".join(
            f"- {i.name}: {i.description}" if i.description else f"- {i.name}" for i in self.labels
        )

    def description(self, name: str) -> str:
        return next((i.description for i in self.labels if i.name == name), "")

    def parse(self, reply: str) -> str | None:
        """The label a reply names, or ``None`` when it names none or several.

        Tolerates case, whitespace, punctuation, quotes and a leading ``Label:``; accepts
        aliases; a longer reply counts only if exactly one label appears in it as a whole
        word (phrase). Never guesses.
        """
        surfaces = {
            normalize(s): info.name for info in self.labels for s in (info.name, *info.aliases)
        }
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
                unknown = set(value) - {"description", "aliases"}
                if unknown:
                    raise AugtoolError(
                        f"{where}: label {name!r} has unknown key(s) {', '.join(sorted(unknown))}"
                    )
                aliases = value.get("aliases") or []
                if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                    raise AugtoolError(f"{where}: aliases of {name!r} must be a list of strings")
                infos.append(
                    LabelInfo(str(name), str(value.get("description") or ""), tuple(aliases))
                )
            else:
                raise AugtoolError(
                    f"{where}: label {name!r} must map to a description or to "
                    "{description, aliases}"
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
    import yaml

    path = Path(path)
    if not path.is_file():
        raise OptionError("labels", f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AugtoolError(f"{path}: not valid JSON or YAML ({exc})") from exc
    return label_set_from(data, str(path))
