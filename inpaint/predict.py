"""``python -m inpaint.predict``: repair the hole in a face photo (or a folder of them).

Single photo::

    python -m inpaint.predict --image PHOTO --mask MASK --out OUT.png [--weights FILE|NAME | --run-dir DIR]

Folder mode matches photos and masks by file name (stem) and keeps going past bad files::

    python -m inpaint.predict --image-dir PHOTOS --mask-dir MASKS --out-dir OUT [...]

Only the hole pixels change; every other pixel of the photo keeps its exact value (write PNG to
keep it that way — JPEG re-encodes the whole image). The model sees a square region: around the
face dlib finds when the [identity] extra is installed (the models were trained on face crops),
otherwise, or with --no-face-detect, around the hole; the command says which it used.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from inpaint.core.cli import OneLineParser, run_cli, warnings_as_lines
from inpaint.core.errors import CheckpointError, ConfigError, DataError, FacefillError
from inpaint.inference.masks import HOLE_CONVENTIONS

if TYPE_CHECKING:  # torch and the model code load only once the command line is known to be good
    import numpy as np
    import torch

    from inpaint.inference.inpainter import Inpainter

# The default is the shipped model that beat the classical fill (Navier-Stokes) on our test pairs:
# a quarter-width Model 2 that corrects the OpenCV fill (card: weights/quarter-residual.json).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "quarter-residual.pt"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m inpaint.predict", description="Repair the hole in a face photo, or in a folder of them.",
                      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    one = p.add_argument_group("one photo")
    one.add_argument("--image", metavar="PHOTO", help="photo of any size")
    one.add_argument("--mask", metavar="MASK", help="mask of the same size as the photo")
    one.add_argument("--out", metavar="OUT", help="output image (PNG keeps all non-hole pixels exact); never the photo or mask")
    many = p.add_argument_group("folder mode")
    many.add_argument("--image-dir", metavar="DIR", help="photos to repair (png, jpg, bmp, tif, webp)")
    many.add_argument("--mask-dir", metavar="DIR", help="masks named like the photos (any image suffix)")
    many.add_argument("--out-dir", metavar="DIR",
                      help="results as <photo stem>.png (not the --image-dir or --mask-dir); photos that share a stem "
                           "(a.png and a.jpg) would write one file, so both are refused and listed as failed: rename one")
    src = p.add_argument_group("model (default: the shipped inpaint/weights/quarter-residual.pt)")
    src.add_argument("--weights", metavar="FILE|NAME",
                     help="weights file (.pt with its .json), checkpoint .pt, or the name of shipped weights "
                          "(python -m inpaint.io.registry lists them)")
    src.add_argument("--run-dir", metavar="DIR", help="training run dir (its newest checkpoint)")
    p.add_argument("--mask-hole", choices=HOLE_CONVENTIONS, default="white",
                   help="which colour marks the hole in the mask (alpha masks: opaque = white)")
    p.add_argument("--feather", type=int, default=None, metavar="PX",
                   help="width of the blended edge inside the hole, at most the photo's smaller side (default: one "
                        "model pixel at photo scale)")
    p.add_argument("--no-face-detect", action="store_true",
                   help="inpaint a square around the hole instead of around the face dlib finds (dlib is the "
                        "[identity] extra; without it this is what happens anyway): for photos whose face the "
                        "detector misses or mistakes, or to skip its second or so on large photos")
    p.add_argument("--batch-size", type=int, default=None,
                   help="photos per model call in folder mode (default: 16 on a GPU, 4 on the CPU, the fastest "
                        "per photo measured there)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the model runs (auto: the GPU when one is visible)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def resolve_source(weights: str | None, run_dir: str | None) -> Path:
    """The checkpoint, weights file or run dir to load: ``--weights`` (a path, or the name of
    shipped weights), ``--run-dir``, or the shipped default."""
    if weights and run_dir:
        raise ConfigError("give either --weights FILE or --run-dir DIR, not both")
    if weights or run_dir:
        path = Path(weights or run_dir).expanduser()  # type: ignore[arg-type]
        if weights and not path.exists() and path.name == weights and not path.suffix:  # a name, not a file
            from inpaint.io.registry import find_weights

            return find_weights(weights).path  # or the one-line error listing the shipped names
        return path
    if not DEFAULT_WEIGHTS.is_file():
        raise CheckpointError(f"no shipped weights at {DEFAULT_WEIGHTS} yet: pass --weights FILE (a weights .pt "
                              "with its .json, or a checkpoint) or --run-dir DIR (a training run)")
    return DEFAULT_WEIGHTS


def check_output(path: Path) -> None:
    from inpaint.render.visual import LOSSLESS_SUFFIXES, image_format

    if image_format(path) is None:
        raise ConfigError(f"output {path} has an unsupported suffix: use .png (or .jpg, .webp, .tif, .bmp)")
    if path.suffix.lower() not in LOSSLESS_SUFFIXES + (".webp",):
        print(f"warning: {path} is lossy: JPEG re-encodes every pixel, so pixels outside the hole will not stay "
              "exactly as in the photo; use .png for that", file=sys.stderr)


def _same_path(a: Path, b: Path) -> bool:
    """Whether two paths name one file or folder (through links, and before ``a`` exists)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def refuse_inputs_as_output(out: Path, option: str, inputs: Sequence[tuple[str, str]]) -> None:
    """A ConfigError when ``out`` (given as ``option``) is one of the inputs ``(option, path)``: the
    result would be written over the user's original, which is then lost."""
    for input_option, given in inputs:
        if _same_path(out, Path(given)):
            raise ConfigError(f"{option} {out} is the {input_option} {given}: the result would overwrite it; "
                              f"give {option} another path")


