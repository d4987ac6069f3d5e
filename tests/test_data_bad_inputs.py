"""Broken, odd and hostile face files built from real UTKFace photos: skipped with a reason, or
converted, never fatal (unless --strict)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from data_prep.pack import main as pack_main
from data_prep.sources import list_images
from inpaint.data import FaceShards, read_index
from inpaint.errors import DataError


@pytest.fixture(scope="module")
def bad_folder(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    real = sorted(list_images(data_root / "faces"))[::600][:16]  # 16 real photos spread over the set
    folder = tmp_path_factory.mktemp("bad_faces")
    for name in real[:12]:
        shutil.copy(data_root / "faces" / name, folder / Path(name).name)
    src = data_root / "faces"
    data = (src / real[12]).read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    with Image.open(src / real[13]) as img:
        img.convert("L").save(folder / "gray.png")
        img.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
        rgba = img.convert("RGBA")
        rgba.putalpha(128)
        (folder / "sub").mkdir()
        rgba.save(folder / "sub" / "rgba.png")  # in a subfolder: the search is recursive
        img.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
        img.crop((0, 0, 120, 200)).save(folder / "portrait.webp")  # not square: centre-cropped
    Image.new("RGB", (1, 1), (10, 20, 30)).save(folder / "tiny.png")
    (folder / "notes.jpg").write_text("this is not a picture\n")
    (folder / "empty.jpg").write_bytes(b"")
    shutil.copy(src / real[0], folder / "copy_of_first.jpg")  # exact duplicate
    (folder / "readme.txt").write_text("ignored: not an image suffix\n")
    return folder


@pytest.fixture(scope="module")
def packed_bad(bad_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bad_out")
    assert pack_main(["--faces", str(bad_folder), "--masks", "generate", "--mask-count", "24", "--out", str(out),
                      "--size", "64", "--workers", "1", "--min-per-cell", "1"]) == 0
    return out


def _stored(out: Path) -> dict[str, np.ndarray]:
    images = {}
    for s in read_index(out)["shards"]:
        if s["kind"] == "faces" and s["split"] in ("train", "test"):
            with h5py.File(out / s["file"], "r") as f:
                for p, img in zip(f["paths"][()], f["images"][()]):
                    images[p.decode() if isinstance(p, bytes) else p] = img
    return images


def test_bad_files_are_skipped_with_reasons(packed_bad: Path) -> None:
    index = read_index(packed_bad)
    reasons = {s["path"]: s["reason"] for s in index["skipped"] if s["kind"] == "faces"}
    assert set(reasons) == {"truncated.jpg", "tiny.png", "notes.jpg", "empty.jpg", "copy_of_first.jpg"}
    assert "truncated" in reasons["truncated.jpg"]
    assert "too small" in reasons["tiny.png"] and "1x1" in reasons["tiny.png"]
    assert "not an image" in reasons["notes.jpg"]
    assert reasons["empty.jpg"] == "empty file"
    assert "duplicate" in reasons["copy_of_first.jpg"]
    counts = index["counts"]["faces"]
    assert counts["train"] + counts["test"] == 12 + 5  # 12 photos + gray, cmyk, rgba, palette, webp


def test_odd_modes_are_converted_to_rgb(packed_bad: Path, bad_folder: Path) -> None:
    stored = _stored(packed_bad)
    gray = stored["gray.png"]
    assert gray.shape == (64, 64, 3)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    with Image.open(bad_folder / "gray.png") as g:
        expected = np.asarray(g.convert("RGB").resize((64, 64), Image.Resampling.LANCZOS))
    assert np.abs(gray.astype(int) - expected).max() <= 1
    assert stored["cmyk.jpg"].shape == (64, 64, 3) and stored["cmyk.jpg"].std() > 10
    assert "sub/rgba.png" in stored and "palette.png" in stored and "portrait.webp" in stored


def test_cmyk_matches_its_rgb_source(data_root: Path, bad_folder: Path, packed_bad: Path) -> None:
    stored = _stored(packed_bad)
    gray_src = np.asarray(Image.open(bad_folder / "gray.png"))
    # the CMYK and grey files came from the same photo: their luminance must agree closely
    cmyk_luma = np.asarray(Image.fromarray(stored["cmyk.jpg"]).convert("L"), dtype=float)
    gray_luma = stored["gray.png"][..., 0].astype(float)
    assert gray_src.ndim == 2
    assert np.abs(cmyk_luma - gray_luma).mean() < 6


def test_strict_makes_a_skip_an_error(bad_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"(truncated|tiny|notes|empty|copy_of_first).*--strict"):
        pack_main(["--faces", str(bad_folder), "--masks", "generate", "--mask-count", "24",
                   "--out", str(tmp_path / "o"), "--size", "64", "--workers", "1", "--strict"])
    assert not (tmp_path / "o" / "index.json").exists()
    assert not list((tmp_path / "o").glob("*.tmp-*"))


def test_folder_of_only_broken_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "a.jpg").write_text("no")
    (tmp_path / "faces" / "b.png").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 2 face files could be used"):
        pack_main(["--faces", str(tmp_path / "faces"), "--masks", "generate", "--out", str(tmp_path / "o"),
                   "--size", "32", "--workers", "1"])


def test_reader_sees_converted_images_in_range(packed_bad: Path) -> None:
    ds = FaceShards(packed_bad, "train")
    for i in range(len(ds)):
        img = ds[i]["image"]
        assert img.shape == (3, 64, 64) and -1.0 <= img.min() and img.max() <= 1.0
