"""``python -m data_prep.pack``: face photos and hole masks -> validated HDF5 shards.

The output folder (docs/CONTRACTS.md "Shards") is what every other part reads. Each shard is
written under a temporary name and renamed when complete, ``index.json`` is written last, and a
re-run of an interrupted pack reuses every shard that still matches its plan and hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from inpaint.buckets import BUCKET_EDGES, BUCKET_LABELS
from inpaint.cli import run_cli
from inpaint.errors import DataError

from .atomic import sha256_file, write_json
from .balanced import select_balanced
from .faces import FaceSample, Skipped, load_face
from .mask_gen import generate_mask
from .masks import HOLE_BLACK, HOLE_WHITE, MaskSample, load_mask
from .progress import PackLock, Progress, remove_stale_temporaries
from .shards import SHARD_FORMAT, ShardRecord, ShardWriter, shard_name
from .sources import DATA_ENV, IMAGE_SUFFIXES, MASK_SUFFIXES, default_data_root, list_images
from .splits import chunks, face_order, face_split, split_masks, spread_evenly

INDEX_NAME = "index.json"
PACK_VERSION = 1  # bump when the same arguments would produce different shard contents
FACE_SPLITS = ("train", "test", "eval_balanced")
MASK_SPLITS = ("train", "test")
GENERATE = "generate"


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _age_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AGE-AGE such as 18-60, got {text!r}") from None
    if not 0 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"expected 0 <= low <= high, got {text!r}")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_prep.pack",
        description="Pack face photos and hole masks into HDF5 shards (train/test/eval_balanced faces, "
                    f"train/test masks). Default input: ${DATA_ENV}/faces and /masks, else ../shared/data.")
    p.add_argument("--faces", type=Path, help="folder of face photos (JPEG/PNG/WebP, searched recursively)")
    p.add_argument("--masks", help=f"folder of hole-mask images, or '{GENERATE}' for seeded free-form masks "
                                   "(the default when the data root has no masks/ folder)")
    p.add_argument("--out", type=Path, help="output folder (default data/shards/<size>)")
    p.add_argument("--size", type=_positive, default=128, help="square side in pixels (default 128)")
    p.add_argument("--workers", type=_positive, default=min(8, os.cpu_count() or 1),
                   help="decoding processes (default: CPU count, at most 8)")
    p.add_argument("--limit", type=_positive, help="pack only the first N faces of a stable label-neutral order")
    p.add_argument("--mask-limit", type=_positive, help="pack only N masks spread evenly over the sorted list")
    p.add_argument("--mask-count", type=_positive, default=12000,
                   help=f"number of masks to draw with --masks {GENERATE} (default 12000)")
    p.add_argument("--mask-hole", choices=(HOLE_WHITE, HOLE_BLACK), default=HOLE_WHITE,
                   help="pixel colour that marks the hole in mask files (default white, as NVIDIA's masks)")
    p.add_argument("--shard-size", type=_positive, default=1000, help="samples per shard at most (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed for test-mask choice, balanced set, generated masks")
    p.add_argument("--encoding", choices=("raw", "png", "jpeg"), default="raw",
                   help="raw uint8 arrays (fastest to read) or encoded bytes (compact to move)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality for --encoding jpeg (default 95)")
    p.add_argument("--test-masks-per-bucket", type=_non_negative, default=500,
                   help="test masks per hole-ratio bucket (default 500, the reference protocol); a bucket "
                        "gives at most half its masks to test")
    p.add_argument("--min-per-cell", type=_positive, default=10,
                   help="balanced set: at least this many test faces per race x gender cell (default 10)")
    p.add_argument("--ages", type=_age_range, default=(18, 60), help="balanced set age range (default 18-60)")
    p.add_argument("--strict", action="store_true",
                   help="fail on any skipped file or balanced-set shortfall instead of warning")
    return p


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


@dataclass
class FaceRow:
    path: str
    labels: tuple[int, int, int]
    file: str
    row: int


@dataclass
class RunState:
    plan: Plan
    executor: object
    progress: Progress
    strict: bool
    workers: int
    skipped: list[dict] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    shards: list[ShardRecord] = field(default_factory=list)
    reused: int = 0

    def skip(self, kind: str, root: Path, path: str, reason: str) -> None:
        if self.strict:
            raise DataError(f"{root / path}: {reason}; fix or remove the file, or re-run without --strict")
        self.skipped.append({"path": path, "reason": reason, "kind": kind})


def resolve_inputs(ns: argparse.Namespace) -> tuple[Path, Path | None]:
    """Face and mask folders from the options or the default data root."""
    faces, masks = ns.faces, ns.masks
    if faces is None or masks is None:
        try:
            root = default_data_root()
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


def make_plan(ns: argparse.Namespace) -> Plan:
    if not 1 <= ns.quality <= 100:
        raise DataError(f"--quality {ns.quality}: must be between 1 and 100")
    if ns.size < 16:
        raise DataError(f"--size {ns.size}: must be at least 16 px")
    faces, masks = resolve_inputs(ns)
    out = ns.out or Path("data") / "shards" / str(ns.size)
    content = {
        "faces": str(faces.resolve()), "masks": str(masks.resolve()) if masks else GENERATE,
        "size": ns.size, "encoding": ns.encoding, "quality": ns.quality if ns.encoding == "jpeg" else None,
        "limit": ns.limit, "mask_limit": ns.mask_limit, "mask_count": ns.mask_count if masks is None else None,
        "mask_hole": ns.mask_hole, "shard_size": ns.shard_size, "seed": ns.seed,
        "test_masks_per_bucket": ns.test_masks_per_bucket, "min_per_cell": ns.min_per_cell,
        "ages": list(ns.ages), "pack_version": PACK_VERSION,
    }
    plan = Plan(faces, masks, out, ns.size, ns.encoding, ns.quality, ns.shard_size, ns.seed,
                args={**content, "out": str(out), "workers": ns.workers, "strict": ns.strict})
    plan.fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return plan


def plan_digest(plan: Plan, kind: str, split: str, paths: Sequence[str]) -> str:
    h = hashlib.sha256(f"{plan.fingerprint}\0{kind}\0{split}\0".encode())
    for p in paths:
        h.update(p.encode() + b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- faces

def _reuse_faces(state: RunState, name: str, entry: dict, rows: list[FaceRow]) -> None:
    path = state.plan.out / name
    with h5py.File(path, "r") as f:
        paths = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][:]]
        hashes = [h.decode() if isinstance(h, bytes) else h for h in f["hashes"][:]]
        labels = f["labels"][:]
    for i, (p, h) in enumerate(zip(paths, hashes)):
        state.seen.setdefault(h, p)
        rows.append(FaceRow(p, tuple(int(v) for v in labels[i]), name, i))
    state.skipped.extend(entry.get("skipped", []))
    state.shards.append(ShardRecord(name, "faces", entry["split"], int(entry["count"]), entry["sha256"]))
    state.reused += 1


def _finish_shard(state: RunState, writer: ShardWriter, digest: str, skipped: list[dict]) -> ShardRecord | None:
    if writer.count == 0:
        writer.abort()
        state.progress.forget(writer.final.name)
        return None
    record = writer.finish(skipped)
    state.shards.append(record)
    state.progress.record(record.file, {"plan_digest": digest, "sha256": record.sha256, "count": record.count,
                                        "split": record.split, "kind": record.kind, "skipped": skipped})
    return record


def pack_face_split(state: RunState, split: str, paths: Sequence[str]) -> list[FaceRow]:
    """Decode, dedupe and store one split's faces; rows tell where each kept face landed."""
    plan = state.plan
    rows: list[FaceRow] = []
    load = partial(load_face, str(plan.faces_root), size=plan.size, encoding=plan.encoding, quality=plan.quality)
    for number, group in enumerate(chunks(list(paths), plan.shard_size)):
        name = shard_name("faces", split, number)
        digest = plan_digest(plan, "faces", split, group)
        entry = state.progress.reusable(name, digest)
        if entry is not None:
            _reuse_faces(state, name, entry, rows)
            continue
        (plan.out / name).unlink(missing_ok=True)
        writer = ShardWriter(plan.out / name, "faces", split, plan.size, len(group), plan.encoding, digest)
        skipped_here: list[dict] = []
        try:
            for result in _ordered(state, load, group):
                if isinstance(result, Skipped):
                    before = len(state.skipped)
                    state.skip("faces", plan.faces_root, result.path, result.reason)
                    skipped_here.extend(state.skipped[before:])
                    continue
                first = state.seen.setdefault(result.sha256, result.path)
                if first != result.path:
                    before = len(state.skipped)
                    state.skip("faces", plan.faces_root, result.path, f"exact duplicate of {first}")
                    skipped_here.extend(state.skipped[before:])
                    continue
                rows.append(FaceRow(result.path, result.labels, name, writer.count))
                writer.add(result)
        except BaseException:
            writer.abort()
            raise
        _finish_shard(state, writer, digest, skipped_here)
    return rows


