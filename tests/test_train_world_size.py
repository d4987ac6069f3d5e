"""Resuming with another number of processes (a 2-node run continued on 1 node, and back).

The batch order is a function of the world size (each rank takes every world_size-th item of the
epoch's order) and so is each rank's BatchNorm statistics: such a resume cannot retrace the run.
So it is refused in one line (exit 2, before any step, checkpoints untouched) unless
``--allow-world-size-change`` says to continue knowingly; the run's status then says so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from inpaint.core.contract import EXIT_BAD_INPUT
from inpaint.io.checkpoint import find_checkpoints
from test_train_cli import args, env, status

ALLOW = "--allow-world-size-change"


def torchrun_2(shards: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "inpaint.train",
           *args(shards, run, "--device", "cpu", *extra)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=240)


def train_1(shards: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "inpaint.train", *args(shards, run, "--device", "cpu", *extra)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=240)


def checkpoint_files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in find_checkpoints(run)}


def test_another_world_size_is_refused_in_one_line_or_continued_when_allowed(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    two = torchrun_2(shards64, run, "--max-steps", "2")
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    saved = checkpoint_files(run)

    # 2 processes -> 1: refused before any step, the checkpoint untouched
    one = train_1(shards64, run, "--max-steps", "4")
    assert one.returncode == EXIT_BAD_INPUT, one.stdout[-2000:] + one.stderr[-2000:]
    [line] = one.stderr.strip().splitlines()
    assert line.startswith("error: ") and "2 processes" in line and "this run has 1" in line, line
    assert "same nodes x processes per node" in line and ALLOW in line, line
    assert checkpoint_files(run) == saved
    st = status(run)
    assert (st["exit_code"], st["step"]) == (EXIT_BAD_INPUT, 2) and st["message"] == line[len("error: "):]

    # ... continued knowingly: trains on, and the status says the batch order changed
    allowed = train_1(shards64, run, "--max-steps", "4", ALLOW)
    assert allowed.returncode == 0, allowed.stdout[-2000:] + allowed.stderr[-2000:]
    st = status(run)
    assert st["step"] == 4 and "written by 2 processes, continued with 1" in st["message"], st["message"]
    assert "written by 2 processes, continued with 1" in (run / "train.log").read_text()

    # 1 process -> 2: refused the same way (torchrun turns the exit code into 1; rank 0's status says 2)
    saved = checkpoint_files(run)
    back = torchrun_2(shards64, run, "--max-steps", "6")
    assert back.returncode != 0
    st = status(run)
    assert (st["exit_code"], st["step"]) == (EXIT_BAD_INPUT, 4), st
    assert "written by 1 processes" not in st["message"] and "1 process, this run has 2" in st["message"], st["message"]
    assert checkpoint_files(run) == saved
