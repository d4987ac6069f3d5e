"""The evaluation protocol: which test face is paired with which test mask.

Scores of two models are only comparable on identical pairs, so the pairing is drawn once from a
seed, saved beside the report (``pairs.json``) and can be handed back with ``--pairs`` to score
another model later. The list carries a fingerprint of the shards it was drawn from, so reusing it
with different data is an error rather than a silently different benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inpaint.core.atomic import write_json
from inpaint.core.buckets import BUCKET_EDGES, BUCKET_LABELS
from inpaint.core.errors import DataError

PAIRS_FORMAT = 1
DEFAULT_PAIRS_PER_BUCKET = 500


@dataclass
class PairList:
    """Pairs ``(face_index, mask_index)`` per bucket on the test split, and one mask per face of
    the ``eval_balanced`` split for the demographic breakdown."""

    seed: int
    pairs_per_bucket: int
    fingerprint: str
    buckets: list[list[tuple[int, int]]]
    balanced: list[tuple[int, int]] = field(default_factory=list)

    @property
    def shortfalls(self) -> dict[str, int]:
        """Buckets holding fewer pairs than requested (label → pairs held), for the report."""
        return {BUCKET_LABELS[b]: len(p) for b, p in enumerate(self.buckets) if len(p) < self.pairs_per_bucket}

    def flat(self) -> list[tuple[int, int, int]]:
        """All test pairs as ``(bucket, face, mask)`` in a fixed order."""
        return [(b, f, m) for b, pairs in enumerate(self.buckets) for f, m in pairs]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PAIRS_FORMAT,
            "seed": self.seed,
            "pairs_per_bucket": self.pairs_per_bucket,
            "fingerprint": self.fingerprint,
            "buckets": [
                {"label": BUCKET_LABELS[b], "range": list(BUCKET_EDGES[b]), "pairs": [list(p) for p in pairs]}
                for b, pairs in enumerate(self.buckets)
            ],
            "balanced": [list(p) for p in self.balanced],
        }


def shards_fingerprint(index: dict[str, Any], split: str = "test") -> str:
    """Digest of the shard contents a pair list indexes, as named in ``index.json``: test faces,
    balanced faces and test masks (or, for ``split="val"``, the validation faces and masks)."""
    scored = ((("faces", "test"), ("faces", "eval_balanced"), ("masks", "test")) if split == "test"
              else (("faces", split), ("masks", split)))
    parts = sorted(
        f"{s.get('kind')}/{s.get('split')}/{s.get('count')}/{s.get('sha256')}"
        for s in index.get("shards", [])
        if (s.get("kind"), s.get("split")) in scored
    )
    parts.append(f"size={index.get('size')}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def build_pairs(face_count: int, mask_buckets: Sequence[int] | np.ndarray, balanced_count: int = 0,
                pairs_per_bucket: int = DEFAULT_PAIRS_PER_BUCKET, seed: int = 0, fingerprint: str = "",
                balanced_groups: Sequence[object] | np.ndarray | None = None) -> PairList:
    """Draw the protocol.

    Per bucket: up to ``pairs_per_bucket`` distinct test masks of that bucket, each paired with a
    test face drawn without replacement (with replacement only if there are fewer faces than
    pairs). Each bucket has its own generator seeded by ``(seed, bucket)``, so a bucket's pairs do
    not change when another bucket's mask count does.

    Balanced faces each get one test mask. With ``balanced_groups`` (one group key per balanced
    face, e.g. race × gender) the buckets are dealt round-robin within each group, so every group
    sees the same mix of hole sizes and group differences are not hole-size luck.
    """
    if face_count <= 0:
        raise DataError("the shards hold no test faces: repack them with a test split")
    buckets_arr = np.asarray(mask_buckets, dtype=np.int64)
    if buckets_arr.size == 0:
        raise DataError("the shards hold no test masks: repack them with test masks")
    per_bucket: list[list[tuple[int, int]]] = []
    for b in range(len(BUCKET_EDGES)):
        rng = np.random.default_rng([seed, b])
        candidates = np.flatnonzero(buckets_arr == b)
        n = min(pairs_per_bucket, len(candidates))
        masks = rng.permutation(candidates)[:n]
        faces = rng.choice(face_count, size=n, replace=n > face_count)
        per_bucket.append([(int(f), int(m)) for f, m in zip(faces, masks)])
    return PairList(seed, pairs_per_bucket, fingerprint, per_bucket,
                    _balanced_pairs(buckets_arr, balanced_count, seed, balanced_groups))


def _balanced_pairs(buckets: np.ndarray, count: int, seed: int,
                    groups: Sequence[object] | np.ndarray | None) -> list[tuple[int, int]]:
    if count == 0:
        return []
    rng = np.random.default_rng([seed, len(BUCKET_EDGES)])
    present = [b for b in range(len(BUCKET_EDGES)) if (buckets == b).any()]
    if groups is None:
        groups = np.zeros(count, dtype=np.int64)
    groups = np.asarray(groups, dtype=object)
    if len(groups) != count:
        raise ValueError(f"{len(groups)} group keys for {count} balanced faces")
    wanted = np.empty(count, dtype=np.int64)
    rank: dict[object, int] = {}
    offset = int(rng.integers(len(present)))
    for face, key in enumerate(groups):
        r = rank.get(key, 0)
        rank[key] = r + 1
        wanted[face] = present[(r + offset) % len(present)]
    pairs = []
    for face in range(count):
        choices = np.flatnonzero(buckets == wanted[face])
        pairs.append((face, int(choices[rng.integers(len(choices))])))
    return pairs


def save_pairs(pairs: PairList, path: str | os.PathLike) -> Path:
    """Write the pair list as JSON, atomically."""
    return write_json(path, pairs.to_json(), separators=(",", ":"))


def load_pairs(path: str | os.PathLike, fingerprint: str, face_count: int, mask_count: int,
               balanced_count: int) -> PairList:
    """A saved pair list, checked against the shards it is about to be used with."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != PAIRS_FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {PAIRS_FORMAT}")
        buckets = [[(int(f), int(m)) for f, m in entry["pairs"]] for entry in raw["buckets"]]
        balanced = [(int(f), int(m)) for f, m in raw.get("balanced", [])]
        pairs = PairList(int(raw["seed"]), int(raw["pairs_per_bucket"]), str(raw["fingerprint"]), buckets, balanced)
    except FileNotFoundError:
        raise DataError(f"pair list {path} does not exist: fix the path or leave out --pairs to draw one") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"pair list {path} is not a facefill pair list ({exc}): leave out --pairs to draw a new one") from exc
    if len(pairs.buckets) != len(BUCKET_EDGES):
        raise DataError(f"pair list {path} has {len(pairs.buckets)} buckets, expected {len(BUCKET_EDGES)}: draw a new one")
    if fingerprint and pairs.fingerprint and pairs.fingerprint != fingerprint:
        raise DataError(f"pair list {path} was drawn from other shards (fingerprint {pairs.fingerprint}, these are {fingerprint}): "
                        "use the shards it was made for, or leave out --pairs")
    bad = [(f, m) for f, m in (p for b in pairs.buckets for p in b) if not (0 <= f < face_count and 0 <= m < mask_count)]
    bad += [(f, m) for f, m in pairs.balanced if not (0 <= f < balanced_count and 0 <= m < mask_count)]
    if bad:
        raise DataError(f"pair list {path} refers to faces/masks these shards lack (first: {bad[0]}): use the shards it was made for")
    return pairs
