"""Mask stage of a pack: measure every mask, choose test masks per bucket, write the shards.

Test masks can only be chosen once every mask's bucket is known, and holding all masks in memory
would not scale, so masks go once through the decoder into an uncompressed temporary staging
file and the split shards are written from it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from inpaint.core.buckets import BUCKET_EDGES, BUCKET_LABELS
from inpaint.core.errors import DataError
from inpaint.core.shard_format import MASK_BUCKET, MASK_RATIO, MASKS, SOURCE_PATHS

from .faces import Skipped
from .mask_gen import generate_mask
from .masks import MaskSample, load_mask
from .plan import GENERATE, Plan, plan_digest
from .shards import ShardWriter, shard_name
from .sources import MASK_SUFFIXES, list_images
from .splits import chunks, split_masks, spread_evenly
from .state import RunState

STAGING_NAME = ".masks-staging.h5"  # always carries a temporary suffix on disk


def mask_sources(plan: Plan, mask_limit: int | None, mask_count: int, hole: str, unlisted: list[Skipped]
                 ) -> tuple[list[Any], Callable[[Any], MaskSample | Skipped]]:
    """The items to turn into masks (file paths, or indices of generated masks) and how; what
    could not be searched goes to ``unlisted``."""
    if plan.masks_root is None:
        n = min(mask_count, mask_limit or mask_count)
        return list(range(n)), partial(generate_mask, size=plan.size, seed=plan.seed)
    files = list_images(plan.masks_root, MASK_SUFFIXES, unlisted)
    if not files:
        raise DataError(f"{plan.masks_root}: no mask images ({', '.join(MASK_SUFFIXES)}) found; "
                        f"pass a folder of masks or --masks {GENERATE}")
    return spread_evenly(files, mask_limit), partial(load_mask, str(plan.masks_root), size=plan.size, hole=hole)


def pack_masks(state: RunState, mask_limit: int | None, mask_count: int, hole: str, per_bucket: int,
               val_fraction: float = 0.0) -> dict:
    """Write the mask shards; returns counts per split and bucket and how the test share was chosen."""
    plan = state.plan
    unlisted: list[Skipped] = []
    items, load = mask_sources(plan, mask_limit, mask_count, hole, unlisted)
    for problem in unlisted:
        state.skip("masks", plan.masks_root, problem.path, problem.reason)
    staging = ShardWriter(plan.out / STAGING_NAME, "masks", "staging", plan.size, len(items), compress=False)
    try:
        for result in state.ordered(load, items, "masks"):
            if isinstance(result, Skipped):
                state.skip("masks", plan.masks_root or Path(GENERATE), result.path, result.reason)
            else:
                staging.add(result)
        f = staging.file
        n = staging.count
        if n == 0:
            raise DataError(f"{plan.masks_root}: none of the {len(items)} masks is usable (first reason: "
                            f"{state.skipped[-1]['reason'] if state.skipped else 'unknown'}); "
                            f"pass another --masks folder or --masks {GENERATE}")
        paths = [p.decode() if isinstance(p, bytes) else p for p in f[SOURCE_PATHS.name][:n]]
        buckets = f[MASK_BUCKET.name][:n].astype(np.int64)
        ratios = f[MASK_RATIO.name][:n]
        test, train, val, granted = split_masks(paths, buckets, per_bucket, plan.seed, val_fraction)
        counts: dict[str, int] = {}
        per_bucket_counts: dict[str, list[int]] = {}
        splits = (("train", train), ("val", val), ("test", test)) if val_fraction > 0 else (("train", train), ("test", test))
        for split, rows in splits:
            counts[split] = len(rows)
            state.progress.begin(f"masks {split} shards", len(rows), "masks")
            per_bucket_counts[split] = np.bincount(buckets[rows], minlength=len(BUCKET_EDGES)).tolist()
            for number, group in enumerate(chunks(rows, plan.shard_size)):
                name = shard_name("masks", split, number)
                digest = plan_digest(plan, "masks", split, [paths[i] for i in group])
                if state.reuse(name, digest) is not None:
                    state.progress.advance(len(group))
                    continue
                writer = ShardWriter(plan.out / name, "masks", split, plan.size, len(group), "raw", digest)
                try:
                    for i in group:
                        writer.add(MaskSample(paths[i], f[MASKS.name][i], float(ratios[i]), int(buckets[i])))
                        state.progress.advance()
                except BaseException:
                    writer.abort()
                    raise
                state.finish(writer, digest, [])
    finally:
        staging.abort()
    available = np.bincount(buckets, minlength=len(BUCKET_EDGES)).tolist()
    return {"counts": counts, "buckets": per_bucket_counts, "split": {
        "requested_test_per_bucket": per_bucket, "test_per_bucket": granted, "available_per_bucket": available,
        "reduced_buckets": [BUCKET_LABELS[b] for b in range(len(BUCKET_EDGES)) if granted[b] < per_bucket],
        "rule": "a bucket gives min(requested, half its masks) to test, chosen by a seeded hash of the path",
        "source": "generated" if plan.masks_root is None else "files"}}