def _ordered(state: RunState, fn, items):
    from .workers import ordered_map
    return ordered_map(state.executor, fn, items, chunk=16, window=4 * state.workers)


def pack_balanced(state: RunState, test_rows: list[FaceRow], min_per_cell: int, ages: tuple[int, int]
                  ) -> tuple[int, dict]:
    """Store the balanced subset of the test faces again as ``eval_balanced`` (copied, not re-decoded)."""
    plan = state.plan
    labels = np.asarray([r.labels for r in test_rows], dtype=np.int64).reshape(-1, 3)
    chosen, composition = select_balanced([r.path for r in test_rows], labels, min_per_cell, ages, plan.seed)
    selected = [test_rows[i] for i in chosen]
    total = 0
    for number, group in enumerate(chunks(selected, plan.shard_size)):
        name = shard_name("faces", "eval_balanced", number)
        digest = plan_digest(plan, "faces", "eval_balanced", [r.path for r in group])
        entry = state.progress.reusable(name, digest)
        if entry is not None:
            state.shards.append(ShardRecord(name, "faces", "eval_balanced", int(entry["count"]), entry["sha256"]))
            state.reused += 1
            total += int(entry["count"])
            continue
        writer = ShardWriter(plan.out / name, "faces", "eval_balanced", plan.size, len(group), plan.encoding, digest)
        try:
            handles: dict[str, h5py.File] = {}
            try:
                for r in group:
                    f = handles.get(r.file) or handles.setdefault(r.file, h5py.File(plan.out / r.file, "r"))
                    sha = f["hashes"][r.row]
                    sha = sha.decode() if isinstance(sha, bytes) else sha
                    if plan.encoding == "raw":
                        writer.add_face_raw(r.path, sha, r.labels, f["images"][r.row], None)
                    else:
                        writer.add_face_raw(r.path, sha, r.labels, None, f["images_encoded"][r.row].tobytes())
            finally:
                for f in handles.values():
                    f.close()
        except BaseException:
            writer.abort()
            raise
        record = _finish_shard(state, writer, digest, [])
        total += record.count if record else 0
    return total, composition


