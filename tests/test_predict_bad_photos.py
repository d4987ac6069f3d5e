"""``python -m inpaint.predict`` given hostile or careless input: a decompression
bomb, damaged files, and the photo itself passed as its mask."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval_support import make_weights, run_predict
from test_predict import _mask, _photo, with_sha256


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 64-px smoke generator in the shipped format, its card carrying the file's sha256."""
    return with_sha256(make_weights(tmp_path_factory.mktemp("weights") / "smoke.pt", seed=0))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb(path: Path, side: int = 30000) -> Path:
    """A valid PNG header declaring side × side RGB pixels, with a few kB of zeros as data: the
    classic decompression bomb (2.7 GB once decoded)."""
    rows = zlib.compress(b"\0" * (1 + 3 * side) * 16, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [30000, 12000])  # over Pillow's hard limit, and over its warning limit
def test_decompression_bomb_photo_or_mask_is_a_one_line_error(side: int, tmp_path: Path, data_root: Path,
                                                              weights: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    bomb = _bomb(tmp_path / "bomb.png", side)
    assert bomb.stat().st_size < 100_000
    photo = _photo(data_root, tmp_path / "photo.png", (120, 100))
    mask = _mask(tmp_path / "mask.png", (120, 100), (40, 30, 70, 60))
    for argv, what in ((["--image", str(bomb), "--mask", str(mask)], "photo"), (["--image", str(photo), "--mask", str(bomb)], "mask")):
        code, _, err = run_predict([*argv, "--out", str(tmp_path / "out.png"), "--weights", str(weights)], capsys)
        assert code == 2, err
        assert err.startswith(f"error: {what} {bomb}") and f"{side}×{side}" in err and err.count("\n") == 1, err
        assert not (tmp_path / "out.png").exists()


def test_folder_mode_lists_unreadable_photos_and_repairs_the_rest(tmp_path: Path, data_root: Path, weights: Path,  # noqa: F811
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    photos, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "out"
    photos.mkdir()
    masks.mkdir()
    size = (120, 100)
    _bomb(photos / "a-bomb.png")                          # first in name order: must not stop the batch
    good = _photo(data_root, photos / "b-good.png", size)
    good.with_name("c-truncated.png").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _photo(data_root, photos / "d-good.png", size, 1)
    for name in ("a-bomb", "b-good", "c-truncated", "d-good"):
        _mask(masks / f"{name}.png", size, (40, 30, 70, 60))
    code, _, err = run_predict(["--image-dir", str(photos), "--mask-dir", str(masks), "--out-dir", str(out),
                      "--weights", str(weights)], capsys)
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["b-good.png", "d-good.png"]
    assert "2 failed" in err
    assert "a-bomb.png: photo" in err and "30000×30000" in err
    assert "c-truncated.png: photo" in err and "cannot be read" in err
    assert "Traceback" not in err


def test_photo_passed_as_its_own_mask_is_warned_about(tmp_path: Path, data_root: Path, weights: Path,  # noqa: F811
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(data_root, tmp_path / "photo.png", (120, 100))
    code, _, err = run_predict(["--image", str(photo), "--mask", str(photo), "--out", str(tmp_path / "out.png"),
                      "--weights", str(weights)], capsys)
    assert code == 0, err
    # (The random smoke weights get their own warning, tests/test_predict_messages.py.)
    warnings = [line for line in err.splitlines() if line.startswith("warning:") and "smoke model" not in line]
    assert len(warnings) == 1 and f"mask {photo}" in warnings[0] and "not black and white" in warnings[0]

    # A real mask, even antialiased and saved as JPEG, is not warned about.
    m = Image.new("L", (480, 400), 0)
    from PIL import ImageDraw
    ImageDraw.Draw(m).ellipse((160, 120, 280, 240), fill=255)
    m.resize((120, 100), Image.LANCZOS).save(tmp_path / "soft.jpg", quality=75)
    values = np.asarray(Image.open(tmp_path / "soft.jpg"))
    assert ((values > 16) & (values < 240)).any()  # it really holds grey edge pixels
    code, _, err = run_predict(["--image", str(photo), "--mask", str(tmp_path / "soft.jpg"), "--out", str(tmp_path / "out2.png"),
                      "--weights", str(weights)], capsys)
    assert code == 0, err
    assert "warning: mask" not in err

    # Folder mode: the warning names the photo and the rest still runs.
    (tmp_path / "p").mkdir()
    (tmp_path / "m").mkdir()
    Image.open(photo).save(tmp_path / "p" / "x.png")
    Image.open(photo).save(tmp_path / "m" / "x.png")
    code, _, err = run_predict(["--image-dir", str(tmp_path / "p"), "--mask-dir", str(tmp_path / "m"), "--out-dir", str(tmp_path / "o"),
                      "--weights", str(weights), "--quiet"], capsys)
    assert code == 0, err
    assert (tmp_path / "o" / "x.png").is_file()
    assert "warning: mask" in err and "x.png" in err and "not black and white" in err
