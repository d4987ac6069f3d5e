"""Atomic writes for reports and images: a reader (or a later run) never finds half a file under
the final name, even when a batch job is killed mid-write."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

#: Pillow format names by suffix, so a temp name (``x.png.tmp-123``) still saves as the right format.
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP"}
LOSSLESS_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            image.save(f, format=fmt, **params)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
