"""Classical (non-learned) hole filling: the baselines every learned model must beat, and the
pre-fill that learned variants may start from.

* ``navier-stokes`` and ``telea``: OpenCV's ``cv2.inpaint`` (fast, propagates edges inward);
* ``biharmonic``: scikit-image's ``inpaint_biharmonic``, the smoothest continuation of the known
  pixels. On faces it is the strongest classical fill in PSNR and SSIM (about 3 dB over
  Navier–Stokes on unseen faces), at 2–5× its cost, so it is the bar a learned model must clear.

OpenCV and scikit-image are the optional ``[baselines]`` extra; everything else in the toolkit
works without them, so the imports happen here, on first use, with an error that names the extra
instead of a bare ModuleNotFoundError.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import torch

from inpaint.core.errors import ConfigError
from inpaint.render.visual import to_uint8

OPENCV_METHODS = ("navier-stokes", "telea")
METHODS = (*OPENCV_METHODS, "biharmonic")
DEFAULT_RADIUS = 5
#: What a hole zeroed in [-1, 1] becomes in uint8 ((0 + 1) · 127.5, rounded half to even).
HOLE_GREY = 128
EXTRA_HINT = "pip install 'facefill[baselines]' (opencv-python-headless, scikit-image)"


def opencv() -> Any:
    """The ``cv2`` module, or a ConfigError naming the extra that provides it."""
    try:
        import cv2
    except ImportError as exc:
        raise ConfigError(f"classical fill needs OpenCV, which is not installed ({exc}); {EXTRA_HINT}") from None
    return cv2


def skimage_biharmonic() -> Callable[..., np.ndarray]:
    """``skimage.restoration.inpaint_biharmonic``, or a ConfigError naming the extra."""
    try:
        from skimage.restoration import inpaint_biharmonic
    except ImportError as exc:
        raise ConfigError(f"the biharmonic fill needs scikit-image, which is not installed ({exc}); {EXTRA_HINT}") from None
    return inpaint_biharmonic


def require(method: str) -> None:
    """A ConfigError naming the extra when the library behind ``method`` is missing, so a model or
    a baseline fails when it is built, not at its first batch."""
    if check_method(method) == "biharmonic":
        skimage_biharmonic()
    else:
        opencv()


def available(method: str) -> bool:
    try:
        require(method)
    except ConfigError:
        return False
    return True


def opencv_available() -> bool:
    return available("navier-stokes")


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"unknown classical fill {method!r}; choose one of {', '.join(METHODS)}")
    return method


def fill_uint8(image: np.ndarray, hole: np.ndarray, method: str = "navier-stokes", radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """OpenCV's fill of one photo; see :func:`fill_opencv`."""
    return fill_opencv(image, hole, method, radius)


def fill_opencv(image: np.ndarray, hole: np.ndarray, method: str = "navier-stokes", radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """One photo: (H,W,3) uint8 RGB and a (H,W) hole map (non-zero = hole) → filled (H,W,3) uint8.

    The hole's pixels are set to mid-grey (what the model's zeroed input holds) before OpenCV sees
    them: ``cv2.inpaint`` reads the old pixels of a hole that touches the image edge, so an intact
    image would otherwise leak its truth into the fill and score better than a zeroed input.
    """
    cv2 = opencv()
    if check_method(method) not in OPENCV_METHODS:
        raise ConfigError(f"{method!r} is not an OpenCV fill; choose one of {', '.join(OPENCV_METHODS)}")
    flag = {"navier-stokes": cv2.INPAINT_NS, "telea": cv2.INPAINT_TELEA}[method]
    hole8 = (np.asarray(hole) > 0).astype(np.uint8)
    known = np.array(image, dtype=np.uint8, copy=True)
    known[hole8 > 0] = HOLE_GREY
    return cv2.inpaint(known, hole8, radius, flag)


def fill_biharmonic(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """One photo: (H,W,3) float in [0, 1] and a (H,W) hole map → (H,W,3) float64 in [0, 1].

    Known pixels are kept exactly; scikit-image solves one sparse system for all three channels.
    The hole's old pixels are zeroed first so that nothing of them can reach the fill, and a
    photo that is all hole (no boundary to continue) becomes the grey a zeroed input holds.
    """
    hole = np.asarray(hole) > 0
    known = np.array(image, dtype=np.float64, copy=True)
    if hole.all():
        return np.full_like(known, HOLE_GREY / 255.0)
    if not hole.any():
        return known
    known[hole] = 0.0
    return np.clip(skimage_biharmonic()(known, hole, channel_axis=-1), 0.0, 1.0)


def classical_fill(images: torch.Tensor, masks: torch.Tensor, method: str = "navier-stokes",
                   radius: int = DEFAULT_RADIUS) -> torch.Tensor:
    """A batch in the model's convention: (B,3,H,W) in [-1,1] and (B,1,H,W) with 1 = hole →
    (B,3,H,W) in [-1,1], holes filled classically. Known pixels are as given: exactly for the
    biharmonic fill, up to uint8 rounding for OpenCV's (which works on 8-bit images).

    Hole pixels of ``images`` are never used (see :func:`fill_opencv`), so zeroed holes and intact
    images give the same fill.
    """
    holes = masks.detach().cpu()[:, 0].numpy() > 0.5
    if check_method(method) == "biharmonic":
        pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()

        def fill(i: int) -> np.ndarray:
            return fill_biharmonic(pixels[i], holes[i])
    else:
        pixels = to_uint8(images)

        def fill(i: int) -> np.ndarray:
            return fill_opencv(pixels[i], holes[i], method, radius)

    # One image at a time is single-threaded inside OpenCV and SuperLU, which release the GIL: a
    # batch is filled on as many threads as torch may use.
    workers = min(len(pixels), torch.get_num_threads())
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            filled = np.stack(list(pool.map(fill, range(len(pixels)))))
    else:
        filled = np.stack([fill(i) for i in range(len(pixels))])
    out = torch.from_numpy(filled).permute(0, 3, 1, 2).float()
    out = out / 127.5 - 1 if filled.dtype == np.uint8 else out * 2 - 1
    return out.to(device=images.device, dtype=images.dtype)
