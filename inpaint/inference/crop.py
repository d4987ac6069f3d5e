"""Choosing the square region of a photo that the model sees.

The models were trained on aligned face crops, so they work best when the region they see looks
like one: the detected face (with the margin UTKFace crops have) when a face overlaps the hole,
otherwise a face-sized square centred on the hole. The square always contains the whole hole
with some known context around it; where it runs past the photo's border the photo is extended
by edge replication (known context, never hole). The square is never larger than the photo's longer
side, and only its part inside the photo is handled at the photo's resolution (the rest is padded
at the model's): memory follows the photo, not the square, however thin the photo or wide the hole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: A dlib face box spans roughly brows to chin; an aligned 200-px UTKFace crop shows about 1.8× that.
FACE_CONTEXT = 1.8
#: Without a face, the square is this many times the hole's extent …
HOLE_CONTEXT = 2.0
#: … and at least this share of the photo's shorter side (a face photo's face is rarely smaller).
MIN_SHARE_OF_PHOTO = 0.5
#: Known context kept around the hole, as a share of the hole's extent (and at least 8 px).
HOLE_MARGIN = 0.25


@dataclass(frozen=True)
class Box:
    """Square ``side`` px with its top-left corner at (left, top); may extend past the photo."""

    left: int
    top: int
    side: int
    source: str  # "face" or "hole": how it was chosen, for the log
    face: tuple[int, int, int, int] | None = None  # the face box (l, t, r, b) it was built around

    @property
    def right(self) -> int:
        return self.left + self.side

    @property
    def bottom(self) -> int:
        return self.top + self.side


def hole_bbox(hole: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom), right/bottom exclusive, of the True pixels."""
    rows = np.flatnonzero(hole.any(axis=1))
    cols = np.flatnonzero(hole.any(axis=0))
    if rows.size == 0:
        raise ValueError("the mask has no hole")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _overlap(a: Sequence[int], b: Sequence[int]) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def _fit(centre: float, side: int, length: int) -> int:
    """Start of a ``side`` span centred on ``centre``, shifted to lie inside [0, length) when it
    fits, or to cover all of [0, length) when it does not."""
    start = int(round(centre - side / 2.0))
    if side <= length:
        return min(max(start, 0), length - side)
    return min(max(start, length - side), 0)  # larger than the photo: cover all of it


def context_box(hole: np.ndarray, faces: Sequence[Sequence[int]] = (), min_side: int = 0) -> Box:
    """The square to inpaint ``hole`` (H,W bool) in, using face boxes (left, top, right, bottom)
    when one overlaps the hole."""
    height, width = hole.shape
    hl, ht, hr, hb = hole_bbox(hole)
    extent = max(hr - hl, hb - ht)
    margin = max(8, int(math.ceil(HOLE_MARGIN * extent)))
    need = (hl - margin, ht - margin, hr + margin, hb + margin)  # hole plus context, must be inside

    overlapping = [f for f in faces if _overlap(f, (hl, ht, hr, hb)) > 0]
    if overlapping:
        face = max(overlapping, key=lambda f: _overlap(f, (hl, ht, hr, hb)))
        side_face = FACE_CONTEXT * max(face[2] - face[0], face[3] - face[1])
        cx, cy = (face[0] + face[2]) / 2.0, (face[1] + face[3]) / 2.0
        source = "face"
        side = int(math.ceil(side_face))
        chosen = tuple(int(v) for v in face[:4])
    else:
        cx, cy = (hl + hr) / 2.0, (ht + hb) / 2.0
        source = "hole"
        chosen = None
        side = int(math.ceil(max(HOLE_CONTEXT * extent, MIN_SHARE_OF_PHOTO * min(width, height))))
    # Grow (keeping the centre) until the hole and its margin fit, but not past the photo's longer
    # side: a square that long covers the photo in both directions, so it holds every hole, and
    # any more would be padding alone (a wide hole in a 20000×20 photo asked for 39600 px).
    half = max(cx - need[0], need[2] - cx, cy - need[1], need[3] - cy)
    side = min(max(side, int(math.ceil(2 * half)), min_side, 1), max(width, height))
    left = _fit(cx, side, width)
    top = _fit(cy, side, height)
    # Shifting towards the photo never uncovers the hole: the square only moves away from the
    # border it crossed, and the hole lies inside the photo.
    assert left <= hl and left + side >= hr and top <= ht and top + side >= hb
    return Box(left, top, side, source, chosen)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Part:
    """The part of a box inside the photo: photo rows [top, bottom) and columns [left, right), and
    the model pixels they span when the box is seen at the model's size (rows [model_top,
    model_bottom), columns [model_left, model_right)); the rest of the model's square is padding."""

    top: int
    bottom: int
    left: int
    right: int
    model_top: int
    model_bottom: int
    model_left: int
    model_right: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left

    @property
    def model_shape(self) -> tuple[int, int]:
        return self.model_bottom - self.model_top, self.model_right - self.model_left


def _model_span(start: int, end: int, box_start: int, side: int, size: int) -> tuple[int, int]:
    """Model pixels spanned by photo pixels [start, end) of a box starting at ``box_start``: the
    whole [0, size) for a box inside the photo, and at least one pixel however thin the photo."""
    scale = size / float(side)
    first = min(max(int(round((start - box_start) * scale)), 0), size - 1)
    last = max(min(int(round((end - box_start) * scale)), size), first + 1)
    return first, last


def inside_part(box: Box, height: int, width: int, size: int) -> Part:
    """Where ``box`` overlaps a ``height``×``width`` photo, in photo and in model pixels."""
    top, bottom = max(box.top, 0), min(box.bottom, height)
    left, right = max(box.left, 0), min(box.right, width)
    model_top, model_bottom = _model_span(top, bottom, box.top, box.side, size)
    model_left, model_right = _model_span(left, right, box.left, box.side, size)
    return Part(top, bottom, left, right, model_top, model_bottom, model_left, model_right)


def extract(image: np.ndarray, box: Box) -> np.ndarray:
    """The box's pixels of an (H,W,C) array, edge-replicated where the box leaves the photo."""
    height, width = image.shape[:2]
    pad_l, pad_t = max(0, -box.left), max(0, -box.top)
    pad_r, pad_b = max(0, box.right - width), max(0, box.bottom - height)
    inside = image[max(box.top, 0):min(box.bottom, height), max(box.left, 0):min(box.right, width)]
    if pad_l or pad_t or pad_r or pad_b:
        pad = [(pad_t, pad_b), (pad_l, pad_r)] + [(0, 0)] * (image.ndim - 2)
        mode = "edge" if image.dtype != bool else "constant"
        inside = np.pad(inside, pad, mode=mode)
    return inside
