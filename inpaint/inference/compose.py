"""Putting generated pixels back into the full-resolution photo.

Only hole pixels change. The blend weight ramps up from the hole's edge to 1 over ``feather``
pixels, so the seam between the sharp original and the (upsampled, softer) generated content is
not a hard line; pixels outside the hole keep their exact bytes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def auto_feather(crop_side: int, model_size: int) -> int:
    """Default feather width: one model pixel as it appears at full resolution (0 when the crop
    is not enlarged, since generated pixels then line up with the photo's)."""
    scale = crop_side / float(model_size)
    return int(math.ceil(scale)) if scale > 1.0 else 0


def feather_alpha(hole: np.ndarray, feather: int) -> np.ndarray:
    """Blend weight per pixel: 0 outside the hole; inside, (d / (feather + 1)) capped at 1, where
    d is the chessboard distance (1 = touching a known pixel) to the nearest known pixel."""
    alpha = hole.astype(np.float32)
    if feather <= 0 or not hole.any():
        return alpha
    known = torch.from_numpy(~hole).float()[None, None]
    # Distance by repeated 3×3 dilation of the known region, only as far as the ramp reaches and
    # only while it still reaches new pixels (a wide feather on a narrow hole stops early).
    distance = torch.full_like(known, float(feather + 1))
    reached = known
    for step in range(1, feather + 1):
        grown = F.max_pool2d(reached, kernel_size=3, stride=1, padding=1)
        newly = (grown > 0) & (reached == 0)
        if not bool(newly.any()):
            break
        distance[newly] = float(step)
        reached = grown
    ramp = (distance[0, 0] / float(feather + 1)).clamp(max=1.0).numpy()
    return np.where(hole, ramp, 0.0).astype(np.float32)


def paste_hole(photo: np.ndarray, generated: np.ndarray, hole: np.ndarray, feather: int) -> np.ndarray:
    """``photo`` (H,W,C uint8) with its hole pixels blended towards ``generated`` (same shape).

    Work is limited to the hole's bounding box, so a small hole in a large photo is cheap; every
    pixel outside the hole is copied unchanged.
    """
    if photo.shape != generated.shape or photo.shape[:2] != hole.shape:
        raise ValueError(f"shapes differ: photo {photo.shape}, generated {generated.shape}, hole {hole.shape}")
    rows = np.flatnonzero(hole.any(axis=1))
    cols = np.flatnonzero(hole.any(axis=0))
    out = photo.copy()
    if rows.size == 0:
        return out
    pad = feather + 1
    t, b = max(rows[0] - pad, 0), min(rows[-1] + 1 + pad, hole.shape[0])
    l, r = max(cols[0] - pad, 0), min(cols[-1] + 1 + pad, hole.shape[1])
    sub_hole = hole[t:b, l:r]
    alpha = feather_alpha(sub_hole, feather)[..., None]
    blended = alpha * generated[t:b, l:r].astype(np.float32) + (1.0 - alpha) * photo[t:b, l:r].astype(np.float32)
    region = out[t:b, l:r]
    region[sub_hole] = np.clip(np.rint(blended[sub_hole]), 0, 255).astype(photo.dtype)
    return out
