"""One writer per output: an advisory lock on ``<out>.lock`` held while a job writes.

Two runs writing the same ``<out>.partial`` would interleave their rows. Every job that
writes an output takes :func:`lock_output` first; a second run on the same output is
refused in one line naming the process that holds it. The lock is the kernel's
(``flock`` on POSIX, ``msvcrt.locking`` on Windows), so it is released when the holder
exits for any reason, SIGKILL included: a lock file left behind by a crash is stale and
simply taken over.

Locks are re-entrant within a process: the CLI locks a command's ``--output`` for the
whole command (:func:`augtool.cli.common.handle_errors`) and the writer inside it takes
the same lock again without conflict.
"""

from __future__ import annotations

import os
import sys
import weakref
from pathlib import Path
from types import TracebackType

from augtool.errors import AugtoolError


class OutputLockedError(AugtoolError):
    """Another running process is writing the same output."""


def lock_path_for(output: str | Path) -> Path:
    """``<output>.lock`` beside the output (also for folder outputs)."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def _unhold(key: Path) -> None:
    if _HELD.get(key):
        _HELD[key] -= 1


def _release(fd: int, path: Path, key: Path) -> None:
    _HELD.pop(key, None)  # the kernel lock goes with the descriptor, nested holds too
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
    finally:
        os.close(fd)  # closing the descriptor releases the kernel lock


#: lock file (resolved) -> how many OutputLock objects of this process hold it
_HELD: dict[Path, int] = {}


class OutputLock:
    """The exclusive right to write one output; a context manager."""

    def __init__(self, output: str | Path, *, option: str = "--output") -> None:
        self.output = Path(output)
        self.path = lock_path_for(self.output)
        self.option = option
        self._finalizer: weakref.finalize | None = None

    def acquire(self) -> OutputLock:
        """Take the lock or raise :class:`OutputLockedError` (never waits)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = self.path.resolve()
        if _HELD.get(key):
            _HELD[key] += 1
            self._finalizer = weakref.finalize(self, _unhold, key)
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                raise OutputLockedError(
                    f"{self.option} {self.output}: {_holder(self.path)} is already writing "
                    f"it (lock {self.path}); wait for it to finish or pick another output"
                )
            # The file may have been removed by a holder that finished between our open
            # and our lock: then the lock we hold guards nothing; start again.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        # Released by release(), or when this object is collected (a writer that was
        # never closed), or at interpreter exit; the kernel frees it on any death.
        _HELD[key] = 1
        self._finalizer = weakref.finalize(self, _release, fd, self.path, key)
        return self

    def release(self) -> None:
        """Remove the lock file and let go (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()

    @property
    def held(self) -> bool:
        return self._finalizer is not None and self._finalizer.alive

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def lock_output(output: str | Path, *, option: str = "--output") -> OutputLock:
    """Take the write lock of ``output`` (see :class:`OutputLock`)."""
    return OutputLock(output, option=option).acquire()
