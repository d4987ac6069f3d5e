"""Recognise a full disk, once for the whole project (the trainer and the shard packer).

What reports a full disk differs by writer and from run to run: ``torch.save``'s zip writer raises
``RuntimeError: enforce fail … unexpected pos`` with the ``OSError`` only in ``__context__``, HDF5
raises ``OSError`` with errno 28 somewhere in a long message, a quota gives ``EDQUOT``. Callers turn
it into one line naming the path instead of a traceback, so they must agree on what "full" is, and
they say it in one wording with one unit (:func:`disk_full_message`).

Standard library only: ``data_prep`` imports it without torch.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

MB = 1_000_000
_FULL = (errno.ENOSPC, errno.EDQUOT)
_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the file system or quota is full."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, OSError) and (link.errno in _FULL or any(m in str(link) for m in _FULL_MESSAGES)):
            return True
        link = link.__cause__ or link.__context__
    return False


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes an unprivileged writer may still use on the file system holding ``path`` (or its
    nearest existing parent, for a file not written yet); None when it cannot be read."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def format_bytes(n: int) -> str:
    """``n`` bytes in the one unit every disk message uses: decimal megabytes with one decimal."""
    return f"{n / MB:.1f} MB"


def disk_full_message(
    path: str | os.PathLike, free: int | None, needed: int | None = None, *, fix: str, needed_detail: str = ""
) -> str:
    """One line for a write that did not fit: the path, that the disk is full, how much was free and
    roughly how much was needed (``needed_detail`` goes right after that), and ``fix``."""
    room = f"{format_bytes(free)} free" if free is not None else "no space left"
    need = f", roughly {format_bytes(needed)} needed{needed_detail}" if needed else ""
    return f"{os.fspath(path)}: the disk is full ({room}{need}); {fix}"
