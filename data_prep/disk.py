"""A full disk during a pack: keep HDF5 away from it, and say roughly how much room the pack needs.

What fails first differs from run to run (a chunk write, a file close, the journal, the lock
file); whether an error means "disk full" is decided once for the project by
:func:`inpaint.core.disk.is_disk_full`, and the packer turns it into one line naming the path here.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from inpaint.core import disk as core_disk
from inpaint.core.disk import format_bytes, free_bytes

from .splits import TEST_FRACTION_DENOM

_HDF5_FILENAME = re.compile(r"filename = '([^']+)'")
ROOM_MARGIN = 1 << 20  # HDF5 metadata (chunk index, attributes) written on flush and close
MASK_GZIP_RATIO = 8  # binary masks shrink ~16x with gzip (shards.py); half that as a margin


def failed_path(exc: BaseException, default: Path) -> str:
    """The file whose write failed: the exception's filename, HDF5's ``filename = '…'``, else ``default``."""
    filename = getattr(exc, "filename", None)
    if filename:
        return str(filename)
    found = _HDF5_FILENAME.search(str(exc))
    return found.group(1) if found else str(default)


def ensure_room(path: Path, nbytes: int) -> None:
    """Raise ENOSPC *before* writing ``nbytes`` to ``path`` (an HDF5 file) when they would not fit
    with :data:`ROOM_MARGIN` to spare.

    HDF5 must never meet a full disk itself: a failed write leaves its cached metadata unflushable,
    and the packer then crashed while unwinding (segmentation fault, bus error, 7 tries in 9) and
    never printed its error. Checked before each buffered write (one ``statvfs``), a full disk is an
    ordinary ``OSError`` while every HDF5 file is still sound, closes and is removed. Only another
    process filling the disk between the check and the write can still surprise HDF5.
    """
    free = free_bytes(path.parent) or 0  # unknown counts as full: HDF5 must never meet a full disk
    if free < nbytes + ROOM_MARGIN:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {format_bytes(nbytes + ROOM_MARGIN)} wanted, "
                                    f"{format_bytes(free)} free", str(path))


def estimated_bytes(size: int, n_faces: int, n_masks: int) -> int:
    """Peak room a pack needs: its face shards (train and test, plus the balanced split, a subset
    of the test faces stored again), the uncompressed mask staging file, the mask shards and the
    room kept free for HDF5's metadata (:func:`ensure_room`). Faces count at their raw ``size²·3`` bytes: exact for raw shards, a bound for png/jpeg.
    """
    faces = n_faces * (1 + 1 / TEST_FRACTION_DENOM) * size * size * 3
    masks = n_masks * size * size * (1 + 1 / MASK_GZIP_RATIO)
    return int(faces + masks + ROOM_MARGIN)


def written_bytes(out: Path) -> int:
    """Bytes of finished shards in ``out`` (kept for a resume); unfinished ones end in ``.tmp-<pid>``
    (:func:`inpaint.core.atomic.tmp_name`), not ``.h5``."""
    try:
        return sum(p.stat().st_size for p in out.glob("*.h5"))
    except OSError:
        return 0


def disk_full_message(exc: BaseException, out: Path, needed: int) -> str:
    """One line: which path, that the disk is full, roughly how much the pack needs, and the fix."""
    return core_disk.disk_full_message(failed_path(exc, out), free_bytes(out), needed,
                                       needed_detail=f" in {out}, {format_bytes(written_bytes(out))} of finished "
                                                     "shards kept for a resume",
                                       fix="free space and re-run the same command, or pass --out on a larger file system")
