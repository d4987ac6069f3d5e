"""``python -m inpaint.predict --image PHOTO --mask MASK --out OUT``: one photo, and the checks every
photo and output path goes through (also in folder mode, :mod:`inpaint.inference.folder`).

A bad photo, mask or output path fails before the model loads: that takes seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from inpaint.core.errors import ConfigError
from inpaint.inference.source import build_inpainter

if TYPE_CHECKING:
    import numpy as np


def check_output(path: Path) -> None:
    """A ConfigError for an output suffix no writer knows; a warning for a lossy one."""
    from inpaint.render.visual import LOSSLESS_SUFFIXES, image_format

    if image_format(path) is None:
        raise ConfigError(f"output {path} has an unsupported suffix: use .png (or .jpg, .webp, .tif, .bmp)")
    if path.suffix.lower() not in LOSSLESS_SUFFIXES + (".webp",):
        print(f"warning: {path} is lossy: JPEG re-encodes every pixel, so pixels outside the hole will not stay "
              "exactly as in the photo; use .png for that", file=sys.stderr)


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths name one file or folder (through links, and before ``a`` exists)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def refuse_inputs_as_output(out: Path, option: str, inputs: Sequence[tuple[str, str]]) -> None:
    """A ConfigError when ``out`` (given as ``option``) is one of the inputs ``(option, path)``: the
    result would be written over the user's original, which is then lost."""
    for input_option, given in inputs:
        if same_path(out, Path(given)):
            raise ConfigError(f"{option} {out} is the {input_option} {given}: the result would overwrite it; "
                              f"give {option} another path")


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


def predict_photo(args: argparse.Namespace) -> int:
    """Repair ``--image`` with ``--mask`` into ``--out``; photo, mask and output are checked before the model loads."""
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
