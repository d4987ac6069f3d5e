"""Decoding one face photo into a square RGB array of the packing size, with its labels.

Runs inside pack's worker processes, so it takes and returns only plain picklable values and
reports a broken file as a skip reason instead of raising.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inpaint.core.shard_format import GENDER_NAMES, RACE_NAMES

MIN_SOURCE_SIDE = 64
UNKNOWN = -1
MAX_AGE = 116
N_GENDERS = len(GENDER_NAMES)
N_RACES = len(RACE_NAMES)

_UTK_PREFIX = re.compile(r"^(\d{1,3})_(\d+)_(\d+)?")


@dataclass(frozen=True)
class FaceSample:
    path: str
    sha256: str
    labels: tuple[int, int, int]  # age, gender, race; -1 unknown
    image: np.ndarray | None  # (size, size, 3) uint8 for raw encoding
    encoded: bytes | None  # png/jpeg bytes otherwise


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def parse_utkface_labels(name: str) -> tuple[int, int, int]:
    """(age, gender, race) from a UTKFace name ``AGE_GENDER_RACE_TIMESTAMP…``; -1 where unknown.

    Each field is checked on its own: some UTKFace releases lack the race field, and non-UTK
    names (CelebA-HQ ``00001.jpg``) carry no labels at all.
    """
    parts = Path(name).name.split("_")
    if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return (UNKNOWN, UNKNOWN, UNKNOWN)
    age = int(parts[0]) if int(parts[0]) <= MAX_AGE else UNKNOWN
    gender = int(parts[1]) if int(parts[1]) < N_GENDERS else UNKNOWN
    race = UNKNOWN
    if len(parts) >= 4 and parts[2].isdigit() and int(parts[2]) < N_RACES:
        race = int(parts[2])
    return (age, gender, race)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode as RGB; transparent pixels become white rather than arbitrary colours."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = max(float(arr.max()), 1.0)
        scale = 255.0 / (65535.0 if top > 255 else 255.0)
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def square_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize in one Lanczos pass (``box`` avoids an extra copy)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if side == size:
        return img.crop((left, top, left + side, top + side))
    return img.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))


def decode_face(data: bytes, size: int) -> np.ndarray:
    """Bytes of a photo -> (size, size, 3) uint8. Raises ValueError with a reason when unusable."""
    if not data:
        raise ValueError("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ValueError("not an image Pillow can read") from None
        # The photo's own size, from its header: judged before draft mode shrinks it, which at
        # small packing sizes would call every photo too small.
        if min(img.size) < MIN_SOURCE_SIDE:
            raise ValueError(f"too small ({img.size[0]}x{img.size[1]} px, need at least {MIN_SOURCE_SIDE} px)")
        if img.format == "JPEG":
            # Draft mode decodes a 1024-px JPEG at 1/2, 1/4 or 1/8 scale via the DCT; asking for
            # twice the target keeps the final Lanczos step doing the real filtering.
            img.draft("RGB", (2 * size, 2 * size))
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"truncated or corrupt image data ({exc})") from None
    ImageOps.exif_transpose(img, in_place=True)  # phone photos: honour the orientation tag
    return np.asarray(square_resize(to_rgb(img), size), dtype=np.uint8)


def encode_face(image: np.ndarray, encoding: str, quality: int) -> bytes:
    """PNG (lossless) or JPEG bytes of a packed face, for compact shards."""
    buf = io.BytesIO()
    if encoding == "png":
        Image.fromarray(image).save(buf, format="PNG", compress_level=6)
    elif encoding == "jpeg":
        Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    return buf.getvalue()


def load_face(root: str, relpath: str, size: int, encoding: str = "raw", quality: int = 95) -> FaceSample | Skipped:
    """One face file as a packed sample, or the reason it cannot be used."""
    try:
        data = Path(root, relpath).read_bytes()
    except OSError as exc:
        return Skipped(relpath, f"unreadable file ({exc.strerror or exc})")
    try:
        image = decode_face(data, size)
    except ValueError as exc:
        return Skipped(relpath, str(exc))
    except Exception as exc:  # Pillow raises many types on hostile files; one bad file must not stop a pack
        return Skipped(relpath, f"cannot decode ({type(exc).__name__}: {exc})")
    sha = hashlib.sha256(data).hexdigest()
    labels = parse_utkface_labels(relpath)
    if encoding == "raw":
        return FaceSample(relpath, sha, labels, image, None)
    return FaceSample(relpath, sha, labels, None, encode_face(image, encoding, quality))
