"""Which face goes to train or test, which masks are test masks, and what ``--limit`` keeps.

Every choice hangs off a hash of the relative path (plus the seed where the protocol allows a
choice), so it is stable across runs and machines and when files are added to the folder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inpaint.core.buckets import BUCKET_EDGES

from .sources import path_key

TEST_FRACTION_DENOM = 10  # 1 in 10 faces is a test face (90/10 split)
VAL_RESOLUTION = 10_000  # --val-fraction is applied in steps of 1/10000 of the path-hash range
MAX_TEST_SHARE = 0.5  # a bucket never gives more than half its masks to test


def face_order(relpaths: Sequence[str]) -> list[str]:
    """Paths in a stable order unrelated to their names, so ``--limit N`` does not bias labels."""
    return sorted(relpaths, key=lambda p: (path_key(p, "order"), p))


def face_split(relpath: str, val_fraction: float = 0.0) -> str:
    """``train``, ``val`` or ``test`` from the path alone: the same file lands in the same split
    forever. Validation faces come out of the training share only (an independent hash), so the
    test split is the same with or without ``--val-fraction``, and results stay comparable."""
    if path_key(relpath, "split") % TEST_FRACTION_DENOM == 0:
        return "test"
    if path_key(relpath, "val") % VAL_RESOLUTION < round(val_fraction * VAL_RESOLUTION):
        return "val"
    return "train"


def spread_evenly(items: Sequence[str], n: int | None) -> list[str]:
    """``n`` items at evenly spaced positions of the sorted list (all NVIDIA buckets, which are in
    file order, stay represented)."""
    if n is None or n >= len(items):
        return list(items)
    if n <= 0:
        return []
    picks = np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))
    return [items[i] for i in picks]


def test_share(available: int, requested: int) -> int:
    """Test masks for a bucket holding ``available``: ``requested`` unless that would leave
    training fewer masks than test, then half the bucket (rounded down)."""
    return min(requested, int(available * MAX_TEST_SHARE))


def split_masks(paths: Sequence[str], buckets: Sequence[int], per_bucket: int, seed: int,
                val_fraction: float = 0.0) -> tuple[list[int], list[int], list[int], list[int]]:
    """Row indices of the test, train and validation masks, and the test count granted per bucket.

    Test and validation rows are grouped by bucket (evaluation reads them bucket by bucket);
    within a bucket the choice is a seeded hash order of the path. Validation masks are
    ``val_fraction`` of each bucket's non-test masks, so the test masks do not depend on it.
    """
    buckets = np.asarray(buckets)
    test: list[int] = []
    val: list[int] = []
    granted: list[int] = []
    for b in range(len(BUCKET_EDGES)):
        rows = [int(i) for i in np.flatnonzero(buckets == b)]
        rows.sort(key=lambda i: (path_key(paths[i], f"mask-test:{seed}"), paths[i]))
        k = test_share(len(rows), per_bucket)
        granted.append(k)
        test.extend(sorted(rows[:k], key=lambda i: paths[i]))
        rest = sorted(rows[k:], key=lambda i: (path_key(paths[i], f"mask-val:{seed}"), paths[i]))
        val.extend(sorted(rest[:round(val_fraction * len(rest))], key=lambda i: paths[i]))
    chosen = set(test) | set(val)
    train = sorted((i for i in range(len(paths)) if i not in chosen),
                   key=lambda i: (path_key(paths[i], f"mask-train:{seed}"), paths[i]))
    return test, train, val, granted


def chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i:i + size] for i in range(0, len(items), size)]
