"""The packed shard folder's format: ``index.json``, each shard's HDF5 datasets and attributes, split
and label names, checksums, HDF5 errors.

It lives in the core, beside the reader (``inpaint.io.shards``), because ``inpaint`` imports neither
``data_prep`` nor ``jobs``: the packer (``data_prep``) writes this format and imports it from
here, so the writer, the reader and ``verify`` can never disagree. Standard library only (no torch, no h5py), so
``python -m data_prep.verify`` starts fast. Layout: docs/CONTRACTS.md "Shards".
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass
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

#: Stands for the shard's image size (index.json's ``size``) in a sample shape.
SIZE = -1
#: Variable-length types, which numpy has no dtype name for: UTF-8 text, and bytes (an encoded image).
TEXT, BYTES = "text", "bytes"


@dataclass(frozen=True)
class DatasetSpec:
    """One HDF5 dataset of a shard: row ``i`` of every dataset of a shard is sample ``i``.

    The storage choices were measured (benchmarks/bench_loader.py, benchmarks/RESULTS.md): one
    image or mask per chunk, so a random read touches exactly one chunk (64-sample chunks were 8x
    slower); faces uncompressed (lzf/gzip saved only 7-17 % on photos and cut random reads 4-7x);
    binary masks gzip level 4, 16x smaller than raw and as fast to read. Images and masks carry
    HDF5's Fletcher-32 checksum per chunk (4 bytes a sample), so a flipped byte fails the read of
    that sample instead of training on it; shards packed without it read as before.
    """

    name: str
    dtype: str  # a numpy dtype name, or TEXT / BYTES
    sample_shape: tuple[int, ...] = ()  # SIZE: the shard's image size
    chunk_rows: int | None = None  # rows per chunk (at most the capacity); None: HDF5 chooses
    compression: str | None = None
    compression_level: int | None = None
    checksum: bool = False  # Fletcher-32 per chunk, verified by HDF5 on every read

    def shape(self, count: int, size: int) -> tuple[int, ...]:
        """The dataset's shape in a shard of ``count`` samples of ``size`` pixels."""
        return (count, *(size if d == SIZE else d for d in self.sample_shape))

    @property
    def variable_length(self) -> bool:
        return self.dtype in (TEXT, BYTES)


FACE_IMAGES = DatasetSpec("images", "uint8", (SIZE, SIZE, 3), chunk_rows=1, checksum=True)
FACE_IMAGES_ENCODED = DatasetSpec("images_encoded", BYTES, chunk_rows=256)  # one png/jpeg file per row
FACE_LABELS = DatasetSpec("labels", "int16", (3,))  # age, gender, race codes; -1 unknown
FACE_HASHES = DatasetSpec("hashes", TEXT)  # SHA-256 of the source file
MASKS = DatasetSpec(
    "masks", "uint8", (SIZE, SIZE), chunk_rows=1, compression="gzip", compression_level=4, checksum=True
)  # 1 = hole
MASK_RATIO = DatasetSpec("ratio", "float32")  # hole fraction of the mask
MASK_BUCKET = DatasetSpec("bucket", "int8")  # hole-ratio bucket (inpaint.core.buckets)
SOURCE_PATHS = DatasetSpec("paths", TEXT)  # the sample's source file, relative to its input folder


def shard_attributes(kind: str, split: str, size: int, encoding: str, plan_digest: str) -> dict[str, object]:
    """The attributes a shard gets when it is created (a resumed pack recognises its own shards by
    ``plan_digest``); ``skipped`` (JSON list of the plan's files not stored) and ``count`` are added
    when it is sealed."""
    return {"format": SHARD_FORMAT, "kind": kind, "split": split, "size": size, "encoding": encoding, "plan_digest": plan_digest}


def sample_dataset(kind: str, encoding: str) -> DatasetSpec:
    """The dataset holding the samples themselves: face images (raw or encoded) or masks."""
    if kind == "masks":
        return MASKS
    return FACE_IMAGES if encoding == "raw" else FACE_IMAGES_ENCODED


def shard_datasets(kind: str, encoding: str) -> tuple[DatasetSpec, ...]:
    """Every dataset of a ``kind`` ("faces" or "masks") shard, in the order the packer creates them."""
    if kind == "faces":
        return (sample_dataset(kind, encoding), FACE_LABELS, FACE_HASHES, SOURCE_PATHS)
    if kind == "masks":
        return (MASKS, MASK_RATIO, MASK_BUCKET, SOURCE_PATHS)
    raise ValueError(f"unknown shard kind {kind!r}")


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
    return f"{path}: truncated or damaged HDF5 shard ({exc}); check the folder with {VERIFY_COMMAND} {root} and {REPACK_HINT}"


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
