"""One trainer per run dir: an exclusive ``flock`` on ``run_dir/train.lock`` held for the whole run.

Two trainers in one run dir (two job chains, or one started by hand beside a job) would both
write checkpoints and metrics and silently corrupt the run. The job layer takes the run dir with
an atomic create; this lock covers everything else, including runs started by hand. ``flock``
is taken and checked in one system call, so there is no window between "is it free?" and "it is
mine", and the kernel drops it when the holder dies however it dies (SIGKILL, node reboot), so
a dead holder never blocks the next part: there is no stale lock to take over.

The file also says who holds it (pid, host, start time) so the refusal can name the holder.
It is written in place, not by rename: the lock lives on the file's inode, and replacing the
file would hand the next trainer a fresh, unlocked inode.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from inpaint.contract import LOCK_FILE
from inpaint.errors import FacefillError


class RunDirBusy(FacefillError):
    """Another trainer holds the run dir (exit 2: bad input, fix and run again)."""


class RunDirLock:
    """The held lock; :meth:`release` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, run_dir: Path) -> "RunDirLock":
        """Take the run dir's lock now or raise :class:`RunDirBusy` naming the holder."""
        path = Path(run_dir) / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirBusy(f"run dir {run_dir} is in use by another trainer ({holder}, lock {path}): wait for it to "
                             "finish or stop it, or use another --run-dir") from None
        except BaseException:
            os.close(fd)
            raise
        _write_holder(fd)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = -1


def _write_holder(fd: int) -> None:
    """Record who we are; a full disk only loses this note, never the lock."""
    note = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, note, 0)
    except OSError:
        pass


def _read_holder(fd: int) -> str:
    try:
        note = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        note = ""
    return note or "holder unknown"
