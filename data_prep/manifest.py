"""Reading and validating a shard folder's ``index.json`` (torch-free, so ``verify`` starts fast).

``inpaint.data.read_index`` re-exports :func:`read_index`; both the packer's verifier and the
training readers rely on the same checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from inpaint.errors import DataError

INDEX_NAME = "index.json"
SUPPORTED_FORMAT = 1
FACE_SPLITS = ("train", "test", "eval_balanced")
MASK_SPLITS = ("train", "test")
ENCODINGS = ("raw", "png", "jpeg")
REPACK_HINT = "re-run python -m data_prep.pack to rebuild it"


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
    if index.get("format") != SUPPORTED_FORMAT:
        raise bad(f"format {index.get('format')!r} is not the supported format {SUPPORTED_FORMAT}")
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
            if counts[kind].get(split) != total:
                raise bad(f"counts.{kind}.{split} = {counts[kind].get(split)} but its shards hold {total}")
    return index
