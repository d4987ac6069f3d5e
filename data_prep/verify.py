"""``python -m data_prep.verify DIR``: check every shard against ``index.json``.

Run it after copying a shard folder between machines or when a job reports odd data: it
catches flipped bytes (SHA-256), truncated or foreign HDF5 files, wrong shapes, dtypes and
counts, and masks whose stored ratio or bucket disagrees with their pixels.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from inpaint.core.buckets import BUCKET_EDGES, bucket_of
from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.atomic import TMP_MARK
from inpaint.core.errors import DataError
from inpaint.core.shard_format import (
    FACE_IMAGES_ENCODED, FACE_LABELS, LOCK_HINT, MASK_BUCKET, MASK_RATIO, MASKS, VERIFY_COMMAND, DatasetSpec,
    is_lock_error, read_index, sha256_file, shard_datasets,
)

from .shards import open_shard

RATIO_TOLERANCE = 1e-5


def _expect(f: h5py.File, spec: DatasetSpec, count: int, size: int) -> str | None:
    """What is wrong with ``spec``'s dataset in ``f`` (None: nothing); variable-length text and
    bytes are checked for their shape only."""
    name, shape = spec.name, spec.shape(count, size)
    if name not in f:
        return f"dataset '{name}' missing"
    ds = f[name]
    if ds.shape != shape:
        return f"'{name}' has shape {ds.shape}, expected {shape}"
    if not spec.variable_length and ds.dtype != np.dtype(spec.dtype):
        return f"'{name}' has dtype {ds.dtype}, expected {np.dtype(spec.dtype)}"
    return None


def check_structure(f: h5py.File, entry: dict, size: int, encoding: str, deep: bool) -> list[str]:
    """Problems with one open shard (empty list: fine)."""
    n = entry["count"]
    problems: list[str] = []
    wanted = shard_datasets(entry["kind"], encoding)
    problems += [p for p in (_expect(f, spec, n, size) for spec in wanted) if p]
    if problems:
        return problems
    if entry["kind"] == "faces":
        labels = f[FACE_LABELS.name][()]
        if n and (labels.min() < -1 or labels[:, 1].max() > 1 or labels[:, 2].max() > 4):
            problems.append("labels outside (age, gender 0-1, race 0-4, -1 unknown)")
        if deep and encoding != "raw":
            for i in range(n):
                try:
                    with Image.open(io.BytesIO(f[FACE_IMAGES_ENCODED.name][i].tobytes())) as img:
                        if img.size != (size, size):
                            problems.append(f"sample {i} decodes to {img.size}, expected {size}x{size}")
                            break
                        img.load()
                except Exception as exc:  # noqa: BLE001 - any decoder failure means damage
                    problems.append(f"sample {i} does not decode ({exc})")
                    break
    else:
        masks, ratio, bucket = f[MASKS.name][()], f[MASK_RATIO.name][()], f[MASK_BUCKET.name][()]
        if masks.size and masks.max() > 1:
            problems.append("masks hold values other than 0 and 1")
        measured = masks.reshape(n, -1).mean(axis=1) if n else np.zeros(0)
        if n and np.abs(measured - ratio).max() > RATIO_TOLERANCE:
            problems.append("stored hole ratios disagree with the mask pixels")
        elif any(bucket_of(float(r)) != int(b) for r, b in zip(ratio, bucket)):
            problems.append(f"bucket numbers disagree with the ratios (buckets: {len(BUCKET_EDGES)} in inpaint.core.buckets)")
    return problems


def verify(root: Path, check_hash: bool = True, deep: bool = False) -> tuple[list[str], list[str], dict]:
    """(bad shards with reasons, warnings, index); raises DataError when index.json is unusable."""
    index = read_index(root)
    bad: list[str] = []
    for entry in index["shards"]:
        path = root / entry["file"]
        if not path.is_file():
            bad.append(f"{entry['file']} (missing)")
            continue
        if check_hash and sha256_file(path) != entry["sha256"]:
            bad.append(f"{entry['file']} (sha256 differs from index.json: the file was changed or damaged)")
            continue
        try:
            with open_shard(path) as f:
                problems = check_structure(f, entry, index["size"], index["encoding"], deep)
        except OSError as exc:
            problems = [f"HDF5 cannot lock it ({exc}); {LOCK_HINT}" if is_lock_error(exc)
                        else f"truncated or damaged HDF5 file ({exc})"]
        if problems:
            bad.append(f"{entry['file']} ({'; '.join(problems)})")
    listed = {e["file"] for e in index["shards"]}
    warnings = []
    for p in sorted(root.iterdir()):
        if TMP_MARK in p.name:
            warnings.append(f"{p.name}: temporary file of an interrupted pack, not part of the index; "
                            "re-running pack deletes it")
        elif p.suffix == ".h5" and p.name.startswith(("faces-", "masks-")) and p.name not in listed:
            warnings.append(f"{p.name}: shard-like file not listed in index.json; it is ignored by readers")
    return bad, warnings, index


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=VERIFY_COMMAND,
                      description="Check every shard of a packed folder against its index.json.")
    p.add_argument("root", type=Path, help="shard folder (holds index.json)")
    p.add_argument("--no-hash", action="store_true", help="skip the SHA-256 check (structure only, faster)")
    p.add_argument("--deep", action="store_true", help="also decode every encoded (png/jpeg) face")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    started = time.perf_counter()
    bad, warnings, index = verify(ns.root, check_hash=not ns.no_hash, deep=ns.deep)
    for w in warnings:
        print(f"warning: {w}")
    for b in bad:
        print(f"BAD {b}")
    if bad:
        names = ", ".join(b.split(" ", 1)[0] for b in bad)
        raise DataError(f"{ns.root}: {len(bad)} bad shard(s): {names}; re-run the same python -m data_prep.pack "
                        "command to rebuild them")
    c = index["counts"]
    print(f"ok: {len(index['shards'])} shards in {ns.root} verified in {time.perf_counter() - started:.1f} s "
          f"(faces train {c['faces']['train']}, test {c['faces']['test']}, eval_balanced "
          f"{c['faces']['eval_balanced']}; masks train {c['masks']['train']}, test {c['masks']['test']})")
    return 0


if __name__ == "__main__":
    run_cli(main)
