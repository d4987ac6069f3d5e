"""Classical (non-learned) hole filling with OpenCV: the baseline every learned model must beat,
and the pre-fill that learned variants may start from.

OpenCV is an optional extra (``pip install 'facefill[baselines]'``); everything else in the
toolkit works without it, so the import happens here, on first use, with an error that names the
extra instead of a bare ModuleNotFoundError.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from inpaint.errors import ConfigError
from inpaint.visual import to_uint8

METHODS = ("navier-stokes", "telea")
DEFAULT_RADIUS = 5
#: What a hole zeroed in [-1, 1] becomes in uint8 ((0 + 1) · 127.5, rounded half to even).
HOLE_GREY = 128
EXTRA_HINT = "pip install 'facefill[baselines]' (opencv-python-headless)"


def opencv() -> Any:
    """The ``cv2`` module, or a ConfigError naming the extra that provides it."""
    try:
        import cv2
    except ImportError as exc:
        raise ConfigError(f"classical fill needs OpenCV, which is not installed ({exc}); {EXTRA_HINT}") from None
    return cv2


def opencv_available() -> bool:
    try:
        opencv()
    except ConfigError:
        return False
    return True


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"unknown classical fill {method!r}; choose one of {', '.join(METHODS)}")
    return method


def fill_uint8(image: np.ndarray, hole: np.ndarray, method: str = "navier-stokes", radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """One photo: (H,W,3) uint8 RGB and a (H,W) hole map (non-zero = hole) → filled (H,W,3) uint8.

    The hole's pixels are set to mid-grey (what the model's zeroed input holds) before OpenCV sees
    them: ``cv2.inpaint`` reads the old pixels of a hole that touches the image edge, so an intact
    image would otherwise leak its truth into the fill and score better than a zeroed input.
    """
    cv2 = opencv()
    flag = {"navier-stokes": cv2.INPAINT_NS, "telea": cv2.INPAINT_TELEA}[check_method(method)]
    hole8 = (np.asarray(hole) > 0).astype(np.uint8)
    known = np.array(image, dtype=np.uint8, copy=True)
    known[hole8 > 0] = HOLE_GREY
    return cv2.inpaint(known, hole8, radius, flag)


def classical_fill(images: torch.Tensor, masks: torch.Tensor, method: str = "navier-stokes",
                   radius: int = DEFAULT_RADIUS) -> torch.Tensor:
    """A batch in the model's convention: (B,3,H,W) in [-1,1] and (B,1,H,W) with 1 = hole →
    (B,3,H,W) in [-1,1], known pixels as given (up to uint8 rounding), holes filled by OpenCV.

    Hole pixels of ``images`` are never used (see :func:`fill_uint8`), so zeroed holes and intact
    images give the same fill.
    """
    pixels = to_uint8(images)
    holes = masks.detach().cpu()[:, 0].numpy() > 0.5

    def fill(i: int) -> np.ndarray:
        return fill_uint8(pixels[i], holes[i], method, radius)

    # One image at a time is single-threaded inside OpenCV, which releases the GIL: a batch is
    # filled on as many threads as torch may use (a 0.3-0.6 hole takes ~20-30 ms at 128 px).
    workers = min(len(pixels), torch.get_num_threads())
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            filled = np.stack(list(pool.map(fill, range(len(pixels)))))
    else:
        filled = np.stack([fill(i) for i in range(len(pixels))])
    out = torch.from_numpy(filled).permute(0, 3, 1, 2).float() / 127.5 - 1
    return out.to(device=images.device, dtype=images.dtype)
