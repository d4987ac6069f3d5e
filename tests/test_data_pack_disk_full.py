"""``data_prep.pack`` on a file system that fills up: one line naming the path, that the disk is
full and roughly how much the pack needs; exit 2; no crash; nothing half-written under a final name.

Runs on a small tmpfs mounted for the test (we are root on the CI machine); skipped with the
reason where mounting is not allowed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from disk_support import fill_disk

REPO = Path(__file__).resolve().parents[1]
TMPFS_BYTES = 12 << 20
# The pack below writes 7.8 MB of shards (600 faces at 64 px, raw; 60 masks) and a mask staging
# file: left this much room, it runs out taking its lock, among the face shards, and in the mask
# stage (where HDF5 used to crash the packer with a segmentation fault or bus error).
FREE_BYTES = [0, 5_000_000, 9_200_000]


@pytest.fixture()
def small_disk(tmpfs) -> Path:
    return tmpfs(TMPFS_BYTES)


@pytest.mark.parametrize("free", FREE_BYTES)
def test_a_full_disk_is_one_line_exit_2_and_nothing_half_written(data_root: Path, small_disk: Path,
                                                                   free: int) -> None:
    fill_disk(small_disk, leave=free)
    out = small_disk / "shards"
    cmd = [sys.executable, "-m", "data_prep.pack", "--faces", str(data_root / "faces"), "--masks", "generate",
           "--mask-count", "60", "--out", str(out), "--size", "64", "--limit", "600", "--shard-size", "100",
           "--workers", "2", "--min-per-cell", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=small_disk.parent,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr[-3000:]  # not 1 (traceback), not -11/-7 (segfault, bus error)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    line = lines[0]
    assert str(out) in line and "disk is full" in line
    assert re.search(r"needs roughly \d+(\.\d+)? MB", line), line
    assert not (out / "index.json").exists()
    if out.exists():
        assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
        for shard in out.glob("*.h5"):  # every file with a final name is complete
            with h5py.File(shard, "r") as f:
                assert {f[name].shape[0] for name in f} == {int(f.attrs["count"])}
