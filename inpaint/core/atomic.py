"""Write-then-rename: nothing half-written ever carries a final name.

Batch jobs are killed at arbitrary moments (wall-time limit, pre-emption, a full disk), so every
file that someone else reads — a checkpoint, a config, a report, a status or owner file, a data
shard — is written to ``<name>.tmp-<pid>`` beside its target, flushed and fsynced, and only then
renamed onto the final name with ``os.replace`` (atomic on one file system). A reader, a resumed
job or a crashed packer therefore sees either the old file or the complete new one, never half a
file under its final name; a failed write removes its temp file.

The ``.tmp-`` mark is part of the contract: ``data_prep`` relies on it never matching a shard name
and sweeps ``*.tmp-<pid>`` leftovers of killed runs.

Standard library only (no torch, no numpy): ``data_prep`` and ``jobs`` import it cheaply.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_MARK = ".tmp-"


def tmp_name(final: str | os.PathLike) -> Path:
    """``<name>.tmp-<pid>`` beside ``final``: same file system for ``os.replace``, never a shard name."""
    final = Path(final)
    return final.with_name(f"{final.name}{TMP_MARK}{os.getpid()}")


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a closed file's data to disk (for files written by path, e.g. by h5py)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Flush ``tmp`` to disk, then give it its final name in one atomic step."""
    fsync_file(tmp)
    os.replace(tmp, final)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO]:
    """Open ``<path>.tmp-<pid>`` for writing (``open(tmp, mode, **open_kwargs)``), creating the
    parent folder; on a clean exit flush, fsync and rename it to ``path``; on any exception
    remove the temp file and re-raise (``path`` keeps its previous content, if any)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8", newline: str | None = None) -> Path:
    """Atomically replace ``path`` with ``text`` (``newline`` as for ``open``)."""
    with atomic_open(path, "w", encoding=encoding, newline=newline) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None, **dumps_kwargs: Any) -> Path:
    """Atomically replace ``path`` with ``json.dumps(obj, indent=indent, **dumps_kwargs)`` plus a
    trailing newline, UTF-8."""
    return write_text(path, json.dumps(obj, indent=indent, **dumps_kwargs) + "\n")
