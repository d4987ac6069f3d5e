"""Hole-ratio buckets of the reference protocol: (0.01, 0.1], (0.1, 0.2], …, (0.5, 0.6].

One definition shared by packing, training and evaluation so that a table row always
means the same masks.
"""

from __future__ import annotations

BUCKET_EDGES: tuple[tuple[float, float], ...] = (
    (0.01, 0.1),
    (0.1, 0.2),
    (0.2, 0.3),
    (0.3, 0.4),
    (0.4, 0.5),
    (0.5, 0.6),
)
BUCKET_LABELS: tuple[str, ...] = tuple(f"{lo:.2f}-{hi:.1f}" if lo < 0.1 else f"{lo:.1f}-{hi:.1f}" for lo, hi in BUCKET_EDGES)


def bucket_of(ratio: float) -> int:
    """Index of the bucket holding ``ratio`` (left-open, right-closed), or -1 when outside all."""
    for i, (lo, hi) in enumerate(BUCKET_EDGES):
        if lo < ratio <= hi:
            return i
    return -1
