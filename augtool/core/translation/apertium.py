"""Apertium (rule-based, offline) back-translation.

Each direction is one long-lived pipeline of the mode's programs (``lt-proc``,
``apertium-tagger``, transfer stages...), started from the ``.mode`` file as argument
lists (no shell) and run in null-flush mode (``-z``). Every text is deformatted in Python
(Apertium's reserved characters escaped, a final ``[\\n]`` superblank) and sent as its own
NUL-terminated unit; each stage answers a unit with its output and a NUL, so one process
chain serves every sentence of the run and no two texts share a sentence or a chunk.

Each text's translation is the same whatever was translated before it in the run (alone,
in any batch, after a resume or in another shard): ``apertium-tagger`` is the one stage
that keeps state across units. When a word has an ambiguity class its model lacks
(``known`` as ``{ADJ,VLEXPP}`` in ``eng-spa``), apertium 3.8's
``find_similar_ambiguity_class`` overwrites the model's open class (the tags of unknown
words) in place, so every later unit with an unknown word could be tagged differently
("What do Mormons believe" -> "Qué Mormons cree", but "... creer" anywhere after "What
is D.B. Cooper known for" in the same process). The tagger is therefore run with ``-d``,
which reports such a word on stderr, and is fed one unit at a time: after a unit that
made it report anything it is replaced by a fresh one (a spare, started in advance), so
every unit is tagged by a tagger in its pristine state. The other stages stream.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from augtool.core.translation.base import BackTranslator, Direction
from augtool.errors import AugtoolError

_RESERVED = re.compile(r"([\\\[\]^$/@<>{}])")
_HOW_TO_INSTALL = "install it with `apt-get install apertium apertium-en-es`"
_TAGGER = "apertium-tagger"
_READ = 1 << 16


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


def _read_units(fd: int, count: int, stopped: Callable[[], Exception]) -> Iterator[bytes]:
    """The next ``count`` NUL-terminated units read from ``fd`` (a blocking pipe)."""
    buffer = b""
    while count:
        chunk = os.read(fd, _READ)
        if not chunk:
            raise stopped()
        *units, buffer = (buffer + chunk).split(b"\0")
        yield from units[:count]
        count -= min(count, len(units))


def _write_all(stream: IO[bytes], data: bytes) -> None:
    stream.write(data)
    stream.flush()


class _Chain:
    """Stages piped one into the next; the first reads from and the last writes to us."""

    def __init__(self, commands: list[list[str]], stderr: Any) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        previous = None
        for command in commands:
            process = subprocess.Popen(
                command,
                stdin=previous.stdout if previous else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
            if previous is not None and previous.stdout is not None:
                previous.stdout.close()  # the next stage owns it now
            self.processes.append(process)
            previous = process

    @property
    def stdin(self) -> IO[bytes]:
        assert self.processes[0].stdin is not None
        return self.processes[0].stdin

    @property
    def stdout_fd(self) -> int:
        assert self.processes[-1].stdout is not None
        return self.processes[-1].stdout.fileno()

    def close(self) -> None:
        _close_quietly(self.processes[0].stdin)
        for process in self.processes:
            _wait(process)
        _close_quietly(self.processes[-1].stdout)


def _close_quietly(stream: IO[bytes] | None) -> None:
    if stream is not None and not stream.closed:
        try:
            stream.close()
        except OSError:
            pass


def _wait(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Tagger:
    """``apertium-tagger`` fed one unit at a time and replaced by a fresh process after any
    unit that made it report something on stderr (see the module docstring): each unit is
    tagged as by a tagger that has seen nothing else."""

    def __init__(self, command: list[str], mode: str) -> None:
        self.command = [command[0], "-d", *command[1:]]  # -d: report new ambiguity classes
        self.mode = mode
        self.restarts = 0
        self.last_error = ""
        self._retired: list[subprocess.Popen[bytes]] = []
        self._spare: subprocess.Popen[bytes] | None = None
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for stream in (process.stdin, process.stdout, process.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
        return process

    def tag(self, unit: bytes) -> bytes:
        """The tagged unit (without its NUL); a fresh tagger takes over if this one spoke."""
        reply, spoke = self._exchange(unit + b"\0")
        if spoke:  # its state may have changed: the next unit gets a fresh tagger
            self._replace()
        return reply

    def _exchange(self, data: bytes) -> tuple[bytes, bool]:
        """Write one unit and read the reply up to its NUL, with whether the tagger wrote
        anything on stderr meanwhile. All three pipes are polled, so that neither a unit
        larger than the pipe buffers nor a flood of reports can deadlock."""
        stdin, stdout, stderr = self.process.stdin, self.process.stdout, self.process.stderr
        assert stdin is not None and stdout is not None and stderr is not None
        in_fd, out_fd, err_fd = stdin.fileno(), stdout.fileno(), stderr.fileno()
        pending = memoryview(data)
        reply = bytearray()
        poller = select.poll()
        poller.register(out_fd, select.POLLIN)
        poller.register(err_fd, select.POLLIN)
        writing = spoke = False
        while True:
            if pending:
                try:
                    pending = pending[os.write(in_fd, pending) :]
                except BlockingIOError:
                    pass
                except OSError as exc:
                    raise self._stopped(exc) from exc
                if bool(pending) != writing:
                    writing = bool(pending)
                    if writing:
                        poller.register(in_fd, select.POLLOUT)
                    else:
                        poller.unregister(in_fd)
            for fd, _ in poller.poll():
                if fd == err_fd:
                    spoke = True
                    if not self._drain_stderr():
                        poller.unregister(err_fd)
                elif fd == out_fd:
                    try:
                        chunk = os.read(out_fd, _READ)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise self._stopped()
                    reply += chunk
                    if reply.endswith(b"\0"):
                        # A report is written before the unit's NUL, so it is here by now.
                        spoke = self._drain_stderr() or spoke
                        return bytes(reply[:-1]), spoke

    def _drain_stderr(self) -> bool:
        """Read what the tagger has written on stderr (keeping its last lines for error
        messages); whether there was anything. False at once when nothing is waiting."""
        assert self.process.stderr is not None
        text = b""
        while True:
            try:
                chunk = os.read(self.process.stderr.fileno(), _READ)
            except BlockingIOError:
                break
            if not chunk:
                break
            text = (text + chunk)[-4096:]
        if text:
            self.last_error = text.decode("utf-8", errors="replace").strip()
        return bool(text)

    def _stopped(self, cause: BaseException | None = None) -> AugtoolError:
        try:
            self._drain_stderr()
        except OSError:
            pass
        last = (self.last_error or str(cause or "no error output")).splitlines()
        return AugtoolError(f"Apertium mode {self.mode} stopped ({_TAGGER}): {last[-1]}")

    def _replace(self) -> None:
        old = self.process
        self.process = self._spare if self._spare is not None else self._start()
        self._spare = self._start()  # loads its model while the new one works
        self.restarts += 1
        self.last_error = ""  # the reports of the retired tagger
        for stream in (old.stdin, old.stdout, old.stderr):
            _close_quietly(stream)
        self._retired = [p for p in self._retired if p.poll() is None] + [old]

    def close(self) -> None:
        for process in [self.process, *([self._spare] if self._spare else [])]:
            _close_quietly(process.stdin)
        for process in [self.process, *([self._spare] if self._spare else []), *self._retired]:
            _wait(process)
            for stream in (process.stdout, process.stderr):
                _close_quietly(stream)


class ApertiumPipe:
    """One long-lived null-flush pipeline for one mode (translation direction): the stages
    before the tagger and those after it each stream as one process chain, and the tagger
    between them sees one unit at a time (see the module docstring)."""

    def __init__(self, mode: str, mark_unknown: bool = False) -> None:
        self.mode = mode
        self.commands = pipeline_commands(mode, mark_unknown)
        self._stderr = tempfile.TemporaryFile()
        self._broken: BaseException | None = None
        at = next((i for i, c in enumerate(self.commands) if c[0] == _TAGGER), None)
        if at is None or at == 0:  # no tagger (or nothing before it): one chain
            self.head = _Chain(self.commands, self._stderr)
            self.tagger: _Tagger | None = None
            self.tail: _Chain | None = None
        else:
            self.head = _Chain(self.commands[:at], self._stderr)
            self.tagger = _Tagger(self.commands[at], mode)
            self.tail = _Chain(self.commands[at + 1 :], self._stderr)

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The running stages, in order."""
        middle = [self.tagger.process] if self.tagger else []
        return [*self.head.processes, *middle, *(self.tail.processes if self.tail else [])]

    def translate(self, texts: list[str]) -> list[str]:
        """Translate a batch through the running pipeline, one NUL-framed unit per text."""
        if not texts:
            return []
        if self._broken is not None:
            raise AugtoolError(f"Apertium mode {self.mode} failed earlier: {self._broken}")
        payload = b"".join(deformat(text).encode("utf-8") + b"\0" for text in texts)
        failure: list[BaseException] = []
        threads = [self._thread(failure, _write_all, self.head.stdin, payload)]
        last = self.head
        if self.tagger is not None and self.tail is not None:
            threads.append(self._thread(failure, self._tag_into_tail, len(texts)))
            last = self.tail
        try:
            units = list(_read_units(last.stdout_fd, len(texts), self._stopped))
        except AugtoolError as exc:
            self._broken = failure[0] if failure else exc
            if failure:
                raise AugtoolError(f"Apertium mode {self.mode} failed: {failure[0]}") from exc
            raise
        for thread in threads:
            thread.join()
        if failure:
            self._broken = failure[0]
            raise AugtoolError(f"Apertium mode {self.mode} failed: {failure[0]}")
        return [reformat(unit.decode("utf-8", errors="replace")) for unit in units]

    def _thread(self, failure: list[BaseException], target: Any, *args: Any) -> threading.Thread:
        """``target(*args)`` in a thread (so that no pipe can fill up and deadlock); an
        error is kept and closes the tail's input, so the reader stops instead of hanging."""

        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                failure.append(exc)
                if self.tail is not None:
                    _close_quietly(self.tail.stdin)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def _tag_into_tail(self, count: int) -> None:
        assert self.tagger is not None and self.tail is not None
        stdin = self.tail.stdin
        for unit in _read_units(self.head.stdout_fd, count, self._stopped):
            stdin.write(self.tagger.tag(unit) + b"\0")
            stdin.flush()

    def _stopped(self) -> AugtoolError:
        return AugtoolError(f"Apertium mode {self.mode} stopped: {self._errors()}")

    def _errors(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", errors="replace").strip()
        return text.splitlines()[-1] if text else "no error output"

    def close(self) -> None:
        self.head.close()
        if self.tagger is not None:
            self.tagger.close()
        if self.tail is not None:
            self.tail.close()
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
