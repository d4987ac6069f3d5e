"""The packed shard folder's format: ``index.json``, split and label names, checksums, HDF5 errors.

It lives in the core, beside the reader (``inpaint.io.shards``), because ``inpaint`` imports neither
``data_prep`` nor ``jobs``: the packer (``data_prep``) writes this format and imports it from
here, so writer and readers can never disagree. Standard library only (no torch, no h5py), so
``python -m data_prep.verify`` starts fast. Layout: docs/CONTRACTS.md "Shards".
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

from inpaint.core.errors import DataError

INDEX_NAME = "index.json"
SHARD_FORMAT = 1  # written into index.json and every shard's attributes; readers accept only this
# ``val`` (model selection, disjoint from train and test) exists only when packed with --val-fraction.
FACE_SPLITS = ("train", "val", "test", "eval_balanced")
MASK_SPLITS = ("train", "val", "test")
ENCODINGS = ("raw", "png", "jpeg")
# Face labels are stored as codes (age, gender, race; -1 unknown); these names decode them.
GENDER_NAMES = ("male", "female")
RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")

REPACK_HINT = "re-run python -m data_prep.pack to rebuild it"
LOCK_HINT = "on NFS/Lustre mounts without file locks, set HDF5_USE_FILE_LOCKING=FALSE"
VERIFY_COMMAND = "python -m data_prep.verify"


def sha256_file(path: str | os.PathLike, block: int = 1 << 22) -> str:
    """SHA-256 of a whole file: how the journal, the index and ``verify`` recognise a finished shard."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def is_lock_error(exc: BaseException) -> bool:
    """Whether an ``OSError`` from opening an HDF5 file means HDF5 could not lock it.

    Matched precisely, not by ``"lock" in message``: HDF5's message for a truncated file names the
    "superblock" ("unable to read superblock", "bad sblock"), which contains "lock" too and sent
    people to HDF5_USE_FILE_LOCKING for what is really a damaged file. HDF5 reports a failed lock
    as "unable to lock file" (with errno EAGAIN/ENOLCK/ENOSYS when the file system refuses locks).
    """
    text = str(exc).lower()
    if "unable to lock file" in text or "file locking" in text:
        return True
    return getattr(exc, "errno", None) == errno.ENOLCK


def damaged_shard_message(path: str | os.PathLike, exc: BaseException, root: str | os.PathLike) -> str:
    """One line for a shard HDF5 cannot open: a lock problem gets the locking hint, anything else
    (truncated, overwritten, not HDF5) is called damaged and points at ``verify`` and a repack."""
    if is_lock_error(exc):
        return f"{path}: HDF5 cannot lock the file ({exc}); {LOCK_HINT} (shards are read-only)"
    return (f"{path}: truncated or damaged HDF5 shard ({exc}); check the folder with {VERIFY_COMMAND} {root} "
            f"and {REPACK_HINT}")


def read_index(root: str | os.PathLike) -> dict:
    """The shard folder's ``index.json``, checked for the fields every reader relies on."""
    path = Path(root) / INDEX_NAME
    if not Path(root).is_dir():
        raise DataError(f"{root}: shard folder does not exist; pack one with python -m data_prep.pack --out {root}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: missing, so {root} is not a finished shard folder; {REPACK_HINT}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); check permissions") from None
    try:
        index = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); {REPACK_HINT}") from None

    def bad(what: str) -> DataError:
        return DataError(f"{path}: {what}; {REPACK_HINT}")

    if not isinstance(index, dict):
        raise bad("not a JSON object")
    if index.get("format") != SHARD_FORMAT:
        raise bad(f"format {index.get('format')!r} is not the supported format {SHARD_FORMAT}")
    if not isinstance(index.get("size"), int) or index["size"] <= 0:
        raise bad("'size' is missing or not a positive integer")
    if index.get("encoding") not in ENCODINGS:
        raise bad(f"'encoding' must be one of {', '.join(ENCODINGS)}")
    shards = index.get("shards")
    if not isinstance(shards, list):
        raise bad("'shards' is missing or not a list")
    for i, s in enumerate(shards):
        if not isinstance(s, dict) or not {"file", "kind", "split", "count", "sha256"} <= s.keys():
            raise bad(f"shard entry {i} lacks file/kind/split/count/sha256")
        splits = FACE_SPLITS if s["kind"] == "faces" else MASK_SPLITS if s["kind"] == "masks" else None
        if splits is None or s["split"] not in splits:
            raise bad(f"shard entry {i} ({s['file']}) has unknown kind/split {s['kind']}/{s['split']}")
        if not isinstance(s["count"], int) or s["count"] < 0 or "/" in str(s["file"]) or "\\" in str(s["file"]):
            raise bad(f"shard entry {i} ({s['file']}) has a bad count or file name")
    counts = index.get("counts")
    if not isinstance(counts, dict) or not isinstance(counts.get("faces"), dict) or not isinstance(counts.get("masks"), dict):
        raise bad("'counts' is missing faces/masks")
    for kind, splits in (("faces", FACE_SPLITS), ("masks", MASK_SPLITS)):
        for split in splits:
            total = sum(s["count"] for s in shards if s["kind"] == kind and s["split"] == split)
            if counts[kind].get(split, 0 if split == "val" else None) != total:  # val: only when packed with one
                raise bad(f"counts.{kind}.{split} = {counts[kind].get(split)} but its shards hold {total}")
    return index
