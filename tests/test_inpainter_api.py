"""The Python API: shipped weights by name, and a photo repaired from a PIL image
or a numpy array in three lines, with the conventions of ``python -m inpaint.predict`` (white =
hole, only hole pixels change). A real face, a real NVIDIA mask, the shipped model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpaint.core.errors import CheckpointError, DataError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def face_and_mask(data_root: Path) -> tuple[Image.Image, Image.Image]:
    """A UTKFace photo (200 px) and an NVIDIA irregular mask (white = hole) of ~20 % resized to it."""
    face = Image.open(sorted((data_root / "faces" / "utkface").iterdir())[7]).convert("RGB")
    masks = sorted(p for p in (data_root / "masks").rglob("*.png"))
    mask = Image.open(masks[len(masks) // 3]).convert("L").resize(face.size, Image.NEAREST)
    share = (np.asarray(mask) > 127).mean()
    assert 0.05 < share < 0.5, share
    return face, mask


@pytest.fixture(scope="module")
def inpainter():
    from inpaint import Inpainter

    return Inpainter.from_pretrained("quarter-residual")


def test_three_lines_repair_a_pil_photo(face_and_mask, inpainter) -> None:
    face, mask = face_and_mask
    repaired = inpainter.repair(face, mask)
    assert isinstance(repaired, Image.Image) and repaired.size == face.size and repaired.mode == "RGB"
    before, after = np.asarray(face).astype(int), np.asarray(repaired).astype(int)
    hole = np.asarray(mask) > 127
    assert np.array_equal(after[~hole], before[~hole])  # only the hole changes
    # The hole is filled with something close to the face that was there, far closer than a flat
    # grey fill would be: it is a repair, not noise.
    error = np.abs(after[hole] - before[hole]).mean()
    grey = np.abs(128 - before[hole]).mean()
    assert error < 0.5 * grey, (error, grey)


def test_numpy_in_numpy_out_the_same_pixels_and_the_same_as_predict(face_and_mask, inpainter, tmp_path: Path) -> None:
    face, mask = face_and_mask
    from_pil = np.asarray(inpainter.repair(face, mask))
    array = inpainter.repair(np.asarray(face), np.asarray(mask) > 127)  # bool mask: True = hole
    assert isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.shape == from_pil.shape
    assert np.array_equal(array, from_pil)
    assert np.array_equal(inpainter.repair(np.asarray(face), np.asarray(mask)), from_pil)  # uint8 mask, white = hole

    face.save(tmp_path / "photo.png")
    mask.save(tmp_path / "mask.png")
    from inpaint.predict import main as predict_main

    assert predict_main(["--image", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"),
                         "--out", str(tmp_path / "out.png"), "--weights", "quarter-residual"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), from_pil)


def test_unknown_names_and_bad_inputs_are_one_line_errors(face_and_mask, inpainter) -> None:
    from inpaint import Inpainter
    from inpaint.io.registry import shipped_weights

    assert "quarter-residual" in shipped_weights()
    with pytest.raises(CheckpointError, match=r"no shipped weights named 'quarter-residul' \(known: .*quarter-residual") as info:
        Inpainter.from_pretrained("quarter-residul")
    assert "\n" not in str(info.value)
    face, mask = face_and_mask
    with pytest.raises(DataError, match="the mask is 100×100 px but the photo is 200×200 px"):
        inpainter.repair(face, mask.resize((100, 100)))
    with pytest.raises(DataError, match="marks no hole"):
        inpainter.repair(face, np.zeros((200, 200), bool))
    with pytest.raises(DataError, match="uint8"):
        inpainter.repair(np.asarray(face) / 255.0, mask)


def test_importing_the_package_does_not_load_torch() -> None:
    code = "import sys, inpaint; assert 'torch' not in sys.modules; print(inpaint.__version__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_registry_lists_the_shipped_weights_with_their_cards(capsys: pytest.CaptureFixture[str]) -> None:
    from inpaint.io.registry import main as registry_main

    assert registry_main([]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("quarter-residual: "))
    assert "config quarter-residual, 128 px" in line and "trained on 23,968 images" in line and "PSNR 30.10" in line
