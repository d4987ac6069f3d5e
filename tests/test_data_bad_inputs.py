"""Broken, odd and hostile face files built from real UTKFace photos: skipped with a reason, or
converted, never fatal (unless --strict)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from data_prep.pack import main as pack_main
from data_prep.sources import list_images
from inpaint.io.shards import FaceShards, read_index
from inpaint.core.errors import DataError

REPO = Path(__file__).resolve().parents[1]


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


def _tangled_folder(data_root: Path, folder: Path) -> list[str]:
    """Six real photos in ``people/``, a folder link back to the top (a loop), a link to itself and
    a locked folder ``locked/`` holding one more photo; returns the photos' names."""
    real = sorted(list_images(data_root / "faces"))[::1500][:7]
    (folder / "people").mkdir(parents=True)
    (folder / "locked").mkdir()
    for name in real[:6]:
        shutil.copy(data_root / "faces" / name, folder / "people" / Path(name).name)
    shutil.copy(data_root / "faces" / real[6], folder / "locked" / Path(real[6]).name)
    os.symlink("..", folder / "people" / "back_to_top")  # faces/people/back_to_top -> faces
    os.symlink("self.jpg", folder / "self.jpg")  # resolving it fails with ELOOP
    return [Path(n).name for n in real]


def _pack_args(faces: Path, out: Path) -> list[str]:
    return ["--faces", str(faces), "--masks", "generate", "--mask-count", "24", "--out", str(out),
            "--size", "32", "--workers", "1", "--min-per-cell", "1"]


def test_symlink_loops_are_skipped_with_a_reason(data_root: Path, tmp_path: Path) -> None:
    names = _tangled_folder(data_root, tmp_path / "faces")
    assert pack_main(_pack_args(tmp_path / "faces", tmp_path / "o")) == 0
    index = read_index(tmp_path / "o")
    reasons = {s["path"]: s["reason"] for s in index["skipped"] if s["kind"] == "faces"}
    assert set(reasons) == {"people/back_to_top", "self.jpg"}
    assert "symlink loop" in reasons["people/back_to_top"] and "listed as ." in reasons["people/back_to_top"]
    assert "symlink loop" in reasons["self.jpg"]
    stored = set(_stored(tmp_path / "o"))
    assert stored == {f"people/{n}" for n in names[:6]} | {f"locked/{names[6]}"}  # each photo once
    with pytest.raises(DataError, match=r"(self.jpg|back_to_top): symlink loop.*--strict"):
        pack_main(_pack_args(tmp_path / "faces", tmp_path / "strict") + ["--strict"])


def _without_root_file_access(locked: Path) -> list[str]:
    """A command prefix under which the mode-000 folder ``locked`` really is unreadable: as root,
    without the capabilities that let root read any folder (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH);
    the empty prefix when an ordinary user already cannot read it; None when neither works here."""
    if subprocess.run([sys.executable, "-c", "import os, sys; os.listdir(sys.argv[1])", str(locked)],
                      capture_output=True).returncode != 0:
        return []  # not root: the mode alone locks it
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None:
        return None
    probe = subprocess.run(prefix + [sys.executable, "-c", "import os, sys; os.listdir(sys.argv[1])", str(locked)],
                           capture_output=True, text=True)
    return prefix if probe.returncode != 0 and "Permission denied" in probe.stderr else None


def test_an_unreadable_sub_folder_is_skipped_with_a_reason(data_root: Path, tmp_path: Path) -> None:
    names = _tangled_folder(data_root, tmp_path / "faces")
    (tmp_path / "faces" / "locked").chmod(0)
    try:
        prefix = _without_root_file_access(tmp_path / "faces" / "locked")
        if prefix is None:
            pytest.skip("running as root and setpriv cannot drop CAP_DAC_OVERRIDE here, so a mode-000 "
                        "folder stays readable")
        done = subprocess.run(prefix + [sys.executable, "-m", "data_prep.pack",
                                        *_pack_args(tmp_path / "faces", tmp_path / "o")],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    finally:
        (tmp_path / "faces" / "locked").chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    reasons = {s["path"]: s["reason"] for s in read_index(tmp_path / "o")["skipped"] if s["kind"] == "faces"}
    assert reasons["locked"] == "cannot list this folder (Permission denied)"
    assert set(_stored(tmp_path / "o")) == {f"people/{n}" for n in names[:6]}
