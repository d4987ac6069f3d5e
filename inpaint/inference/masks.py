"""Reading a user's hole mask in whatever form it comes: 1-bit, greyscale, RGB, or an alpha layer.

People draw masks in many tools; the conventions differ (white = hole in the training data, black
= hole in some editors, or an opaque brush stroke on a transparent layer), so the convention is an
option and every way a mask can be unusable is a clear error naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inpaint.errors import DataError

HOLE_CONVENTIONS = ("white", "black")


def open_image(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """A decoded image, upright as viewers show it (EXIF orientation applied)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist: check the path") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{what} {path} cannot be read as an image ({exc}): give a PNG, JPEG or other image file") from exc


#: Photo modes inpainted as 8-bit colour; 16-bit and float photos would lose precision silently.
PHOTO_MODES = ("RGB", "RGBA", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr")


def open_photo(path: str | os.PathLike) -> Image.Image:
    """A photo to inpaint: any 8-bit colour or greyscale image, upright."""
    img = open_image(path, "photo")
    if img.mode not in PHOTO_MODES:
        raise DataError(f"photo {path} has pixel mode {img.mode} (16-bit or float): convert it to an 8-bit PNG or JPEG first")
    return img


def _levels(img: Image.Image) -> tuple[np.ndarray, float]:
    """The mask's values and their maximum: alpha if the image has a non-constant alpha channel
    (a stroke painted on a transparent layer), else its brightness."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() != alpha.max():
            return alpha, 255.0
        img = img.convert("RGB")
    if img.mode == "1":
        return np.asarray(img, dtype=np.uint8), 1.0
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img).astype(np.float64)
        return arr, 65535.0 if arr.max() > 255 else 255.0
    return np.asarray(img.convert("L")), 255.0


def hole_from_mask_image(img: Image.Image, hole: str = "white") -> np.ndarray:
    """Boolean (H,W) array, True = hole, thresholded at half the value range (so antialiased
    brush edges count as hole only where they are mostly painted)."""
    if hole not in HOLE_CONVENTIONS:
        raise ValueError(f"hole convention must be one of {HOLE_CONVENTIONS}, got {hole!r}")
    values, top = _levels(img)
    bright = values > top / 2.0
    return bright if hole == "white" else ~bright


def load_hole(path: str | os.PathLike, photo_size: tuple[int, int], hole: str = "white",
              photo_name: str | os.PathLike = "the photo") -> np.ndarray:
    """The hole of mask file ``path`` for a photo of ``photo_size`` (width, height).

    Raises :class:`DataError` for a mask of another size, a mask without any hole, and a mask
    that is all hole (nothing left to inpaint from).
    """
    path = Path(path)
    img = open_image(path, "mask")
    if img.size != tuple(photo_size):
        raise DataError(f"mask {path} is {img.size[0]}×{img.size[1]} px but {photo_name} is {photo_size[0]}×{photo_size[1]} px: "
                        "draw the mask on the photo itself so both have one size")
    mask = hole_from_mask_image(img, hole)
    other = "black" if hole == "white" else "white"
    if not mask.any():
        raise DataError(f"mask {path} marks no hole (no {hole} pixels): paint the hole {hole}, "
                        f"or pass --mask-hole {other} if your holes are {other}")
    if mask.all():
        raise DataError(f"mask {path} covers the whole photo: nothing is left to inpaint from; mark only the damaged region "
                        f"(or pass --mask-hole {other} if your holes are {other})")
    return mask