def default_batch_size(device: torch.device) -> int:
    """Folder-mode batch: a GPU needs batches to be busy. On a CPU, with the channels_last layout
    predict uses, 4 photos a call measured faster per photo than 1 for both the shipped
    quarter-residual (47 against 72 ms) and Model 2 (487 against 516 ms; 2 cores,
    benchmarks/RESULTS.md); 8 no longer fit the cache (NCHW Model 2: 305 against 236 ms)."""
    return 16 if device.type == "cuda" else 4


def build_inpainter(args: argparse.Namespace) -> Inpainter:
    """The model of ``--weights``/``--run-dir`` (or the shipped one) ready for photos; a one-line
    warning on stderr when it is a smoke model, whose fills are noise."""
    from inpaint.device import resolve_device
    from inpaint.inference.inpainter import Inpainter
    from inpaint.inference.loading import smoke_warning
    from inpaint.io.weights import WeightsWarning

    if args.feather is not None and args.feather < 0:
        raise ConfigError(f"--feather must be 0 or more pixels, got {args.feather}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = resolve_device(args.device)
    source = resolve_source(args.weights, args.run_dir)
    with warnings_as_lines(WeightsWarning):
        inpainter = Inpainter.from_weights(source, device, face_detect=not args.no_face_detect, feather=args.feather)
    if args.no_face_detect:
        inpainter.no_faces_reason = "not searched (--no-face-detect)"
    warning = smoke_warning(inpainter.model, args.weights or args.run_dir or source)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return inpainter


def read_hole(mask: str | Path, photo_size: tuple[int, int], hole_colour: str, photo: Path) -> tuple[np.ndarray, list[str]]:
    """The hole of ``mask`` and the mask warnings it raised (a photo given as its own mask, say),
    as lines for the user rather than Python's two-line warning format."""
    from inpaint.inference.masks import MaskWarning, load_hole

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MaskWarning)
        hole = load_hole(mask, photo_size, hole_colour, photo)
    messages = []
    for w in caught:
        if issubclass(w.category, MaskWarning):
            messages.append(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return hole, messages


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    single = [args.image, args.mask, args.out]
    folder = [args.image_dir, args.mask_dir, args.out_dir]
    if any(single) and any(folder):
        raise ConfigError("use either --image/--mask/--out or --image-dir/--mask-dir/--out-dir, not both")
    if any(single):
        if not all(single):
            raise ConfigError("one photo needs all of --image PHOTO, --mask MASK and --out OUT")
        from inpaint.inference.masks import open_photo
        from inpaint.render.visual import save_image

        out = Path(args.out)
        check_output(out)
        refuse_inputs_as_output(out, "--out", [("--image", args.image), ("--mask", args.mask)])
        image = Path(args.image)
        photo = open_photo(image)  # bad photo or mask: fail before loading the model
        hole, messages = read_hole(args.mask, photo.size, args.mask_hole, image)
        from inpaint.inference.inpainter import check_feather

        check_feather(args.feather, hole.shape)
        for message in messages:
            print(f"warning: {message}", file=sys.stderr)
        inpainter = build_inpainter(args)
        prepared = inpainter.prepare(photo, hole)
        print(inpainter.explain(prepared))
        written = save_image(inpainter.finish(prepared, inpainter.generate([prepared])[0]), out)
        print(f"wrote {written}")
        return 0
    if not all(folder):
        raise ConfigError("give --image PHOTO --mask MASK --out OUT, or --image-dir DIR --mask-dir DIR --out-dir DIR")
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


if __name__ == "__main__":
    run_cli(main)
