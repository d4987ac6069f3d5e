"""What a local run shows in the terminal: where it trains and logs, the trainer's progress lines
as they come, and on a rerun where it resumed, without the earlier chain's lines."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from jobs import ledger
from jobs_support import REPO_ROOT, fake_shards, make_stub_trainer


def _local(tmp_path: Path, *extra: str, plan: str = "0") -> subprocess.CompletedProcess:
    env = dict(os.environ, STUB_PLAN=plan,
               PYTHONPATH=os.pathsep.join([str(make_stub_trainer(tmp_path / "stubpkg")), os.environ.get("PYTHONPATH", "")]))
    argv = [sys.executable, "-m", "jobs.submit", "--executor", "local", "--model", "smoke", "--run-dir",
            str(tmp_path / "run"), "--trainer-module", "stubtrainer", "--data", str(fake_shards(tmp_path / "shards")),
            "--walltime", "00:01:00", *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)


def test_local_run_names_its_log_streams_progress_and_speaks_no_grid_jargon(tmp_path):
    proc = _local(tmp_path, "--max-steps", "20", plan="75,0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = tmp_path / "run"
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"[facefill] training locally in {run}; log: {run / 'train.log'}"), first
    assert "parts of at most 00:01:00" in first
    assert "resubmit" not in first and "chain" not in first and "job" not in first, first
    assert "step 10/20 (50.0%) | 12.5 img/s | ETA" in proc.stdout  # part 1's progress line
    assert "step 20/20" in proc.stdout  # part 2's
    assert "chain done" in proc.stdout


def test_local_run_streams_progress_on_a_terminal(tmp_path):
    """The same lines on a pseudo-terminal, where a user watches the run."""
    env = dict(os.environ, STUB_PLAN="0",
               PYTHONPATH=os.pathsep.join([str(make_stub_trainer(tmp_path / "stubpkg")), os.environ.get("PYTHONPATH", "")]))
    argv = [sys.executable, "-m", "jobs.submit", "--executor", "local", "--model", "smoke", "--run-dir",
            str(tmp_path / "run"), "--trainer-module", "stubtrainer", "--data", str(fake_shards(tmp_path / "shards"))]
    main, child = pty.openpty()
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, env=env, cwd=REPO_ROOT)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=300) == 0, out
    text = out.decode(errors="replace")
    assert f"log: {tmp_path / 'run' / 'train.log'}" in text and "step 10/30" in text and "img/s" in text, text


def test_rerun_says_where_it_resumed_and_shows_only_its_own_chain(tmp_path):
    first = _local(tmp_path, "--max-steps", "30")
    assert first.returncode == 0, first.stdout + first.stderr
    old_job = ledger.read_parts(tmp_path / "run")[0].job_id
    second = _local(tmp_path, "--max-steps", "30")
    assert second.returncode == 0, second.stdout + second.stderr
    out = second.stdout
    assert "resumed from step 10" in out, out
    assert old_job not in out, out
    assert out.count("part 1: started") == 1 and "epoch 1/2 step 10/30" not in out, out  # nothing of the old chain
    assert "step 20/30" in out


REAL_TRAIN = ["--device", "cpu", "--set", "data.workers=0", "--set", "train.batch_size=8",
              "--set", "train.log_every_steps=1", "--set", "train.checkpoint_every_steps=100"]


def test_real_smoke_training_shows_its_progress_lines(tmp_path, shards64):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "jobs.submit", "--executor", "local", "--model", "smoke", "--run-dir",
                           str(run), "--data", str(shards64), "--max-steps", "2", *REAL_TRAIN],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"log: {run / 'train.log'}" in proc.stdout
    assert "step 1/2" in proc.stdout and "step 2/2" in proc.stdout and "img/s" in proc.stdout and "ETA" in proc.stdout
