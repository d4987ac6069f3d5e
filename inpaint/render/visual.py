"""Side-by-side pictures of inpainting results: masked input | output | composite | ground truth.

Used for the trainer's per-epoch samples and reusable by evaluation and inference, so that every
picture the project produces reads the same way. Pillow only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from inpaint.core.atomic import atomic_open
from inpaint.metrics.image import composite

COLUMNS = ("masked input", "output", "composite", "ground truth")
SHORT_COLUMNS = ("input", "output", "composite", "truth")  # for images narrower than the long labels
HOLE_COLOUR = (255, 255, 255)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [-1, 1] → (B,H,W,3) uint8, rounded as a saved PNG would be."""
    x = images.detach().float().cpu().clamp(-1, 1)
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def show_holes(image: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The network's input as a person would see it: holes painted white."""
    pixels = to_uint8(image)
    holes = mask.detach().cpu().bool()[:, 0].numpy()
    pixels[holes] = HOLE_COLOUR
    return pixels


def image_grid(columns: Sequence[np.ndarray], labels: Sequence[str] | None = None, pad: int = 2,
               background: tuple[int, int, int] = (32, 32, 32)) -> Image.Image:
    """Rows = samples, one column per (B,H,W,3) uint8 array, with an optional label header."""
    if not columns:
        raise ValueError("image_grid needs at least one column")
    b, h, w, _ = columns[0].shape
    font = ImageFont.load_default()
    header = 14 if labels else 0
    width = len(columns) * (w + pad) + pad
    height = header + b * (h + pad) + pad
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    for c, col in enumerate(columns):
        x = pad + c * (w + pad)
        if labels:
            draw.text((x + 1, 1), labels[c], fill=(230, 230, 230), font=font)
        for r in range(b):
            canvas.paste(Image.fromarray(col[r]), (x, header + pad + r * (h + pad)))
    return canvas


def inpainting_grid(image: torch.Tensor, mask: torch.Tensor, output: torch.Tensor, labels: bool = True) -> Image.Image:
    """The standard four-column picture for a batch of faces (all tensors (B,C,H,W), [-1,1],
    mask 1 = hole)."""
    cols = [show_holes(image, mask), to_uint8(output), to_uint8(composite(output, image, mask)), to_uint8(image)]
    names = COLUMNS if image.shape[-1] >= 80 else SHORT_COLUMNS
    return image_grid(cols, names if labels else None)


#: Pillow format names by suffix, so a temp name (``x.png.tmp-123``) still saves as the right format.
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP"}
#: Suffixes whose format keeps every pixel exactly (WebP is saved lossless too, see save_image).
LOSSLESS_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


def image_format(path: str | os.PathLike) -> str | None:
    """Pillow format for ``path``'s suffix, or None when the suffix is not a supported image type."""
    return _FORMATS.get(Path(path).suffix.lower())


def save_image(picture: Image.Image, path: str | os.PathLike, fmt: str | None = None, **params: object) -> Path:
    """The project's one image writer: atomically (temp name in the same folder, then rename), so a
    reader or a later run never finds half an image under the final name even when a batch job is
    killed mid-write. The format follows the suffix unless ``fmt`` is given; WebP is lossless."""
    path = Path(path)
    fmt = fmt or image_format(path)
    if fmt is None:
        raise ValueError(f"unsupported image suffix {path.suffix!r} for {path}")
    if fmt == "WEBP":
        params.setdefault("lossless", True)
    with atomic_open(path, "wb") as f:
        picture.save(f, format=fmt, **params)
    return path
