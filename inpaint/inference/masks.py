"""Reading a user's hole mask in whatever form it comes: 1-bit, greyscale, RGB, or an alpha layer.

People draw masks in many tools; the conventions differ (white = hole in the training data, black
= hole in some editors, or an opaque brush stroke on a transparent layer), so the convention is an
option and every way a mask can be unusable is a clear error naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from inpaint.core.errors import DataError

HOLE_CONVENTIONS = ("white", "black")


#: Largest photo or mask decoded, in pixels: Pillow's own decompression-bomb threshold (89 Mpx,
#: ~270 MB as RGB). Above it Pillow only warns (and raises only at twice that), so a few-kB file
#: declaring 12000×12000 would still be decoded; :func:`open_image` turns that warning into a
#: refusal.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


def open_image(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """A decoded image, upright as viewers show it (EXIF orientation applied).

    Every way a file can fail to decode is a :class:`DataError` naming it: Pillow's decoders signal
    a damaged file with many exception types (OSError, SyntaxError, struct.error, EOFError, …), and
    one bad photo must not abort a folder of good ones.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist: check the path") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise DataError(f"{what} {path} declares {_declared_size(path)} px, over the {MAX_PIXELS / 1e6:.0f} Mpx limit that "
                        "guards against decompression bombs: downscale it first") from None
    except MemoryError:
        raise DataError(f"{what} {path} is too large to decode in the memory available: downscale it") from None
    except Exception as exc:  # noqa: BLE001 — see the docstring: any decoder failure means an unreadable file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{what} {path} cannot be read as an image ({reason}): give a PNG, JPEG or other image file") from None


def _declared_size(path: Path) -> str:
    """The "W×H" of the file's header, for the message. Pillow runs its bomb check inside
    ``Image.open`` (over twice the limit it raises before handing out the image, size and all), so
    the check is off for this one look, which reads the header only."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as img:
            return f"{img.width}×{img.height}"
    except Exception:  # noqa: BLE001 — only for the message
        return "a size"
    finally:
        Image.MAX_IMAGE_PIXELS = limit


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


class MaskWarning(UserWarning):
    """A mask that is usable but probably not what the user meant (e.g. the photo itself)."""


#: A mask is "essentially two-valued" when at most this share of its pixels is grey (neither within
#: an eighth of the range of black nor of white): antialiased or JPEG-saved brush edges stay well
#: under it (a few %), a photo is far over it (most of its pixels are mid-tones).
MAX_GREY_SHARE = 0.10


def grey_share(img: Image.Image) -> float:
    """Share of the mask's pixels that are neither near black nor near white."""
    values, top = _levels(img)
    values = np.asarray(values, dtype=np.float64)
    return float(((values > top / 8.0) & (values < top * 7.0 / 8.0)).mean())


def load_hole(path: str | os.PathLike, photo_size: tuple[int, int], hole: str = "white",
              photo_name: str | os.PathLike = "the photo") -> np.ndarray:
    """The hole of mask file ``path`` for a photo of ``photo_size`` (width, height).

    Raises :class:`DataError` for a mask of another size, a mask without any hole, and a mask
    that is all hole (nothing left to inpaint from); warns (:class:`MaskWarning`) when the mask is
    not essentially two-valued, as when the photo itself is passed as its mask.
    """
    path = Path(path)
    return check_hole(open_image(path, "mask"), photo_size, hole, f"mask {path}", photo_name)


def check_hole(img: Image.Image | np.ndarray, photo_size: tuple[int, int], hole: str = "white",
               name: str = "the mask", photo_name: str | os.PathLike = "the photo") -> np.ndarray:
    """The hole of a mask already in memory (an image, or an array: bool True = hole, numbers
    bright = hole like a white-on-black image), with :func:`load_hole`'s checks; ``name`` is how
    the messages call the mask."""
    if isinstance(img, np.ndarray):
        if img.dtype == bool:  # True = hole whatever the colour convention
            img, hole = Image.fromarray(img.astype(np.uint8) * 255, "L"), "white"
        elif img.ndim in (2, 3) and img.dtype == np.uint8:
            img = Image.fromarray(img)
        else:
            raise DataError(f"{name} is a {img.dtype} array of shape {img.shape}: give a bool (True = hole) or "
                            "uint8 (H, W) array, or a PIL image")
    if img.size != tuple(photo_size):
        raise DataError(f"{name} is {img.size[0]}×{img.size[1]} px but {photo_name} is {photo_size[0]}×{photo_size[1]} px: "
                        "draw the mask on the photo itself so both have one size")
    mask = hole_from_mask_image(img, hole)
    other = "black" if hole == "white" else "white"
    grey = grey_share(img)
    if grey > MAX_GREY_SHARE:
        warnings.warn(MaskWarning(f"{name} is not black and white ({grey:.0%} of its pixels are grey): is it the photo "
                                  f"itself? its hole is taken where it is {'brighter' if hole == 'white' else 'darker'} than "
                                  "mid-grey; give a mask with the hole painted " + hole), stacklevel=3)
    if not mask.any():
        raise DataError(f"{name} marks no hole (no {hole} pixels): paint the hole {hole}, "
                        f"or pass --mask-hole {other} if your holes are {other}")
    if mask.all():
        raise DataError(f"{name} covers the whole photo: nothing is left to inpaint from; mark only the damaged region "
                        f"(or pass --mask-hole {other} if your holes are {other})")
    return mask
