"""Ctrl-C in a terminal: the first one stops the trainer at the step boundary
with a checkpoint and exit 75, like SIGTERM, and says how to continue; a second one aborts at once
(exit 130). A real trainer in a subprocess, signalled through its process group as a terminal
does (its DataLoader worker gets the signal too and must survive it)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from inpaint.io.checkpoint import find_checkpoints, read_checkpoint
from inpaint.train import main
from test_train_cli import args, start_trainer, status, stop_when_training, wait_for_training


def _read_stderr_until(proc: subprocess.Popen, text: str, timeout: float = 60) -> str:
    """What the trainer wrote on stderr up to and including the line holding ``text``."""
    seen = ""
    fd = proc.stderr.fileno()
    t0 = time.time()
    while text not in seen:
        assert time.time() - t0 < timeout, f"no {text!r} on stderr: {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 4096).decode()
            assert chunk, f"stderr closed before {text!r}: {seen!r}"
            seen += chunk
    return seen


def test_ctrl_c_stops_at_the_step_boundary_with_a_checkpoint_and_a_rerun_resumes(
        shards64: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    proc, out, err = stop_when_training(shards64, run, signal.SIGINT, start_timeout=120)  # a terminal's Ctrl-C
    assert proc.returncode == 75, out + err
    st = status(run)
    step = st["step"]
    assert st["state"] == "stopped" and "(received SIGINT)" in st["message"] and step >= 1
    assert read_checkpoint(find_checkpoints(run)[0])["step"] == step
    assert "Ctrl-C again" in err  # said at once, before the step ended
    assert f"stopped at step {step}; run the same command to continue" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert out.strip().splitlines()[-1].startswith(f"stopped (exit 75) step {step}/")  # the job layer's status line

    capsys.readouterr()
    assert main(args(shards64, run, "--max-steps", str(step + 1))) == 0
    assert f"resumed from step {step}" in capsys.readouterr().out


def test_a_second_ctrl_c_aborts_at_once_without_a_checkpoint(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # The full-width smoke model, 8 faces a step: the step the first Ctrl-C lands in outlasts the
    # moment it takes to send the second one.
    proc = start_trainer(shards64, run, "model.widths=[16,32,64]", "model.dmfb_blocks=2", "model.dmfb_inner=16",
                  "train.batch_size=8")
    try:
        wait_for_training(proc, run, timeout=120)
        os.killpg(proc.pid, signal.SIGINT)
        _read_stderr_until(proc, "Ctrl-C again")
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.time()
        out, err = proc.communicate(timeout=60)
        seconds = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert not find_checkpoints(run)  # aborted, not stopped: nothing was saved
    assert "stopped at step" not in err and "Traceback" not in err
    assert seconds < 30


def test_stop_request_first_sigint_sets_the_flag_second_raises() -> None:
    from inpaint.training.signals import StopRequest

    before = signal.getsignal(signal.SIGINT)
    stop = StopRequest().install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signal_name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs between bytecodes: at the latest here
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGINT) == before
