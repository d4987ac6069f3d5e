"""What a pack run will produce: resolved input folders, output folder and the content fingerprint.

The fingerprint covers every option that changes shard contents (not ``--workers`` or
``--strict``), so a re-run can tell "same job, carry on" from "different job, start over".
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inpaint.core.errors import DataError

from .sources import DATA_ENV, default_data_root

PACK_VERSION = 1  # bump when the same arguments would produce different shard contents
GENERATE = "generate"
# Packing sizes the models can train at: the U-Net and the discriminator halve the image four
# times, so ``data.size`` must be a multiple of 16 (checked in inpaint/core/config.py); above 1024 px a
# face shard set outgrows any disk and GPU this project targets (a 100000-px size is a typo).
SIZE_MULTIPLE = 16
MIN_SIZE = 16
MAX_SIZE = 1024


@dataclass
class Plan:
    """Everything that decides the shard contents (the worker count does not)."""
    faces_root: Path
    masks_root: Path | None  # None: generated masks
    out: Path
    size: int
    encoding: str
    quality: int
    shard_size: int
    seed: int
    args: dict
    fingerprint: str = ""


def resolve_inputs(faces: Path | None, masks: str | None) -> tuple[Path, Path | None]:
    """Face and mask folders from the options, else from the default data root.

    Without a mask folder (none given and none in the data root) masks are generated, so the
    pipeline works from faces alone.
    """
    if faces is None or masks is None:
        try:
            root: Path | None = default_data_root()
        except DataError:
            if faces is None:
                raise
            root = None
        if faces is None:
            faces = root / "faces"
            if not faces.is_dir():
                raise DataError(f"{faces}: no faces/ folder in the data root; pass --faces DIR or set {DATA_ENV}")
        if masks is None:
            masks = str(root / "masks") if root is not None and (root / "masks").is_dir() else GENERATE
    masks_root = None if masks == GENERATE else Path(masks)
    if masks_root is not None and not masks_root.is_dir():
        raise DataError(f"{masks_root}: mask folder does not exist; pass an existing --masks DIR or --masks {GENERATE}")
    return faces, masks_root


def check_size(size: int) -> str | None:
    """Why the models could not train on faces packed at ``size`` px, or None when they can."""
    if size < MIN_SIZE:
        return f"must be at least {MIN_SIZE} px"
    if size > MAX_SIZE:
        return f"must be at most {MAX_SIZE} px"
    if size % SIZE_MULTIPLE:
        lower = size - size % SIZE_MULTIPLE
        return (f"must be a multiple of {SIZE_MULTIPLE} (the models halve the image four times); "
                f"use {lower} or {lower + SIZE_MULTIPLE}")
    return None


def make_plan(ns: argparse.Namespace) -> Plan:
    """Validate the options argparse cannot, find the inputs and fingerprint the job."""
    if not 1 <= ns.quality <= 100:
        raise DataError(f"--quality {ns.quality}: must be between 1 and 100")
    if not 0 <= ns.val_fraction < 0.5:
        raise DataError(f"--val-fraction {ns.val_fraction}: must be at least 0 and below 0.5 (e.g. 0.05)")
    if ns.val_fraction and ns.all_test:
        raise DataError("--val-fraction with --all-test: a held-out set scored whole has no training share to "
                        "take validation faces from; drop one of them")
    size_problem = check_size(ns.size)
    if size_problem:
        raise DataError(f"--size {ns.size}: {size_problem}")
    faces, masks = resolve_inputs(ns.faces, ns.masks)
    out = ns.out or Path("data") / "shards" / str(ns.size)
    content = {
        "faces": str(faces.resolve()), "masks": str(masks.resolve()) if masks else GENERATE,
        "size": ns.size, "encoding": ns.encoding, "quality": ns.quality if ns.encoding == "jpeg" else None,
        "limit": ns.limit, "mask_limit": ns.mask_limit, "mask_count": ns.mask_count if masks is None else None,
        "mask_hole": ns.mask_hole, "shard_size": ns.shard_size, "seed": ns.seed,
        "test_masks_per_bucket": ns.test_masks_per_bucket, "min_per_cell": ns.min_per_cell,
        "ages": list(ns.ages), "pack_version": PACK_VERSION,
    }
    if ns.all_test:  # only when set: folders packed before the option existed keep their fingerprint
        content["all_test"] = True
    if ns.val_fraction:  # likewise
        content["val_fraction"] = ns.val_fraction
    plan = Plan(faces, masks, out, ns.size, ns.encoding, ns.quality, ns.shard_size, ns.seed,
                args={**content, "all_test": ns.all_test, "val_fraction": ns.val_fraction, "out": str(out), "workers": ns.workers,
                      "strict": ns.strict})
    plan.fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return plan


def plan_digest(plan: Plan, kind: str, split: str, paths: Sequence[str]) -> str:
    """Identity of one shard's intended contents: stored in the shard, compared on resume."""
    h = hashlib.sha256(f"{plan.fingerprint}\0{kind}\0{split}\0".encode())
    for p in paths:
        h.update(p.encode() + b"\0")
    return h.hexdigest()
