"""Where the input images live and which files count as inputs.

Kept apart from the decoding so the file order (which decides splits and ``--limit``) is
defined in one place and never depends on the file system's listing order.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from inpaint.core.errors import DataError

from .faces import Skipped

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


def list_images(root: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
                unlisted: list[Skipped] | None = None) -> list[str]:
    """Relative POSIX paths of candidate image files under ``root``, sorted.

    Files are chosen by suffix only; whether they really are images is found out when they
    are decoded, so a broken file is reported as skipped rather than silently ignored. Likewise
    what cannot be searched (a sub-folder that cannot be listed, a symlink loop, a link to a
    folder already searched) is appended to ``unlisted`` with its reason instead of ending the
    pack with a traceback; each folder is searched once, so a loop cannot list a photo twice.
    """
    if not root.exists():
        raise DataError(f"{root}: folder does not exist; pass an existing folder (or set {DATA_ENV})")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; pass the folder that holds the images")
    found: list[str] = []
    problems: list[Skipped] = []
    top = os.stat(root)
    searched = {(top.st_dev, top.st_ino): "."}  # each folder's identity -> where it was listed
    stack = [""]
    while stack:  # os.scandir with plain strings: pathlib costs ~40 us a file, too much for 100k files
        rel = stack.pop()
        try:
            here, folders = _list_folder(os.path.join(root, rel) if rel else str(root), rel, suffixes, problems)
        except OSError as exc:
            if not rel:
                raise DataError(f"{root}: cannot list the folder ({exc.strerror}); check its permissions") from None
            problems.append(Skipped(rel, f"cannot list this folder ({exc.strerror})"))
            continue
        found += here
        for name, identity in sorted(folders, reverse=True):  # popped in name order: a fixed walk
            if identity in searched:
                problems.append(Skipped(name, f"symlink loop or second link to a folder already listed as "
                                              f"{searched[identity]}"))
            else:
                searched[identity] = name
                stack.append(name)
    found.sort()
    problems.sort(key=lambda s: s.path)
    if unlisted is not None:
        unlisted += problems
    return found


def _list_folder(path: str, rel: str, suffixes: tuple[str, ...], problems: list[Skipped]
                 ) -> tuple[list[str], list[tuple[str, tuple[int, int]]]]:
    """Candidate files and sub-folders (with their identity) of one folder; a folder whose
    listing fails part-way raises, so none of its files is half-listed."""
    files: list[str] = []
    folders: list[tuple[str, tuple[int, int]]] = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = f"{rel}/{entry.name}" if rel else entry.name
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:  # a link that loops (ELOOP), dangles or cannot be followed
                if entry.is_symlink() and (entry.name.lower().endswith(suffixes) or "." not in entry.name):
                    why = "symlink loop" if exc.errno == errno.ELOOP else "cannot follow this link"
                    problems.append(Skipped(name, f"{why} ({exc.strerror})"))
                continue
            if stat.S_ISDIR(st.st_mode):
                folders.append((name, (st.st_dev, st.st_ino)))
            elif stat.S_ISREG(st.st_mode) and entry.name.lower().endswith(suffixes):
                files.append(name)
    return files, folders


def path_key(relpath: str, salt: str) -> int:
    """A stable pseudo-random number for a relative path: decides order and split without bias.

    UTKFace names start with the age, so name order would put children first; a hash does not
    care about the name's meaning and stays the same when other files are added.
    """
    digest = hashlib.sha256(f"{salt}\0{relpath}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
