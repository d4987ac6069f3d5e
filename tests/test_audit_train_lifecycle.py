"""The trainer's exit code at the edges of its life: a shard truncated while it trains, SIGTERM
during start-up and right after the finish, an unwritable run dir, non-finite time options.

Whatever is about an exit code or a signal runs ``python -m inpaint.train`` in a subprocess, the
way the job layer does; the rest calls ``main`` in-process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inpaint.io.checkpoint import find_checkpoints
from inpaint.core.contract import EXIT_BAD_INPUT, EXIT_FINISHED, EXIT_STOPPED, read_status, stop_signal
from inpaint.io.shards import FaceShards
from inpaint.core.errors import DataError, FacefillError
from inpaint.train import main
from test_train_cli import args, env


def train_cmd(shards: Path, run_dir: Path, *extra: str, sets: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "inpaint.train", *args(shards, run_dir, *extra, sets=sets)]


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 120, poll: float = 0.005) -> None:
    t0 = time.time()
    while not condition():
        assert proc.poll() is None, f"exited {proc.returncode} before {what}: {proc.communicate()}"
        assert time.time() - t0 < timeout, f"no {what} after {timeout} s"
        time.sleep(poll)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


# --- a shard truncated under a running trainer ------------------------------------------------

def test_reading_a_shard_truncated_after_opening_is_a_data_error(shards64: Path, tmp_path: Path) -> None:
    """HDF5 answers some reads of a cut-off file with RuntimeError ("wrong B-tree signature")."""
    root = Path(shutil.copytree(shards64, tmp_path / "s"))
    faces = FaceShards(root, "train")
    faces[0]  # the handle is open, as in a running trainer
    path = root / "faces-train-00000.h5"
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(DataError) as caught:
        for i in range(len(faces) - 1, 0, -1):
            faces[i]
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot read sample") and "data_prep.pack" in message and "\n" not in message


def test_a_shard_truncated_while_training_exits_2_with_one_line(shards64: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(shards64, tmp_path / "s"))
    run = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(root, run, "--max-steps", "5000", sets=("train.log_every_steps=1",)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        wait_for((run / "metrics.jsonl").is_file, proc, "a training step", poll=0.05)
        path = root / "faces-train-00000.h5"
        os.truncate(path, path.stat().st_size // 2)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_BAD_INPUT, out[-2000:] + err[-3000:]
    line = one_error_line(err)
    assert "faces-train-00000.h5: cannot read sample" in line and "python -m data_prep.pack" in line
    assert read_status(run)["exit_code"] == EXIT_BAD_INPUT


# --- SIGTERM at the edges ------------------------------------------------------------------

def test_sigterm_after_the_final_status_keeps_exit_0(shards64: Path, tmp_path: Path) -> None:
    """Once status.json says finished, SIGTERMs until the process is gone change nothing: the job
    layer's --then-evaluate runs on exit 0."""
    run = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(shards64, run, "--max-steps", "2"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())
    try:
        wait_for(lambda: read_status(run).get("state") == "finished", proc, "the final status")
        while proc.poll() is None:  # every moment of the tear-down, through interpreter exit
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.002)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_FINISHED, (proc.returncode, out[-2000:], err[-2000:])
    assert out.strip().splitlines()[-1].startswith("finished (exit 0) step 2/2")


def _torch_is_loading(pid: int) -> bool:
    try:
        return "/torch/" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _sigterm_while_torch_loads(cmd: list[str]) -> tuple[subprocess.Popen, str, str]:
    """Start the trainer, send SIGTERM while it is still importing torch, and wait for its exit."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        wait_for(lambda: _torch_is_loading(proc.pid), proc, "torch being imported", timeout=60, poll=0.002)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, out, err


def test_sigterm_during_start_up_exits_75_and_the_rerun_continues(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(args(shards64, run, "--max-steps", "2")) == EXIT_FINISHED
    before = find_checkpoints(run)
    proc, out, err = _sigterm_while_torch_loads(train_cmd(shards64, run, "--max-steps", "4"))
    assert proc.returncode == EXIT_STOPPED, (proc.returncode, out[-2000:], err[-2000:])
    status = read_status(run)
    assert status["state"] == "stopped" and stop_signal(status) == "SIGTERM"
    assert "start-up" in status["message"] and "step-000000002.pt" in status["message"]
    assert out.strip().splitlines()[-1].startswith("stopped (exit 75)")
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
    assert find_checkpoints(run) == before  # nothing trained, nothing written
    assert main(args(shards64, run, "--max-steps", "4")) == EXIT_FINISHED
    assert read_status(run)["step"] == 4


def test_sigterm_during_start_up_of_a_new_run_exits_75_to_start_from_scratch(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc, out, err = _sigterm_while_torch_loads(train_cmd(shards64, run, "--max-steps", "2"))
    assert proc.returncode == EXIT_STOPPED, (proc.returncode, out[-2000:], err[-2000:])
    status = read_status(run)
    assert status["state"] == "stopped" and "from scratch" in status["message"] and status["checkpoint"] is None
    assert not find_checkpoints(run)


def test_an_unwritable_run_dir_is_one_line_exit_2(shards64: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(FacefillError) as caught:
        main(args(shards64, blocker / "run", "--max-steps", "1"))
    message = str(caught.value)
    assert caught.value.exit_code == EXIT_BAD_INPUT and "\n" not in message
    assert message.startswith(f"--run-dir {blocker / 'run'}: cannot write") and "writable --run-dir" in message


@pytest.mark.parametrize("option, value", [("--deadline", "nan"), ("--deadline", "inf"), ("--time-limit", "nan"),
                                           ("--time-limit", "inf"), ("--deadline", "-inf")])
def test_non_finite_time_options_are_refused(tmp_path: Path, capsys, option: str, value: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(args(tmp_path / "no-shards", tmp_path / "run", f"{option}={value}"))  # "=": "-inf" is no option
    assert caught.value.code == EXIT_BAD_INPUT
    line = one_error_line(capsys.readouterr().err)
    assert option in line and "finite" in line
    assert not (tmp_path / "run").exists()
