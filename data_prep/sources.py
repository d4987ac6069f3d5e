"""Where the input images live and which files count as inputs.

Kept apart from the decoding so the file order (which decides splits and ``--limit``) is
defined in one place and never depends on the file system's listing order.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from inpaint.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DATA_ENV = "FACEFILL_DATA"


def default_data_root(cwd: Path | None = None) -> Path:
    """``$FACEFILL_DATA``, else ``../shared/data`` (the grid's shared copy) when it exists."""
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataError(f"{DATA_ENV}={env} is not a folder; point it at a folder holding faces/ and masks/")
        return root
    candidate = (cwd or Path.cwd()) / ".." / "shared" / "data"
    if candidate.is_dir():
        return candidate.resolve()
    raise DataError(
        "no input data: set FACEFILL_DATA to a folder holding faces/ and masks/, "
        "or pass --faces DIR (and --masks DIR)"
    )


def list_images(root: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[str]:
    """Relative POSIX paths of candidate image files under ``root``, sorted.

    Files are chosen by suffix only; whether they really are images is found out when they
    are decoded, so a broken file is reported as skipped rather than silently ignored.
    """
    if not root.exists():
        raise DataError(f"{root}: folder does not exist; pass an existing folder (or set {DATA_ENV})")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; pass the folder that holds the images")
    found: list[str] = []
    stack = [""]
    while stack:  # os.scandir with plain strings: pathlib costs ~40 us a file, too much for 100k files
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                name = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=True):
                    stack.append(name)
                elif entry.name.lower().endswith(suffixes) and entry.is_file(follow_symlinks=True):
                    found.append(name)
    found.sort()
    return found


def path_key(relpath: str, salt: str) -> int:
    """A stable pseudo-random number for a relative path: decides order and split without bias.

    UTKFace names start with the age, so name order would put children first; a hash does not
    care about the name's meaning and stays the same when other files are added.
    """
    digest = hashlib.sha256(f"{salt}\0{relpath}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
