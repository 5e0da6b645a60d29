"""Apertium (rule-based, offline) back-translation.

Each direction is one long-lived pipeline of the mode's programs (``lt-proc``,
``apertium-tagger``, transfer stages...), started from the ``.mode`` file as argument
lists (no shell) and run in null-flush mode (``-z``). A batch of sentences is deformatted
in Python (Apertium's reserved characters escaped, sentences separated by ``[\\n]``
superblanks), written with a trailing NUL and read back up to the NUL the pipeline echoes:
one process chain serves every sentence of the run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from augtool.core.translation.base import BackTranslator, Direction
from augtool.errors import AugtoolError

_RESERVED = re.compile(r"([\\\[\]^$/@<>{}])")
_HOW_TO_INSTALL = "install it with `apt-get install apertium apertium-en-es`"


def data_dirs() -> list[Path]:
    """Where Apertium modes may live."""
    dirs = [
        os.environ.get("APERTIUM_DATADIR", ""),
        "/usr/share/apertium",
        "/usr/local/share/apertium",
    ]
    return [Path(d) for d in dirs if d and Path(d, "modes").is_dir()]


def available_modes() -> list[str]:
    return sorted({p.stem for d in data_dirs() for p in (d / "modes").glob("*.mode")})


def mode_file(mode: str) -> Path:
    """The ``.mode`` file of ``mode``, or a clear error listing the installed ones."""
    if shutil.which("lt-proc") is None:
        raise AugtoolError(f"Apertium is not installed; {_HOW_TO_INSTALL}")
    for folder in data_dirs():
        path = folder / "modes" / f"{mode}.mode"
        if path.is_file():
            return path
    installed = ", ".join(available_modes()) or "none"
    raise AugtoolError(
        f"Apertium mode {mode!r} is not installed (installed: {installed}); "
        f"{_HOW_TO_INSTALL} or the package for your language pair"
    )


def pipeline_commands(mode: str, mark_unknown: bool = False) -> list[list[str]]:
    """The mode's programs as argument lists, each with ``-z`` (null flush)."""
    text = mode_file(mode).read_text(encoding="utf-8").strip()
    generation = "-g" if mark_unknown else "-n"
    commands = []
    for segment in text.split("|"):
        words = [w for w in shlex.split(segment.replace("$1", generation).replace("$2", "")) if w]
        if words:
            commands.append([words[0], "-z", *words[1:]])
    return commands


def deformat(text: str) -> str:
    """One text as an Apertium stream: whitespace folded, reserved characters escaped, and a
    final blank (lexical transfer flushes only after a blank)."""
    return _RESERVED.sub(r"\\\1", " ".join(text.split())) + "[][\n]"


def reformat(stream: str) -> str:
    """The text of a translated unit: escaping undone, superblanks dropped."""
    return " ".join(_split_blanks(stream))


def _split_blanks(stream: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(stream):
        char = stream[i]
        if char == "\\" and i + 1 < len(stream):
            current.append(stream[i + 1])
            i += 2
            continue
        if char == "[":
            end = i + 1
            while end < len(stream) and stream[end] != "]":
                end += 2 if stream[end] == "\\" else 1
            blank = stream[i + 1 : end]
            if blank == "\n":
                pieces.append("".join(current))
                current = []
            i = end + 1
            continue
        current.append(char)
        i += 1
    pieces.append("".join(current))
    return [" ".join(piece.split()) for piece in pieces if piece.strip()]


class ApertiumPipe:
    """One long-lived null-flush pipeline for one mode (translation direction)."""

    def __init__(self, mode: str, mark_unknown: bool = False) -> None:
        self.mode = mode
        self.commands = pipeline_commands(mode, mark_unknown)
        self._stderr = tempfile.TemporaryFile()
        self.processes: list[subprocess.Popen[bytes]] = []
        previous = None
        for command in self.commands:
            process = subprocess.Popen(
                command,
                stdin=previous.stdout if previous else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
            if previous is not None and previous.stdout is not None:
                previous.stdout.close()  # the next stage owns it now
            self.processes.append(process)
            previous = process

    def translate(self, texts: list[str]) -> list[str]:
        """Translate a batch through the running pipeline, one NUL-framed unit per text."""
        if not texts:
            return []
        first, last = self.processes[0], self.processes[-1]
        payload = b"".join(deformat(text).encode("utf-8") + b"\0" for text in texts)
        failure: list[BaseException] = []

        def feed() -> None:  # a thread, so a large batch cannot deadlock on full pipes
            try:
                assert first.stdin is not None
                first.stdin.write(payload)
                first.stdin.flush()
            except OSError as exc:
                failure.append(exc)

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        assert last.stdout is not None
        buffer = bytearray()
        while buffer.count(0) < len(texts):
            chunk = os.read(last.stdout.fileno(), 1 << 16)
            if not chunk:
                raise AugtoolError(f"Apertium mode {self.mode} stopped: {self._errors()}")
            buffer.extend(chunk)
        writer.join()
        if failure:
            raise AugtoolError(f"Apertium mode {self.mode} failed: {failure[0]}")
        units = bytes(buffer).split(b"\0")[: len(texts)]
        return [reformat(unit.decode("utf-8", errors="replace")) for unit in units]

    def _errors(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", errors="replace").strip()
        return text.splitlines()[-1] if text else "no error output"

    def close(self) -> None:
        first = self.processes[0]
        if first.stdin is not None and not first.stdin.closed:
            try:
                first.stdin.close()
            except OSError:
                pass
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        last = self.processes[-1]
        if last.stdout is not None:
            last.stdout.close()
        self._stderr.close()


class ApertiumBackTranslator(BackTranslator):
    """``eng-<pivot>`` then ``<pivot>-eng`` through two long-lived Apertium pipelines."""

    name = "apertium"

    def __init__(
        self,
        forward: str = "eng-spa",
        backward: str = "spa-eng",
        *,
        mark_unknown: bool = False,
        batch_size: int = 256,
    ) -> None:
        self.forward_mode, self.backward_mode = forward, backward
        self.mark_unknown = mark_unknown
        self.batch_size = batch_size
        mode_file(forward)
        mode_file(backward)
        self.pipes = {
            "forward": ApertiumPipe(forward, mark_unknown),
            "backward": ApertiumPipe(backward, mark_unknown),
        }

    def translate(self, texts: list[str], direction: Direction, seeds: list[int]) -> list[str]:
        return self.pipes[direction].translate(texts)

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "forward": self.forward_mode,
            "backward": self.backward_mode,
            "mark_unknown": self.mark_unknown,
        }

    def close(self) -> None:
        for pipe in self.pipes.values():
            pipe.close()


def translate_one_process_per_sentence(text: str, mode: str) -> str:
    """The slow way (``apertium -u <mode>`` per sentence), kept as the benchmark's peer."""
    done = subprocess.run(
        ["apertium", "-u", mode], input=text.encode("utf-8"), capture_output=True, check=True
    )
    return " ".join(done.stdout.decode("utf-8").split())
