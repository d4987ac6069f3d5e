"""Killing the packer ends its whole pool: forkserver, resource tracker and decoding workers.

A grid kills a job's main process at its walltime (SIGTERM, then SIGKILL); a pool left behind
keeps ~140 MB and CPU cores of a node nobody pays for. Workers watch the packer and exit with
it; SIGTERM stops the pool cleanly and leaves a folder the same command resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inpaint.core.contract import EXIT_STOPPED
from inpaint.core.process import pid_alive
from jobs.local import descendants

REPO = Path(__file__).resolve().parents[1]
WORKERS = 2


def _start_pack(data_root: Path, out: Path) -> tuple[subprocess.Popen, set[int]]:
    """A packer busy decoding on its pool; returns it and every process of its pool."""
    cmd = [sys.executable, "-m", "data_prep.pack", "--faces", str(data_root / "faces"), "--masks", "generate",
           "--mask-count", "60", "--out", str(out), "--size", "64", "--limit", "6000", "--shard-size", "500",
           "--workers", str(WORKERS), "--min-per-cell", "1"]
    proc = subprocess.Popen(cmd, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    pool: set[int] = set()
    while len(pool) < WORKERS + 2:  # forkserver, resource tracker and the workers
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"pool never started: {pool}"
        time.sleep(0.05)
        pool = set(descendants(proc.pid))
    time.sleep(1.0)  # let the workers get busy decoding
    pool |= set(descendants(proc.pid))
    return proc, pool


def _alive_after(pool: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = {pid for pid in pool if pid_alive(pid)}
        if not alive:
            return alive
        time.sleep(0.1)
    return {pid for pid in pool if pid_alive(pid)}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_no_process_of_the_pool_outlives_the_packer(data_root: Path, tmp_path: Path, sig: int) -> None:
    proc, pool = _start_pack(data_root, tmp_path / "out")
    try:
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        left = _alive_after(pool, 5.0)
        assert not left, {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in left}
        err = proc.stderr.read()  # EOF only once no process of the pool holds the pipe
    finally:
        for pid in pool:  # never leave a stray pool on the test machine, whatever happened
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    out = tmp_path / "out"
    if sig == signal.SIGTERM:  # a clean stop: one line, resumable, nothing half-written, lock released
        assert proc.returncode == EXIT_STOPPED, err
        lines = err.strip().splitlines()
        assert lines[-1].startswith("error: ") and "SIGTERM" in lines[-1] and "resume" in lines[-1], err
        assert "Traceback" not in err
        assert not list(out.glob("*.tmp-*")) and not (out / ".pack.lock").exists()
    else:
        assert proc.returncode == -signal.SIGKILL
