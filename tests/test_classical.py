"""The classical fill (OpenCV) that baselines and pre-fill generators use: a function of the known
pixels and the hole only, whatever the hole pixels held."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inpaint.classical import METHODS, classical_fill


def _face_and_border_hole(data_root: Path, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A real face and the first real mask (in name order, from the middle of the set) whose hole
    reaches the image edge: where OpenCV reads the hole's old pixels."""
    face = sorted((data_root / "faces" / "utkface").glob("*.jpg"))[0]
    image = np.array(Image.open(face).convert("RGB").resize((size, size), Image.BICUBIC))
    mask_files = sorted((data_root / "masks").rglob("*.png"))
    for mask_file in mask_files[len(mask_files) // 2:]:
        hole = np.array(Image.open(mask_file).convert("L").resize((size, size), Image.NEAREST)) > 127
        if hole[0].any() or hole[-1].any() or hole[:, 0].any() or hole[:, -1].any():
            break
    assert 0.02 < hole.mean() < 0.7
    return (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1,
            torch.from_numpy(hole)[None, None].float())


@pytest.mark.parametrize("method", METHODS)
def test_fill_does_not_depend_on_what_the_hole_held(data_root: Path, method: str) -> None:
    """OpenCV reads the old pixels of a hole that touches the image edge (up to 20 grey levels
    apart on real 64-px faces and NVIDIA masks): a caller passing the intact face would leak the
    truth into the fill, and a zeroed and an intact input would score differently."""
    image, mask = _face_and_border_hole(data_root)
    zeroed = classical_fill(image * (1 - mask), mask, method)
    for hole_pixels in (image, torch.ones_like(image), torch.rand_like(image) * 2 - 1):
        given = torch.where(mask.bool(), hole_pixels, image)
        assert torch.equal(classical_fill(given, mask, method), zeroed)
    # Known pixels are kept (up to uint8 rounding), only the hole is filled.
    known = mask.expand_as(image) == 0
    assert (zeroed - image).abs()[known].max() <= 0.5 / 127.5 + 1e-6
    assert (zeroed - image).abs()[~known].mean() > 0.01
