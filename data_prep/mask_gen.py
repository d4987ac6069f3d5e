"""Seeded free-form masks (brush strokes plus boxes) for packing from faces alone.

Mask ``i`` aims at bucket ``i % 6`` and depends only on (seed, i), so the set is identical
whatever the number of workers and an interrupted pack regenerates exactly the same masks.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from inpaint.core.buckets import BUCKET_EDGES

from .masks import MaskSample, measure

GENERATED_PREFIX = "generated/"
_MAX_ATTEMPTS = 50


def generated_name(index: int) -> str:
    """The ``paths`` entry of generated mask ``index`` (no file behind it: seed and index make it)."""
    return f"{GENERATED_PREFIX}{index:06d}"


def _stroke(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int, width: int) -> None:
    """One brush stroke: a random walk of thick line segments with round joints."""
    x, y = rng.uniform(0, size, 2)
    points = [(x, y)]
    angle = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(3, 9))):
        angle += rng.uniform(-1.2, 1.2)
        length = rng.uniform(0.05, 0.25) * size
        x = float(np.clip(x + length * np.cos(angle), 0, size - 1))
        y = float(np.clip(y + length * np.sin(angle), 0, size - 1))
        points.append((x, y))
    draw.line(points, fill=255, width=width, joint="curve")
    r = width / 2
    for px, py in (points[0], points[-1]):
        draw.ellipse((px - r, py - r, px + r, py + r), fill=255)


def _box(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int, scale: float) -> None:
    w, h = rng.uniform(0.05, scale, 2) * size
    x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
    draw.rectangle((x, y, x + w, y + h), fill=255)


def generate_mask(index: int, size: int, seed: int) -> MaskSample:
    """Free-form mask number ``index`` whose pixel hole ratio lies in bucket ``index % 6``."""
    bucket = index % len(BUCKET_EDGES)
    lo, hi = BUCKET_EDGES[bucket]
    rng = np.random.default_rng([seed, index])
    for _ in range(_MAX_ATTEMPTS):
        target = rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo))
        img = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(img)
        width = max(2, int(size * rng.uniform(0.03, 0.05 + 0.1 * hi)))
        arr = np.zeros((size, size), np.uint8)
        for _step in range(400):
            if rng.random() < 0.15:
                _box(draw, rng, size, 0.15 + 0.35 * hi)
            else:
                _stroke(draw, rng, size, width)
            arr = (np.asarray(img) > 127).astype(np.uint8)
            if arr.mean() >= target:
                break
        ratio, got = measure(arr)
        if got == bucket:
            return MaskSample(generated_name(index), arr, ratio, bucket)
    raise RuntimeError(f"could not draw a mask for bucket {bucket} in {_MAX_ATTEMPTS} attempts (size {size})")
