"""``python -m inpaint.example``, the quick start's last step: a held-out face of the packed folder
repaired by the shipped model beside the biharmonic fill, on the real packed data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from inpaint.core.shard_format import read_index

REPO = Path(__file__).resolve().parents[1]


def run_example(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inpaint.example", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_repairs_the_first_test_face_and_says_where(shards64: Path, tmp_path: Path) -> None:
    out = tmp_path / "example"
    proc = run_example("--data", str(shards64), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == f"repaired face: {out / 'repaired.png'}"
    assert "PSNR biharmonic" in lines[0] and "quarter-residual" in lines[0]
    masked = np.asarray(Image.open(out / "masked.png"))
    repaired = np.asarray(Image.open(out / "repaired.png"))
    side = np.asarray(Image.open(out / "side_by_side.png"))
    assert side.shape == (masked.shape[0], 4 * masked.shape[1], 3)
    original = side[:, 3 * masked.shape[1]:]
    hole = (masked == 255).all(axis=2) & ~(original == 255).all(axis=2)
    assert 0.02 < hole.mean() < 0.6
    # Only the hole changes, and the hole is filled with a face, not left white.
    assert np.array_equal(repaired[~hole], original[~hole])
    assert np.abs(repaired[hole].astype(int) - original[hole]).mean() < 40
    # The face comes from the test split, which no model here was trained on.
    test_face = lines[0].split()[2].rstrip(",")
    import h5py
    index = read_index(shards64)
    names = []
    for shard in index["shards"]:
        if shard["kind"] == "faces":
            with h5py.File(shards64 / shard["file"], "r") as f:
                names += [(shard["split"], Path(p.decode()).name) for p in f["paths"][()]]
    assert ("test", test_face) in names and ("train", test_face) not in names


def test_a_folder_without_shards_is_one_line(tmp_path: Path) -> None:
    proc = run_example("--data", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "data_prep.pack" in proc.stderr
