"""Atomic image writes (see :mod:`inpaint.atomic`): a reader (or a later run) never finds half an
image under the final name, even when a batch job is killed mid-write."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from inpaint.atomic import atomic_open

#: Pillow format names by suffix, so a temp name (``x.png.tmp-123``) still saves as the right format.
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP"}
LOSSLESS_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


def image_format(path: str | os.PathLike) -> str | None:
    """Pillow format for ``path``'s suffix, or None when the suffix is not a supported image type."""
    return _FORMATS.get(Path(path).suffix.lower())


def save_image_atomic(image: Image.Image, path: str | os.PathLike, **params: object) -> Path:
    path = Path(path)
    fmt = image_format(path)
    if fmt is None:
        raise ValueError(f"unsupported image suffix {path.suffix!r} for {path}")
    if fmt == "WEBP":
        params.setdefault("lossless", True)
    with atomic_open(path, "wb") as f:
        image.save(f, format=fmt, **params)
    return path
