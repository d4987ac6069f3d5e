"""The pair list: fixed by a seed, per bucket, saved, and refused for other shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inpaint.core.buckets import BUCKET_LABELS
from inpaint.core.errors import DataError
from inpaint.evaluation import protocol


def _shards(root: Path):  # type: ignore[no-untyped-def]
    from inpaint.io.shards import FaceShards, MaskShards, read_index

    index = read_index(root)
    return index, FaceShards(root, "test"), MaskShards(root, "test"), FaceShards(root, "eval_balanced")


def test_pair_list_is_identical_across_runs_and_respects_buckets(shards64: Path, tmp_path: Path) -> None:
    index, faces, masks, balanced = _shards(shards64)
    fp = protocol.shards_fingerprint(index)
    a = protocol.build_pairs(len(faces), masks.buckets, len(balanced), 500, seed=0, fingerprint=fp)
    b = protocol.build_pairs(len(faces), masks.buckets, len(balanced), 500, seed=0, fingerprint=fp)
    protocol.save_pairs(a, tmp_path / "a.json")
    protocol.save_pairs(b, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()

    per_bucket_masks = np.bincount(masks.buckets, minlength=6)
    for bucket, pairs in enumerate(a.buckets):
        # Fewer test masks than the requested 500: each mask of the bucket is used exactly once.
        assert len(pairs) == min(500, per_bucket_masks[bucket])
        mask_ids = [m for _, m in pairs]
        assert len(set(mask_ids)) == len(mask_ids)
        assert all(masks.buckets[m] == bucket for m in mask_ids)
        assert all(0 <= f < len(faces) for f, _ in pairs)
    assert a.shortfalls == {label: int(per_bucket_masks[i]) for i, label in enumerate(BUCKET_LABELS) if per_bucket_masks[i] < 500}
    assert [f for f, _ in a.balanced] == list(range(len(balanced)))

    other_seed = protocol.build_pairs(len(faces), masks.buckets, len(balanced), 500, seed=1, fingerprint=fp)
    assert other_seed.buckets != a.buckets

    loaded = protocol.load_pairs(tmp_path / "a.json", fp, len(faces), len(masks), len(balanced))
    assert loaded.buckets == a.buckets and loaded.balanced == a.balanced


def test_a_bucket_keeps_its_pairs_when_another_bucket_changes() -> None:
    buckets = np.repeat(np.arange(6), 20)
    full = protocol.build_pairs(50, buckets, pairs_per_bucket=10, seed=3)
    fewer = protocol.build_pairs(50, buckets[buckets != 5], pairs_per_bucket=10, seed=3)
    assert full.buckets[:5] == fewer.buckets[:5] and fewer.buckets[5] == []


def test_pair_list_for_other_shards_is_refused(shards64: Path, tmp_path: Path) -> None:
    index, faces, masks, balanced = _shards(shards64)
    fp = protocol.shards_fingerprint(index)
    pairs = protocol.build_pairs(len(faces), masks.buckets, len(balanced), 5, fingerprint=fp)
    path = protocol.save_pairs(pairs, tmp_path / "pairs.json")
    with pytest.raises(DataError, match="drawn from other shards"):
        protocol.load_pairs(path, "0" * 16, len(faces), len(masks), len(balanced))
    with pytest.raises(DataError, match="lack"):
        protocol.load_pairs(path, fp, 1, len(masks), len(balanced))
    (tmp_path / "bad.json").write_text(json.dumps({"format": 1}))
    with pytest.raises(DataError, match="not a facefill pair list"):
        protocol.load_pairs(tmp_path / "bad.json", fp, len(faces), len(masks), len(balanced))
    with pytest.raises(DataError, match="does not exist"):
        protocol.load_pairs(tmp_path / "missing.json", fp, len(faces), len(masks), len(balanced))


def test_balanced_groups_get_the_same_mix_of_hole_sizes() -> None:
    buckets = np.repeat(np.arange(6), 30)
    groups = np.array(["White male"] * 12 + ["Black female"] * 12 + ["Asian male"] * 6)
    pairs = protocol.build_pairs(40, buckets, len(groups), pairs_per_bucket=5, seed=2, balanced_groups=groups)
    assert [f for f, _ in pairs.balanced] == list(range(len(groups)))
    for group, per_bucket in (("White male", 2), ("Black female", 2), ("Asian male", 1)):
        faces = np.flatnonzero(groups == group)
        held = np.bincount([buckets[pairs.balanced[f][1]] for f in faces], minlength=6)
        assert held.tolist() == [per_bucket] * 6, group
    again = protocol.build_pairs(40, buckets, len(groups), pairs_per_bucket=5, seed=2, balanced_groups=groups)
    assert again.balanced == pairs.balanced
