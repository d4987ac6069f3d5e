"""``python -m inpaint.predict`` on real face photos of arbitrary size, with a smoke-size model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inpaint.core.errors import CheckpointError
from eval_support import make_weights, run_predict


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shipped-format weights file (fp16 state dict + JSON sidecar) of a random 64-px smoke generator,
    its card with the file's sha256 as an export writes it (a card without one is warned about)."""
    return with_sha256(make_weights(tmp_path_factory.mktemp("weights") / "smoke.pt", seed=0))


def with_sha256(weights: Path) -> Path:
    """``weights`` with the sha256 of the file recorded in its card."""
    import json

    from inpaint.core.shard_format import sha256_file

    card = json.loads(weights.with_suffix(".json").read_text())
    card["sha256"] = sha256_file(weights)
    weights.with_suffix(".json").write_text(json.dumps(card))
    return weights


def _face(data_root: Path, i: int) -> Image.Image:
    folder = data_root / "faces" / "utkface"
    return Image.open(folder / sorted(os.listdir(folder))[i]).convert("RGB")


def _photo(data_root: Path, path: Path, size: tuple[int, int] = (600, 400), i: int = 0) -> Path:
    """A face pasted into a larger scene, as a user's photo would be."""
    canvas = Image.new("RGB", size, (40, 90, 160))
    side = min(size) * 3 // 4
    canvas.paste(_face(data_root, i).resize((side, side), Image.BICUBIC), ((size[0] - side) // 2, (size[1] - side) // 2))
    canvas.save(path)
    return path


def _mask(path: Path, size: tuple[int, int], box: tuple[int, int, int, int], mode: str = "L") -> Path:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).ellipse(box, fill=255)
    if mode == "1":
        m = m.convert("1")
    elif mode == "RGB":
        m = m.convert("RGB")
    elif mode == "RGBA":  # an opaque stroke on a transparent layer; colour channels say nothing
        rgba = Image.new("RGBA", size, (0, 0, 0, 0))
        rgba.putalpha(m)
        m = rgba
    m.save(path)
    return path


def test_photo_of_any_size_changes_only_the_hole(data_root: Path, weights: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(data_root, tmp_path / "photo.png")
    mask = _mask(tmp_path / "mask.png", (600, 400), (280, 170, 380, 250))
    code, _, err = run_predict(["--image", str(photo), "--mask", str(mask), "--out", str(tmp_path / "out.png"),
                      "--weights", str(weights)], capsys)
    assert code == 0, err
    before = np.asarray(Image.open(photo))
    after = np.asarray(Image.open(tmp_path / "out.png"))
    hole = np.asarray(Image.open(mask)) > 127
    assert after.shape == before.shape
    assert np.array_equal(after[~hole], before[~hole])             # byte-identical outside the hole
    changed = np.any(after[hole] != before[hole], axis=-1)
    assert changed.mean() > 0.9                                    # the hole really was repainted
    assert not list(tmp_path.glob("*.tmp-*"))


def test_every_mask_mode_and_convention_gives_the_same_hole(tmp_path: Path) -> None:
    from inpaint.inference.masks import load_hole

    size, box = (80, 60), (20, 10, 50, 40)
    reference = load_hole(_mask(tmp_path / "l.png", size, box, "L"), size)
    assert 0 < reference.sum() < reference.size
    for mode in ("1", "RGB", "RGBA"):
        assert np.array_equal(load_hole(_mask(tmp_path / f"{mode}.png", size, box, mode), size), reference), mode
    inverted = Image.eval(Image.open(tmp_path / "l.png"), lambda v: 255 - v)
    inverted.save(tmp_path / "black.png")
    assert np.array_equal(load_hole(tmp_path / "black.png", size, hole="black"), reference)


@pytest.mark.parametrize("case, message", [
    ("size", "is 64×64 px but"),
    ("empty", "marks no hole"),
    ("full", "covers the whole photo"),
    ("black-empty", "marks no hole (no black pixels)"),
])
def test_bad_masks_are_clear_errors(case: str, message: str, data_root: Path, weights: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(data_root, tmp_path / "photo.png", (120, 100))
    fill = {"size": None, "empty": 0, "full": 255, "black-empty": 255}[case]
    mask = Image.new("L", (64, 64), 255) if case == "size" else Image.new("L", (120, 100), fill)
    mask.save(tmp_path / "mask.png")
    extra = ["--mask-hole", "black"] if case == "black-empty" else []
    code, _, err = run_predict(["--image", str(photo), "--mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "out.png"),
                      "--weights", str(weights), *extra], capsys)
    assert code == 2
    assert err.startswith("error: mask ") and message in err and "mask.png" in err and err.count("\n") == 1
    assert not (tmp_path / "out.png").exists()


def test_folder_mode_batches_and_reports_failures(data_root: Path, weights: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    photos, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "out"
    photos.mkdir()
    masks.mkdir()
    sizes = {"a": (150, 120), "b": (90, 130), "c": (200, 200), "d": (100, 100), "e": (120, 120)}
    for i, (name, size) in enumerate(sizes.items()):
        _photo(data_root, photos / f"{name}.png", size, i)
    for name in ("a", "b", "c"):
        w, h = sizes[name]
        _mask(masks / f"{name}.png", sizes[name], (w // 3, h // 3, w // 2, h // 2))
    Image.new("L", (10, 10), 255).save(masks / "d.png")   # wrong size; e has no mask at all
    (photos / "f.jpg").write_bytes(b"not an image")         # a damaged photo with a valid mask
    _mask(masks / "f.png", (50, 50), (10, 10, 20, 20))
    code, _, err = run_predict(["--image-dir", str(photos), "--mask-dir", str(masks), "--out-dir", str(out),
                      "--weights", str(weights), "--batch-size", "2"], capsys)
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    assert "inpainting 6/6" in err and "3 failed" in err
    assert "d.png: mask" in err and "is 10×10 px" in err and "e.png: no mask named e.*" in err
    assert "f.jpg: photo" in err and "cannot be read as an image" in err

    # A photo inpainted in a batch equals the same photo inpainted alone.
    alone = tmp_path / "alone.png"
    code, _, err = run_predict(["--image", str(photos / "b.png"), "--mask", str(masks / "b.png"), "--out", str(alone),
                      "--weights", str(weights)], capsys)
    assert code == 0, err
    diff = np.abs(np.asarray(Image.open(alone), dtype=int) - np.asarray(Image.open(out / "b.png"), dtype=int))
    assert diff.max() <= 1


def test_transparency_and_greyscale_are_kept(data_root: Path, weights: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    face = _face(data_root, 3).resize((96, 96))
    rgba = face.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((96, 96)))
    rgba.save(tmp_path / "rgba.png")
    face.convert("L").save(tmp_path / "grey.png")
    mask = _mask(tmp_path / "mask.png", (96, 96), (30, 40, 60, 70))
    hole = np.asarray(Image.open(mask)) > 127
    for name in ("rgba", "grey"):
        code, _, err = run_predict(["--image", str(tmp_path / f"{name}.png"), "--mask", str(mask),
                          "--out", str(tmp_path / f"{name}-out.png"), "--weights", str(weights)], capsys)
        assert code == 0, err
        before, after = Image.open(tmp_path / f"{name}.png"), Image.open(tmp_path / f"{name}-out.png")
        assert after.mode == before.mode
        a, b = np.asarray(before), np.asarray(after)
        assert np.array_equal(a[~hole], b[~hole])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "rgba-out.png"))[..., 3], np.asarray(rgba)[..., 3])


def test_missing_default_weights_says_which_option_to_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from inpaint.inference import source

    monkeypatch.setattr(source, "DEFAULT_WEIGHTS", tmp_path / "model2.pt")
    with pytest.raises(CheckpointError, match="--weights FILE.*--run-dir DIR"):
        source.resolve_source(None, None)