# --------------------------------------------------------------------------- masks

def _mask_items(plan: Plan, mask_limit: int | None, mask_count: int, hole: str):
    if plan.masks_root is None:
        n = min(mask_count, mask_limit or mask_count)
        return list(range(n)), partial(generate_mask, size=plan.size, seed=plan.seed)
    files = list_images(plan.masks_root, MASK_SUFFIXES)
    if not files:
        raise DataError(f"{plan.masks_root}: no mask images ({', '.join(MASK_SUFFIXES)}) found; "
                        f"pass a folder of masks or --masks {GENERATE}")
    return spread_evenly(files, mask_limit), partial(load_mask, str(plan.masks_root), size=plan.size, hole=hole)


def pack_masks(state: RunState, mask_limit: int | None, mask_count: int, hole: str, per_bucket: int) -> dict:
    """Measure every mask once into a temporary staging file, choose test masks per bucket,
    then write the split shards from the staging file (bounded memory, no second decode)."""
    plan = state.plan
    items, load = _mask_items(plan, mask_limit, mask_count, hole)
    staging = ShardWriter(plan.out / ".masks-staging.h5", "masks", "staging", plan.size, len(items))
    try:
        for result in _ordered(state, load, items):
            if isinstance(result, Skipped):
                state.skip("masks", plan.masks_root or Path(GENERATE), result.path, result.reason)
            else:
                staging.add(result)
        f = staging.file
        n = staging.count
        if n == 0:
            raise DataError(f"{plan.masks_root}: no usable masks (every one was skipped; see the reasons with "
                            f"--strict); pass another --masks folder or --masks {GENERATE}")
        paths = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][:n]]
        buckets = f["bucket"][:n].astype(int)
        ratios = f["ratio"][:n]
        test, train, granted = split_masks(paths, buckets, per_bucket, plan.seed)
        counts, bucket_counts = {}, {}
        for split, rows in (("train", train), ("test", test)):
            counts[split] = len(rows)
            bucket_counts[split] = np.bincount(buckets[rows], minlength=len(BUCKET_EDGES)).tolist() if rows else [0] * 6
            for number, group in enumerate(chunks(rows, plan.shard_size)):
                name = shard_name("masks", split, number)
                digest = plan_digest(plan, "masks", split, [paths[i] for i in group])
                entry = state.progress.reusable(name, digest)
                if entry is not None:
                    state.shards.append(ShardRecord(name, "masks", split, int(entry["count"]), entry["sha256"]))
                    state.reused += 1
                    continue
                writer = ShardWriter(plan.out / name, "masks", split, plan.size, len(group), "raw", digest)
                try:
                    for i in group:
                        writer.add(MaskSample(paths[i], f["masks"][i], float(ratios[i]), int(buckets[i])))
                except BaseException:
                    writer.abort()
                    raise
                _finish_shard(state, writer, digest, [])
    finally:
        staging.abort()
    available = np.bincount(buckets, minlength=len(BUCKET_EDGES)).tolist()
    reduced = [BUCKET_LABELS[b] for b in range(len(BUCKET_EDGES)) if granted[b] < per_bucket]
    return {"counts": counts, "buckets": bucket_counts, "split": {
        "requested_test_per_bucket": per_bucket, "test_per_bucket": granted, "available_per_bucket": available,
        "reduced_buckets": reduced,
        "rule": "a bucket gives min(requested, half its masks) to test, chosen by a seeded hash of the path",
        "source": "generated" if plan.masks_root is None else "files"}}


