"""One owner per folder: an exclusive ``flock`` on a lock file, held for the whole job.

Two trainers in one run dir (two job chains, or one started by hand beside a job) would both
write checkpoints and metrics and silently corrupt the run; two packers into one shard folder
would overwrite each other's shards. The job layer takes a run dir with an atomic create; this
lock covers everything else, including runs started by hand. ``flock`` is taken and checked in
one system call, so there is no window between "is it free?" and "it is mine" (a pid file has
one: between creating it and writing the pid, or between finding its pid dead and deleting it),
and the kernel drops it when the holder dies however it dies (SIGKILL, node reboot), so a dead
holder never blocks the next one: there is no stale lock to take over.

The file also says who holds it (pid, host, start time) so the refusal can name the holder.
It is written in place, not by rename: the lock lives on the file's inode, and replacing the
file would hand the next taker a fresh, unlocked inode. A holder may remove the file as it lets
go (the packer leaves no lock file behind); a taker therefore checks, once it has the lock, that
the name still leads to the inode it locked, and starts over if not.

Standard library only: ``data_prep`` takes its folder lock with this module without loading torch.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

from inpaint.core.contract import LOCK_FILE
from inpaint.core.errors import FacefillError

_ATTEMPTS = 100  # takers racing holders that remove the file: each round one of them wins
_NOTE_WAIT_S = 1.0  # how long a refused taker waits for a new holder's note
_WHOLE_NOTE = re.compile(r"pid \d+ on \S+ since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # what _write_holder writes


class RunDirBusy(FacefillError):
    """Another trainer holds the run dir (exit 2: bad input, fix and run again)."""


class FileLock:
    """A held exclusive lock on one file; :meth:`release` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, path: str | os.PathLike, busy: Callable[[str], Exception]) -> FileLock:
        """Take the lock on ``path`` (created if missing) now, or raise ``busy(holder)``, where
        ``holder`` is the holder's note ("pid 12 on node3 since …"). OSError when the file cannot
        be created or opened (an unwritable or full folder)."""
        path = Path(path)
        for _ in range(_ATTEMPTS):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise busy(holder) from None
            except BaseException:
                os.close(fd)
                raise
            if _still_named(path, fd):
                _write_holder(fd)
                return cls(path, fd)
            os.close(fd)  # its holder removed it as it let go: lock the file that has the name now
        raise busy("holders keep replacing the lock file")

    def release(self, remove: bool = False) -> None:
        """Let go; ``remove``: delete the file first, while still holding it (see the module note)."""
        if self._fd >= 0:
            if remove:
                try:
                    self.path.unlink()
                except OSError:
                    pass
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = -1


def lock_run_dir(run_dir: Path) -> FileLock:
    """Take ``run_dir/train.lock`` now or raise :class:`RunDirBusy` naming the holder. The file
    stays when the trainer lets go: it names the last holder."""
    path = Path(run_dir) / LOCK_FILE

    def busy(holder: str) -> RunDirBusy:
        return RunDirBusy(
            f"run dir {run_dir} is in use by another trainer ({holder}, lock {path}): wait for it "
            "to finish or stop it, or use another --run-dir"
        )

    return FileLock.acquire(path, busy)


def _still_named(path: Path, fd: int) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _write_holder(fd: int) -> None:
    """Record who we are; a full disk only loses this note, never the lock. Written over the old
    note and then cut to length, so a reader never finds the file emptied by us."""
    note = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
    try:
        os.pwrite(fd, note, 0)
        os.ftruncate(fd, len(note))
    except OSError:
        pass


def _read_holder(fd: int) -> str:
    """The holder's note. A holder writes it just after taking the lock, so a taker that lost the
    race by microseconds waits a moment for it instead of naming nobody."""
    deadline = time.monotonic() + _NOTE_WAIT_S
    while True:
        try:
            note = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        except OSError:
            note = ""
        if _WHOLE_NOTE.fullmatch(note) or time.monotonic() >= deadline:
            return note or "holder unknown"
        time.sleep(0.01)
