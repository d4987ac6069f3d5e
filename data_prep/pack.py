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
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from inpaint.core.atomic import write_json
from inpaint.core.buckets import BUCKET_LABELS
from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.disk import is_disk_full
from inpaint.core.errors import DataError
from inpaint.core.shard_format import FACE_SPLITS, INDEX_NAME, MASK_SPLITS, SHARD_FORMAT, sha256_file

from .cli_args import age_range, non_negative_int, positive_int
from .disk import disk_full_message, estimated_bytes
from .faces import Skipped
from .journal import PackLock, ResumeJournal, remove_stale_temporaries
from .masks import HOLE_BLACK, HOLE_WHITE
from .pack_faces import label_conflicts, pack_balanced, pack_face_split
from .pack_masks import mask_sources, pack_masks
from .plan import GENERATE, MAX_SIZE, MIN_SIZE, SIZE_MULTIPLE, Plan, make_plan
from .progress import PackProgress
from .sources import DATA_ENV, IMAGE_SUFFIXES, list_images
from .splits import face_order, face_split
from .state import RunState
from .stop import stop_on_sigterm
from .workers import make_executor


def _usable_cpus() -> int:
    """CPUs granted to this process: on PBS/SLURM nodes ``os.cpu_count()`` is the whole node."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m data_prep.pack",
        description="Pack face photos and hole masks into HDF5 shards (train/test/eval_balanced faces, "
                    f"train/test masks). Default input: ${DATA_ENV}/faces and /masks, else ../shared/data.")
    p.add_argument("--faces", type=Path, help="folder of face photos (JPEG/PNG/WebP, searched recursively)")
    p.add_argument("--masks", help=f"folder of hole-mask images, or '{GENERATE}' for seeded free-form masks "
                                   "(the default when the data root has no masks/ folder)")
    p.add_argument("--out", type=Path, help="output folder (default data/shards/<size>)")
    p.add_argument("--size", type=positive_int, default=128,
                   help=f"square side in pixels, a multiple of {SIZE_MULTIPLE} from {MIN_SIZE} to {MAX_SIZE} (default 128)")
    p.add_argument("--workers", type=positive_int, default=min(8, _usable_cpus()),
                   help="decoding processes (default: CPUs this job may use, at most 8)")
    p.add_argument("--limit", type=positive_int, help="pack only the first N faces of a stable label-neutral order")
    p.add_argument("--all-test", action="store_true",
                   help="put every face in the test split (no training faces), to score a held-out face set "
                        "whole; the balanced split is chosen from all of them when names carry labels")
    p.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                   help="also make a validation split (faces and masks) for choosing models: this share of the "
                        "training faces and of each bucket's training masks, by path hash; the test split is "
                        "unchanged (default 0: none)")
    p.add_argument("--mask-limit", type=positive_int, help="pack only N masks spread evenly over the sorted list")
    p.add_argument("--mask-count", type=positive_int, default=12000,
                   help=f"number of masks to draw with --masks {GENERATE} (default 12000)")
    p.add_argument("--mask-hole", choices=(HOLE_WHITE, HOLE_BLACK), default=HOLE_WHITE,
                   help="pixel colour that marks the hole in mask files (default white, as NVIDIA's masks)")
    p.add_argument("--shard-size", type=positive_int, default=1000, help="samples per shard at most (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed for test-mask choice, balanced set, generated masks")
    p.add_argument("--encoding", choices=("raw", "png", "jpeg"), default="raw",
                   help="raw uint8 arrays (fastest to read) or encoded bytes (compact to move)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality for --encoding jpeg (default 95)")
    p.add_argument("--test-masks-per-bucket", type=non_negative_int, default=500,
                   help="test masks per hole-ratio bucket (default 500, the reference protocol); a bucket "
                        "gives at most half its masks to test")
    p.add_argument("--min-per-cell", type=positive_int, default=10,
                   help="balanced set: at least this many test faces per race x gender cell (default 10)")
    p.add_argument("--ages", type=age_range, default=(18, 60), help="balanced set age range (default 18-60)")
    p.add_argument("--strict", action="store_true",
                   help="fail on any skipped file or balanced-set shortfall instead of warning")
    return p


def _up_to_date(out: Path, fingerprint: str, inputs: str) -> bool:
    """True when ``out`` already holds this exact job and every shard still matches its hash."""
    try:
        index = json.loads((out / INDEX_NAME).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(index, dict) or index.get("fingerprint") != fingerprint or index.get("inputs") != inputs:
        return False
    return all((out / s["file"]).is_file() and sha256_file(out / s["file"]) == s["sha256"]
               for s in index.get("shards", []))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _remove_unlisted_shards(out: Path, keep: set[str]) -> None:
    """Shards of an earlier, different pack into the same folder would only confuse people."""
    for stale in out.glob("*-*-[0-9][0-9][0-9][0-9][0-9].h5"):
        if stale.name.startswith(("faces-", "masks-")) and stale.name not in keep:
            stale.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    plan = make_plan(ns)
    started = time.perf_counter()

    unlisted: list[Skipped] = []
    all_faces = list_images(plan.faces_root, unlisted=unlisted)
    if not all_faces:
        raise DataError(f"{plan.faces_root}: no face images ({', '.join(IMAGE_SUFFIXES)}) found; "
                        f"pass a folder of photos with --faces or set {DATA_ENV}")
    faces = face_order(all_faces)[: ns.limit] if ns.limit else face_order(all_faces)
    try:
        return _pack(ns, plan, faces, unlisted, started)
    except OSError as exc:  # h5py, the journal, the lock file: whichever write meets the full disk first
        if not is_disk_full(exc):
            raise
        raise DataError(disk_full_message(exc, plan.out, _needed_bytes(ns, plan, len(faces)))) from None


def _needed_bytes(ns: argparse.Namespace, plan: Plan, n_faces: int) -> int:
    """Roughly the room this pack needs (raw faces as the bound for png/jpeg), for the disk-full message."""
    try:  # the mask stage's own choice of masks, so the estimate counts what the pack would store
        n_masks = len(mask_sources(plan, ns.mask_limit, ns.mask_count, ns.mask_hole, [])[0])
    except (OSError, DataError):  # the mask folder cannot be listed (any more): count the faces only
        n_masks = 0
    return estimated_bytes(plan.size, n_faces, n_masks)


def _pack(ns: argparse.Namespace, plan: Plan, faces: list[str], unlisted: list[Skipped], started: float) -> int:
    """Everything from taking the output folder to the summary (``main`` turns a full disk into one line)."""
    split_of = {p: "test" if ns.all_test else face_split(p, ns.val_fraction) for p in faces}
    face_splits = ("train", "val", "test") if ns.val_fraction > 0 else ("train", "test")
    inputs = hashlib.sha256("\0".join(sorted(faces)).encode()).hexdigest()

    try:
        plan.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise
        raise DataError(f"{plan.out}: cannot create the output folder ({exc.strerror}); pass a writable --out") from None
    with stop_on_sigterm(plan.out) as stop, PackLock(plan.out):
        remove_stale_temporaries(plan.out)
        if _up_to_date(plan.out, plan.fingerprint, inputs):
            print(f"{plan.out / INDEX_NAME}: already packed with these arguments; every shard verifies")
            print(plan.out)
            return 0
        (plan.out / INDEX_NAME).unlink(missing_ok=True)  # not a valid shard folder again until we finish
        executor = make_executor(ns.workers)
        state = RunState(plan, executor, ResumeJournal(plan.out, plan.fingerprint), ns.strict, ns.workers,
                         progress=PackProgress(), check_stop=stop.check)  # progress: on a terminal's stderr only
        try:
            for problem in unlisted:
                state.skip("faces", plan.faces_root, problem.path, problem.reason)
            rows = {s: pack_face_split(state, s, [p for p in faces if split_of[p] == s]) for s in face_splits}
            if not rows["train"] and not rows["test"]:
                raise DataError(f"{plan.faces_root}: none of the {len(faces)} face files could be used "
                                f"(first reason: {state.skipped[0]['reason'] if state.skipped else 'unknown'}); "
                                "check the folder holds photos")
            n_balanced, composition = pack_balanced(state, rows["test"], ns.min_per_cell, ns.ages)
            masks = pack_masks(state, ns.mask_limit, ns.mask_count, ns.mask_hole, ns.test_masks_per_bucket,
                               ns.val_fraction)
            state.drain()  # every shard renamed and journalled before index.json
            stop.check()  # a SIGTERM whose exception was lost must not end in a finished-looking folder
        finally:
            state.progress.clear()  # before any warning, error or summary line
            if executor is not None:
                executor.shutdown(cancel_futures=True)
            state.close()
            if stop.requested:  # a stop can land between a temporary's creation and its abort
                remove_stale_temporaries(plan.out)  # ours alone: the folder is locked

        unlabelled = composition["total"] == 0
        if unlabelled:  # e.g. CelebA-HQ: one line instead of ten per-cell ones
            message = (f"no test face carries race/gender labels in a UTKFace-style name (AGE_GENDER_RACE_*) and "
                       f"age {ns.ages[0]}-{ns.ages[1]}: the eval_balanced split is empty")
            if ns.strict:
                raise DataError(f"{plan.faces_root}: {message}; add labelled faces or drop --strict")
            _warn(message)
        shortfall = [] if unlabelled else composition["shortfall"]
        if shortfall:  # one line, not one per cell: a --limit sample is short in most cells
            cells = ", ".join(f"{s['cell']} {s['available']}" for s in shortfall)
            message = (f"balanced set: {len(shortfall)} of 10 race x gender cells have fewer than --min-per-cell "
                       f"{ns.min_per_cell} test faces aged {ns.ages[0]}-{ns.ages[1]} ({cells})")
            if ns.strict:
                raise DataError(f"{plan.faces_root}: {message}; pack more faces (drop --limit) or lower --min-per-cell")
            _warn(message)
        for split in ("test",) if ns.all_test else face_splits:
            if not rows[split]:
                _warn(f"face split {split!r} is empty ({len(faces)} faces packed); pack more faces")
        reduced = masks["split"]["reduced_buckets"]
        if reduced:
            _warn(f"mask buckets {', '.join(reduced)}: fewer masks than twice --test-masks-per-bucket "
                  f"{ns.test_masks_per_bucket}, so each gives half its masks to test "
                  f"({masks['split']['test_per_bucket']}; see index.json mask_split)")

        conflicts = label_conflicts(state.skipped)
        order = [("faces", s) for s in FACE_SPLITS] + [("masks", s) for s in MASK_SPLITS]
        shards = sorted(state.shards, key=lambda r: (order.index((r.kind, r.split)), r.file))
        index = {
            "format": SHARD_FORMAT, "size": plan.size, "encoding": plan.encoding, "args": plan.args,
            "counts": {
                "faces": {**{s: len(rows[s]) for s in face_splits}, "eval_balanced": n_balanced},
                "masks": masks["counts"], "mask_buckets": masks["buckets"],
            },
            "skipped": state.skipped, "label_conflicts": conflicts, "balanced": composition,
            "mask_split": masks["split"],
            "shards": [r.as_index_entry() for r in shards],
            "bucket_labels": list(BUCKET_LABELS),
            "fingerprint": plan.fingerprint, "inputs": inputs,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json(plan.out / INDEX_NAME, index, indent=1)
        state.journal.remove()
        _remove_unlisted_shards(plan.out, {r.file for r in shards})

    c = index["counts"]
    kinds = Counter(s["kind"] for s in state.skipped)
    val_faces = f", val {c['faces']['val']}" if "val" in c["faces"] else ""
    val_masks = f", val {c['masks']['val']}" if "val" in c["masks"] else ""
    print(f"faces: train {c['faces']['train']}{val_faces}, test {c['faces']['test']}, eval_balanced {c['faces']['eval_balanced']}"
          f" ({_balanced_summary(composition)}); skipped {kinds['faces']}"
          + (f"; {len(conflicts)} duplicate{'s' if len(conflicts) != 1 else ''} with conflicting labels "
             "(index.json label_conflicts)" if conflicts else ""))
    print(f"masks: train {c['masks']['train']}{val_masks}, test {c['masks']['test']} "
          f"(test per bucket {masks['split']['test_per_bucket']}); skipped {kinds['masks']}")
    if state.skipped:
        reasons = Counter(re.sub(r" -?\d[\d.]*", "", s["reason"].split(" (")[0].split(" of ")[0])
                          for s in state.skipped)
        print("skipped files (listed in index.json): " + "; ".join(f"{n} {r}" for r, n in reasons.most_common(5)))
    print(f"{len(shards)} shards ({state.reused} reused from an earlier run) in {time.perf_counter() - started:.1f} s")
    print(plan.out)
    return 0

def _balanced_summary(composition: dict) -> str:
    """Say how balanced the eval set really is: a --limit sample rarely fills every cell."""
    if not composition["shortfall"]:
        return f"{composition['per_cell']} per race x gender cell"
    short = len(composition["shortfall"])
    return f"up to {composition['per_cell']} per race x gender cell, {short} cells short"


if __name__ == "__main__":
    run_cli(main)
