"""Decoding one hole-mask file into a binary array with its hole ratio and bucket.

The ratio is measured on the resized pixels, never taken from the file order: resizing moves
about 1 % of the NVIDIA masks into a neighbouring bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from inpaint.core.buckets import BUCKET_EDGES, bucket_of

from .faces import Skipped

HOLE_WHITE = "white"
HOLE_BLACK = "black"


@dataclass(frozen=True)
class MaskSample:
    path: str
    mask: np.ndarray  # (size, size) uint8, 1 = hole, 0 = known
    ratio: float
    bucket: int


def binarize_mask(img: Image.Image, size: int, hole: str = HOLE_WHITE) -> np.ndarray:
    """Centre-cropped, nearest-resized mask with 1 = hole, matching how faces are cropped."""
    gray = img.convert("L") if img.mode != "L" else img
    w, h = gray.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    resized = gray.resize((size, size), Image.Resampling.NEAREST, box=box) if side != size else gray.crop(box)
    arr = np.asarray(resized)
    holes = arr > 127 if hole == HOLE_WHITE else arr <= 127
    return holes.astype(np.uint8)


def measure(mask: np.ndarray) -> tuple[float, int]:
    """Hole ratio from the pixels and its bucket index (-1 outside every bucket)."""
    ratio = float(mask.mean())
    return ratio, bucket_of(ratio)


def out_of_range_reason(ratio: float) -> str:
    lo, hi = BUCKET_EDGES[0][0], BUCKET_EDGES[-1][1]
    return f"hole ratio {ratio:.4f} outside ({lo}, {hi}]"


def load_mask(root: str, relpath: str, size: int, hole: str = HOLE_WHITE) -> MaskSample | Skipped:
    """One mask file as a packed sample, or the reason it cannot be used."""
    try:
        with Image.open(Path(root, relpath)) as img:
            img.load()
            mask = binarize_mask(img, size, hole)
    except UnidentifiedImageError:
        return Skipped(relpath, "not an image Pillow can read")
    except (OSError, SyntaxError, ValueError) as exc:
        return Skipped(relpath, f"unreadable or corrupt mask ({exc})")
    ratio, bucket = measure(mask)
    if bucket < 0:
        return Skipped(relpath, out_of_range_reason(ratio))
    return MaskSample(relpath, mask, ratio, bucket)
