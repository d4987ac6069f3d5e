"""One ``jobs.part`` decision at a time per run dir: two ends of one part must not both hand on.

A part's end can run twice at once (a job script run again by hand, a requeued job racing its
first run's end, two launchers of one multi-node job): without a lock both read "no end recorded
yet" and both submit a successor. The decision and its records are taken under an exclusive
``flock`` on ``RUN/jobs/part.lock``; waiting for it is bounded, so nothing hangs.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inpaint.core.errors import FacefillError
from jobs.paths import PART_LOCK, under

WAIT_S = 120.0  # a decision takes a second; the holder may be asking a slow scheduler (60 s limit)


@contextmanager
def part_lock(run_dir: Path | str, wait_s: float = WAIT_S) -> Iterator[None]:
    path = under(run_dir, PART_LOCK)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        give_up = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > give_up:
                    raise FacefillError(
                        f"{path}: another jobs.part of this run dir held the lock for {wait_s:.0f} s; "
                        "check for a hung part, then run it again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the flock
