"""``data_prep.pack`` on a file system that fills up: one line naming the path, that the disk is
full and roughly how much the pack needs; exit 2; no crash; nothing half-written under a final name.

Runs on a small tmpfs mounted for the test (we are root on the CI machine); skipped with the
reason where mounting is not allowed.
"""

from __future__ import annotations

import errno
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
    assert re.search(r"roughly \d+\.\d MB needed", line), line
    assert not (out / "index.json").exists()
    if out.exists():
        assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
        for shard in out.glob("*.h5"):  # every file with a final name is complete
            with h5py.File(shard, "r") as f:
                assert {f[name].shape[0] for name in f} == {int(f.attrs["count"])}


def test_the_pack_words_a_full_disk_as_every_command_does(tmp_path: Path) -> None:
    """One wording and one unit (MB, one decimal) for a full disk, whichever command met it."""
    from data_prep.disk import disk_full_message
    from inpaint.core.disk import format_bytes

    (tmp_path / "faces-train-00000.h5").write_bytes(b"\0" * 1_250_000)
    failed = tmp_path / "masks-test-00000.h5.tmp-7"
    line = disk_full_message(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(failed)), tmp_path, 7_840_000)
    assert line.startswith(f"{failed}: the disk is full (") and "\n" not in line
    assert f"roughly 7.8 MB needed in {tmp_path}, 1.2 MB of finished shards kept for a resume" in line
    assert line.endswith("; free space and re-run the same command, or pass --out on a larger file system")
    assert format_bytes(7_840_000) == "7.8 MB" and format_bytes(0) == "0.0 MB"
