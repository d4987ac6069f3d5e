"""Holes over the eyes, the nose and the mouth of each face, placed from its 68 landmarks.

Random free-form holes mostly cover cheeks, hair and background, where any smooth fill looks
right; the holes people actually make (a bar over the eyes, a covered mouth) sit on the features
that carry identity, and that is where a classical fill fails. Each hole is the convex
hull of the feature's landmarks grown by a margin, so it covers the feature and its edges and
nothing random: the set is a pure function of the face (no seed, nothing cached).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from inpaint.metrics.landmarks import BROWS, LEFT_EYE, MOUTH, NOSE, RIGHT_EYE, inter_ocular

FEATURES = ("eyes", "nose", "mouth")

#: The landmarks each hole covers: both eyes and both brows as one region (what a bar over the
#: eyes hides), the nose bridge to the nostrils, the outer and inner lip contours.
FEATURE_POINTS: dict[str, tuple[int, ...]] = {
    "eyes": (*BROWS, *RIGHT_EYE, *LEFT_EYE),
    "nose": tuple(NOSE),
    "mouth": tuple(MOUTH),
}

#: How far each hole reaches beyond its landmarks' hull, as a fraction of the inter-ocular
#: distance (so the same on every face size). The landmarks trace contours, not extents:
#: eyes 0.15 covers the lashes, the lid crease and the brow hair below the brows' upper-edge
#: points; nose 0.20 covers the nostril wings, which stick out beyond points 31 and 35; mouth
#: 0.15 covers the lip line and the mouth-corner shadows. Larger margins make the holes touch
#: (the nose bottom is ~0.35 inter-ocular distances above the upper lip).
MARGINS: dict[str, float] = {"eyes": 0.15, "nose": 0.20, "mouth": 0.15}


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise hull vertices of (N,2) points (Andrew's monotone chain), without repeats."""
    pts = sorted(set(map(tuple, np.asarray(points, dtype=np.float64))))
    if len(pts) <= 2:
        return np.array(pts, dtype=np.float64)

    def cross(o: tuple, a: tuple, b: tuple) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def grown_hull_mask(points: np.ndarray, margin: float, height: int, width: int) -> np.ndarray:
    """(H,W) bool: pixels whose centre lies inside the hull of ``points`` or within ``margin`` px of it."""
    hull = convex_hull(points)
    out = np.zeros((height, width), dtype=bool)
    # Only the pixels of the grown hull's bounding box can be in it.
    x0, y0 = np.maximum(np.floor(hull.min(axis=0) - margin), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(hull.max(axis=0) + margin), [width - 1, height - 1]).astype(int)
    if x1 < x0 or y1 < y0:
        return out
    ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1].astype(np.float64)
    px = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (P,2)
    starts, ends = hull, np.roll(hull, -1, axis=0)
    edge = ends - starts  # (E,2)
    rel = px[:, None, :] - starts[None, :, :]  # (P,E,2)
    length2 = np.maximum((edge ** 2).sum(axis=1), 1e-12)
    t = np.clip((rel * edge[None]).sum(axis=2) / length2, 0.0, 1.0)
    nearest = starts[None] + t[..., None] * edge[None]
    distance = np.sqrt(((px[:, None, :] - nearest) ** 2).sum(axis=2)).min(axis=1)
    inside = np.ones(len(px), dtype=bool)
    if len(hull) >= 3:  # counter-clockwise in (x, y): inside = left of every edge
        inside = ((edge[None, :, 0] * rel[..., 1] - edge[None, :, 1] * rel[..., 0]) >= 0).all(axis=1)
    else:
        inside[:] = False
    out[y0:y1 + 1, x0:x1 + 1] = (inside | (distance <= margin)).reshape(xs.shape)
    return out


def feature_masks(points: np.ndarray, height: int, width: int) -> dict[str, np.ndarray]:
    """``{feature: (H,W) bool hole}`` for the 68 landmarks ``points`` ((68,2) x, y in pixels)."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"feature_masks needs (68,2) landmarks, got {points.shape}")
    scale = inter_ocular(points)
    return {name: grown_hull_mask(points[list(FEATURE_POINTS[name])], MARGINS[name] * scale, height, width)
            for name in FEATURES}


@dataclass
class FeatureSet:
    """Every face's three holes, in pair order: pair ``i`` is face ``i // 3`` with feature
    ``FEATURES[i % 3]``; also which faces the detector found (the others used the whole crop)."""

    masks: np.ndarray          # (3N,H,W) uint8, 1 = hole
    detected: np.ndarray       # (N,) bool
    points: np.ndarray         # (N,68,2) float

    @property
    def faces(self) -> int:
        return len(self.detected)

    def pairs(self) -> list[tuple[int, int]]:
        """(face index, mask index) of every pair, face-major."""
        return [(i // len(FEATURES), i) for i in range(len(self.masks))]

    def pair_features(self) -> list[str]:
        return [FEATURES[i % len(FEATURES)] for i in range(len(self.masks))]

    def hole_ratios(self) -> np.ndarray:
        return self.masks.reshape(len(self.masks), -1).mean(axis=1)


class FeatureMaskSet(Dataset):
    """The holes as the runner reads masks: item -> ``{"mask": float32 (1,H,W), 1 = hole}``."""

    def __init__(self, masks: np.ndarray) -> None:
        self.masks = masks

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"mask": torch.from_numpy(self.masks[i][None].astype(np.float32))}
