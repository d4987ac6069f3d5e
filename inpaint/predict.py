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
from typing import Sequence

from inpaint.core.cli import OneLineParser, run_cli
from inpaint.inference.masks import HOLE_CONVENTIONS


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from inpaint.inference.command import predict

    return predict(args)


if __name__ == "__main__":
    run_cli(main)
