"""Face stages of a pack: train/test shards from photos, then the balanced evaluation split.

Faces are decoded in input order (on the worker pool), de-duplicated by content hash across
all splits, and written shard by shard; the balanced split copies stored test faces instead of
decoding them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice

import h5py
import numpy as np

from inpaint.core.shard_format import FACE_HASHES, FACE_LABELS, SOURCE_PATHS, sample_dataset

from .balanced import select_balanced
from .faces import Skipped, load_face
from .plan import plan_digest
from .shards import ShardWriter, open_shard, shard_name
from .splits import chunks
from .state import RunState


@dataclass
class FaceRow:
    """Where a stored face landed, and its labels (enough to choose the balanced set)."""
    path: str
    labels: tuple[int, int, int]
    file: str
    row: int


def _as_str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _rows_of_reused(state: RunState, name: str) -> list[FaceRow]:
    with open_shard(state.plan.out / name) as f:
        paths = [_as_str(p) for p in f[SOURCE_PATHS.name][()]]
        hashes = [_as_str(h) for h in f[FACE_HASHES.name][()]]
        labels = f[FACE_LABELS.name][()]
    rows = [FaceRow(p, tuple(int(v) for v in labels[i]), name, i) for i, p in enumerate(paths)]
    for row, h in zip(rows, hashes):
        state.seen.setdefault(h, (row.path, row.labels))
    return rows


def _duplicate(state: RunState, path: str, labels: tuple[int, ...], first: str,
               first_labels: tuple[int, ...]) -> dict:
    """Skip a byte-identical copy of a stored face. When the copies' names carry different labels
    (UTKFace has such pairs) the stored label is doubtful: both names and labels go to the
    manifest (``index.json`` ``label_conflicts``) instead of vanishing with the copy."""
    if labels == first_labels:
        return state.skip("faces", state.plan.faces_root, path, f"exact duplicate of {first}")
    return state.skip("faces", state.plan.faces_root, path,
                      f"exact duplicate of {first} with different labels ({_labels(labels)} vs "
                      f"{_labels(first_labels)})", duplicate_of=first, labels=list(labels),
                      duplicate_of_labels=list(first_labels))


def _labels(labels: Sequence[int]) -> str:
    return "age {}, gender {}, race {}".format(*labels)


def label_conflicts(skipped: Sequence[dict]) -> list[dict]:
    """Pairs of byte-identical faces whose names give different labels, kept one first."""
    return [{"paths": [s["duplicate_of"], s["path"]], "labels": [s["duplicate_of_labels"], s["labels"]]}
            for s in skipped if s["kind"] == "faces" and "duplicate_of_labels" in s]


def pack_face_split(state: RunState, split: str, paths: Sequence[str]) -> list[FaceRow]:
    """Decode, de-duplicate and store one split's faces."""
    plan = state.plan
    rows: list[FaceRow] = []
    load = partial(load_face, str(plan.faces_root), size=plan.size, encoding=plan.encoding, quality=plan.quality)
    groups = []
    for number, group in enumerate(chunks(list(paths), plan.shard_size)):
        name = shard_name("faces", split, number)
        digest = plan_digest(plan, "faces", split, group)
        groups.append((name, digest, group, state.journal.reusable(name, digest)))
    # One stream over every shard still to build keeps the workers busy across shard boundaries.
    results = state.ordered(load, [p for _, _, group, entry in groups if entry is None for p in group], f"faces {split}")
    for name, digest, group, entry in groups:
        if entry is not None:
            state.accept_reused(name, entry)
            rows += _rows_of_reused(state, name)
            continue
        writer = ShardWriter(plan.out / name, "faces", split, plan.size, len(group), plan.encoding, digest)
        skipped_here: list[dict] = []
        try:
            for result in islice(results, len(group)):
                if isinstance(result, Skipped):
                    skipped_here.append(state.skip("faces", plan.faces_root, result.path, result.reason))
                    continue
                first, first_labels = state.seen.setdefault(result.sha256, (result.path, result.labels))
                if first != result.path:
                    skipped_here.append(_duplicate(state, result.path, result.labels, first, first_labels))
                    continue
                rows.append(FaceRow(result.path, result.labels, name, writer.count))
                writer.add(result)
        except BaseException:
            writer.abort()
            raise
        state.finish(writer, digest, skipped_here)
    return rows


def pack_balanced(state: RunState, test_rows: list[FaceRow], min_per_cell: int, ages: tuple[int, int]
                  ) -> tuple[int, dict]:
    """Store the balanced subset of the test faces again as ``eval_balanced``; returns its size
    and composition."""
    plan = state.plan
    state.drain()  # the test shards are read back below, so they must carry their final names
    labels = np.asarray([r.labels for r in test_rows], dtype=np.int64).reshape(-1, 3)
    chosen, composition = select_balanced([r.path for r in test_rows], labels, min_per_cell, ages, plan.seed)
    selected = [test_rows[i] for i in chosen]
    total = 0
    data_key = sample_dataset("faces", plan.encoding).name
    for number, group in enumerate(chunks(selected, plan.shard_size)):
        name = shard_name("faces", "eval_balanced", number)
        digest = plan_digest(plan, "faces", "eval_balanced", [r.path for r in group])
        entry = state.reuse(name, digest)
        if entry is not None:
            total += entry["count"]
            continue
        writer = ShardWriter(plan.out / name, "faces", "eval_balanced", plan.size, len(group), plan.encoding, digest)
        handles: dict[str, h5py.File] = {}
        try:
            for r in group:
                if r.file not in handles:
                    handles[r.file] = open_shard(plan.out / r.file)
                f = handles[r.file]
                stored = f[data_key][r.row]
                sha = _as_str(f[FACE_HASHES.name][r.row])
                if plan.encoding == "raw":
                    writer.add_face_raw(r.path, sha, r.labels, stored, None)
                else:
                    writer.add_face_raw(r.path, sha, r.labels, None, stored.tobytes())
        except BaseException:
            writer.abort()
            raise
        finally:
            for f in handles.values():
                f.close()
        record = state.finish(writer, digest, [])
        total += record.count if record else 0
    return total, composition
