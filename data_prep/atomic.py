"""Write-then-rename helpers: nothing half-written ever carries a final name."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"


def tmp_name(final: Path) -> Path:
    """``<name>.tmp-<pid>`` beside ``final``: same file system for ``os.replace``, never a shard name."""
    return final.with_name(f"{final.name}{TMP_MARK}{os.getpid()}")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, final: Path) -> None:
    """Flush ``tmp`` to disk, then give it its final name in one atomic step."""
    fsync_file(tmp)
    os.replace(tmp, final)


def write_json(path: Path, payload: Any) -> None:
    tmp = tmp_name(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_file(path: Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()