# --------------------------------------------------------------------------- driver

def _up_to_date(out: Path, fingerprint: str, inputs: str) -> dict | None:
    try:
        index = json.loads((out / INDEX_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("fingerprint") != fingerprint or index.get("inputs") != inputs:
        return None
    for s in index.get("shards", []):
        p = out / s["file"]
        if not p.is_file() or sha256_file(p) != s["sha256"]:
            return None
    return index


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    plan = make_plan(ns)
    started = time.perf_counter()

    all_faces = list_images(plan.faces_root, IMAGE_SUFFIXES)
    if not all_faces:
        raise DataError(f"{plan.faces_root}: no face images ({', '.join(IMAGE_SUFFIXES)}) found; "
                        f"pass a folder of photos with --faces or set {DATA_ENV}")
    faces = face_order(all_faces)[: ns.limit] if ns.limit else face_order(all_faces)
    split_of = {p: face_split(p) for p in faces}
    inputs = hashlib.sha256("\0".join(sorted(faces)).encode()).hexdigest()

    try:
        plan.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{plan.out}: cannot create the output folder ({exc.strerror}); pass a writable --out") from None
    with PackLock(plan.out):
        remove_stale_temporaries(plan.out)
        if _up_to_date(plan.out, plan.fingerprint, inputs) is not None:
            print(f"{plan.out / INDEX_NAME}: already packed with these arguments; every shard verifies")
            print(plan.out)
            return 0
        (plan.out / INDEX_NAME).unlink(missing_ok=True)  # the folder is not a valid shard set until we finish
        progress = Progress(plan.out, plan.fingerprint)
        from .workers import make_executor
        executor = make_executor(ns.workers)
        state = RunState(plan, executor, progress, ns.strict, ns.workers)
        try:
            rows = {s: pack_face_split(state, s, [p for p in faces if split_of[p] == s]) for s in ("train", "test")}
            if not rows["train"] and not rows["test"]:
                raise DataError(f"{plan.faces_root}: none of the {len(faces)} face files could be used "
                                f"(first reason: {state.skipped[0]['reason'] if state.skipped else 'unknown'}); "
                                "check the folder holds photos")
            n_balanced, composition = pack_balanced(state, rows["test"], ns.min_per_cell, ns.ages)
            masks = pack_masks(state, ns.mask_limit, ns.mask_count, ns.mask_hole, ns.test_masks_per_bucket)
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)

        for short in composition["shortfall"]:
            message = (f"balanced set: cell {short['cell']} has {short['available']} test faces aged "
                       f"{ns.ages[0]}-{ns.ages[1]}, fewer than --min-per-cell {short['needed']}")
            if ns.strict:
                raise DataError(f"{plan.faces_root}: {message}; pack more faces (drop --limit) or lower --min-per-cell")
            _warn(message)
        for split in ("train", "test"):
            if not rows[split]:
                _warn(f"face split {split!r} is empty ({len(faces)} faces packed); pack more faces")
        for label in masks["split"]["reduced_buckets"]:
            _warn(f"mask bucket {label}: fewer test masks than --test-masks-per-bucket "
                  f"{ns.test_masks_per_bucket} (too few masks; see index.json mask_split)")

        order = {(k, s): i for i, (k, s) in enumerate([("faces", s) for s in FACE_SPLITS] + [("masks", s) for s in MASK_SPLITS])}
        shards = sorted(state.shards, key=lambda r: (order[(r.kind, r.split)], r.file))
        index = {
            "format": SHARD_FORMAT, "size": plan.size, "encoding": plan.encoding, "args": plan.args,
            "counts": {
                "faces": {"train": len(rows["train"]), "test": len(rows["test"]), "eval_balanced": n_balanced},
                "masks": masks["counts"], "mask_buckets": masks["buckets"],
            },
            "skipped": state.skipped, "balanced": composition, "mask_split": masks["split"],
            "shards": [r.as_index_entry() for r in shards],
            "bucket_labels": list(BUCKET_LABELS),
            "fingerprint": plan.fingerprint, "inputs": inputs,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json(plan.out / INDEX_NAME, index)
        progress.remove()
        keep = {r.file for r in shards}
        for stale in plan.out.glob("*-*-[0-9][0-9][0-9][0-9][0-9].h5"):
            if stale.name.startswith(("faces-", "masks-")) and stale.name not in keep:
                stale.unlink()

    c = index["counts"]
    kinds = Counter(s["kind"] for s in state.skipped)
    print(f"faces: train {c['faces']['train']}, test {c['faces']['test']}, eval_balanced {c['faces']['eval_balanced']}"
          f" ({composition['per_cell']} per race x gender cell); skipped {kinds['faces']}")
    print(f"masks: train {c['masks']['train']}, test {c['masks']['test']} "
          f"(test per bucket {masks['split']['test_per_bucket']}); skipped {kinds['masks']}")
    if state.skipped:
        reasons = Counter(s["reason"].split(" (")[0] for s in state.skipped)
        print("skipped files (listed in index.json): " + "; ".join(f"{n} {r}" for r, n in reasons.most_common(5)))
    print(f"{len(shards)} shards ({state.reused} reused from an earlier run) in {time.perf_counter() - started:.1f} s")
    print(plan.out)
    return 0


if __name__ == "__main__":
    run_cli(main)
