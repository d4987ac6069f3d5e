"""``python -m inpaint.predict --image-dir PHOTOS --mask-dir MASKS --out-dir OUT``: every photo of a
folder, matched to its mask by file name (stem), in batches; a bad photo or mask is reported and
skipped, and the command exits 1 when any failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from inpaint.core.errors import DataError, FacefillError
from inpaint.inference.photos import read_hole, refuse_inputs_as_output
from inpaint.inference.source import build_inpainter

if TYPE_CHECKING:
    import torch

    from inpaint.inference.inpainter import Inpainter

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def default_batch_size(device: torch.device) -> int:
    """Folder-mode batch: a GPU needs batches to be busy. On a CPU, with the channels_last layout
    predict uses, 4 photos a call measured faster per photo than 1 for both the shipped
    quarter-residual (47 against 72 ms) and Model 2 (487 against 516 ms; 2 cores,
    benchmarks/RESULTS.md); 8 no longer fit the cache (NCHW Model 2: 305 against 236 ms)."""
    return 16 if device.type == "cuda" else 4


def match_folder(image_dir: Path, mask_dir: Path) -> tuple[list[tuple[Path, Path | None, str]], int]:
    """(photo, mask or None, problem) per photo, matched by stem; and the number of photos. Photos
    that share a stem are all refused, since their results would have one name."""
    for folder, opt in ((image_dir, "--image-dir"), (mask_dir, "--mask-dir")):
        if not folder.is_dir():
            raise DataError(f"{opt} {folder} is not a folder: fix the path")
    photos = sorted(p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise DataError(f"--image-dir {image_dir} holds no images ({', '.join(IMAGE_SUFFIXES)}): fix the path")
    by_stem: dict[str, list[Path]] = {}
    for photo in photos:
        by_stem.setdefault(photo.stem, []).append(photo)
    masks: dict[str, list[Path]] = {}
    for m in mask_dir.iterdir():
        if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES:
            masks.setdefault(m.stem, []).append(m)
    jobs: list[tuple[Path, Path | None, str]] = []
    for photo in photos:
        found = masks.get(photo.stem, [])
        same_stem = by_stem[photo.stem]
        if len(same_stem) > 1:  # one <stem>.png for several photos: the last would silently win
            jobs.append((photo, None, f"photos {', '.join(p.name for p in same_stem)} share the stem {photo.stem} and "
                                      f"would all be written as {photo.stem}.png: rename all but one"))
        elif len(found) == 1:
            jobs.append((photo, found[0], ""))
        elif not found:
            jobs.append((photo, None, f"no mask named {photo.stem}.* in {mask_dir}"))
        else:
            jobs.append((photo, None, f"several masks named {photo.stem}.* in {mask_dir} ({', '.join(sorted(m.name for m in found))}): keep one"))
    return jobs, len(photos)


def predict_folder(inpainter: Inpainter, image_dir: Path, mask_dir: Path, out_dir: Path, hole_colour: str,
                   batch_size: int, quiet: bool = False) -> tuple[int, list[tuple[Path, str]], list[str], list[str]]:
    """Inpaint every matched photo, ``batch_size`` photos per model call; a bad photo or mask is
    recorded and skipped. Returns (written, failures, mask warnings, the box source of each
    inpainted photo: "face" or "hole")."""
    from inpaint.inference.inpainter import Prepared
    from inpaint.inference.masks import open_photo
    from inpaint.core.progress_line import ProgressLine
    from inpaint.render.visual import save_image

    jobs, total = match_folder(image_dir, mask_dir)
    failures: list[tuple[Path, str]] = []
    mask_warnings: list[str] = []
    sources: list[str] = []
    written = 0
    progress = ProgressLine("inpainting", total, "photos", enabled=not quiet)
    done = 0
    pending: list[tuple[Path, Prepared]] = []

    def flush() -> None:
        nonlocal written, done
        if not pending:
            return
        try:
            outputs = inpainter.generate([p for _, p in pending])
        except RuntimeError as exc:  # e.g. out of memory: the whole batch failed
            failures.extend((photo, f"model failed: {str(exc).splitlines()[0]}") for photo, _ in pending)
        else:
            for (photo, prepared), output in zip(pending, outputs):
                target = out_dir / f"{photo.stem}.png"
                try:
                    save_image(inpainter.finish(prepared, output), target)
                except FacefillError as exc:  # e.g. an output with NaN: this photo fails, not the batch
                    failures.append((photo, str(exc)))
                    continue
                except OSError as exc:
                    failures.append((photo, f"cannot write {target}: {exc}"))
                    continue
                written += 1
                sources.append(prepared.box.source)
        done += len(pending)
        pending.clear()
        progress.update(done)

    out_dir.mkdir(parents=True, exist_ok=True)
    progress.update(0)
    for photo, mask, problem in jobs:
        if mask is None:
            failures.append((photo, problem))
            done += 1
            continue
        try:
            img = open_photo(photo)
            hole, messages = read_hole(mask, img.size, hole_colour, photo)
            mask_warnings.extend(messages)
            pending.append((photo, inpainter.prepare(img, hole)))
        except FacefillError as exc:
            failures.append((photo, str(exc)))
            done += 1
        if len(pending) >= batch_size:
            flush()
    flush()
    progress.update(total)
    return written, failures, mask_warnings, sources


def predict_photo_folder(args: argparse.Namespace) -> int:
    """Repair every photo of ``--image-dir`` into ``--out-dir``; 1 when any photo failed."""
    refuse_inputs_as_output(Path(args.out_dir), "--out-dir", [("--image-dir", args.image_dir), ("--mask-dir", args.mask_dir)])
    inpainter = build_inpainter(args)
    batch_size = args.batch_size or default_batch_size(inpainter.device)
    written, failures, mask_warnings, sources = predict_folder(inpainter, Path(args.image_dir), Path(args.mask_dir),
                                                               Path(args.out_dir), args.mask_hole, batch_size, args.quiet)
    if sources:
        print(face_summary(sources, inpainter))
    print(f"wrote {written} of {written + len(failures)} photos to {args.out_dir}")
    for message in mask_warnings:
        print(f"warning: {message}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for photo, reason in failures:
            print(f"  {photo.name}: {reason}", file=sys.stderr)
        return 1
    return 0


def face_summary(sources: list[str], inpainter: Inpainter) -> str:
    """Folder mode's one line on the context boxes: in how many photos a face was used."""
    if inpainter.find_faces is None:
        return f"faces {inpainter.no_faces_reason}; each photo was inpainted in a square around its hole"
    faces = sources.count("face")
    return (f"faces: found around the hole in {faces} of {len(sources)} photos (the context the model saw); "
            f"the others were inpainted in a square around the hole")
