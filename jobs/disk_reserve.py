"""A little room kept aside in the run dir, so a part can still record why it stops on a full disk.

Every record of the job layer is written under a temporary name and renamed, which needs free
space: on a full disk a part could write nothing, leave ``chain.json`` saying "running" and die
with a traceback. ``jobs.submit`` therefore leaves ``RUN/jobs/disk.reserve`` (64 KiB); a part that
meets a full disk deletes it and writes its last records in the room it frees.
"""

from __future__ import annotations

from pathlib import Path

from inpaint.core.atomic import write_bytes
from jobs.paths import DISK_RESERVE, under

RESERVE_BYTES = 64 * 1024


def make(run_dir: Path | str) -> None:
    """Create the reserve; on a disk already too full, do without."""
    path = under(run_dir, DISK_RESERVE)
    if path.is_file() and path.stat().st_size >= RESERVE_BYTES:
        return
    try:
        write_bytes(path, b"\0" * RESERVE_BYTES)  # zeros written out: real blocks, not a sparse file
    except OSError:
        pass  # no room even for this: the part will say the disk is full without it


def free(run_dir: Path | str) -> bool:
    """Delete the reserve to make room; whether there was one."""
    try:
        under(run_dir, DISK_RESERVE).unlink()
        return True
    except FileNotFoundError:
        return False
