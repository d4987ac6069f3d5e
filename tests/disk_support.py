"""Filling a small file system, for the full-disk tests of the packer and the trainer."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def fill_disk(folder: Path, leave: int = 0) -> None:
    """Leave about ``leave`` bytes free on ``folder``'s file system with one filler file; with
    ``leave=0``, top it off until not one more byte fits (statvfs is only approximate)."""
    stat = os.statvfs(folder)
    with open(folder / f"filler-{uuid.uuid4().hex}", "wb", buffering=0) as fh:
        try:
            fh.write(b"\0" * max(stat.f_bavail * stat.f_frsize - leave, 0))
        except OSError:
            return  # already full
        if leave:
            return
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                pass
