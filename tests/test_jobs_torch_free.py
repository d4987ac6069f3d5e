"""The job layer never needs torch: a login node or a grid host outside the container may lack it.

``jobs.submit --dry-run``, ``--estimate``, ``jobs.status`` and ``jobs.cancel`` run here with torch made
unimportable (a ``torch`` package that raises on import, first on the path); the chain's own
entry point ``jobs.part`` runs without site-packages at all (tests/test_jobs_chain.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import ledger
from jobs.chain_state import write_chain_state
from jobs.estimate import estimate
from jobs.options import parse, resolve
from jobs_support import REPO_ROOT, fake_shards


def _no_torch_env(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("torch is unimportable in this test")\n')
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(REPO_ROOT)])}


def _run(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)


def test_submit_dry_run_estimate_status_cancel_work_without_torch(tmp_path):
    env = _no_torch_env(tmp_path)
    assert "unimportable" in _run(env, "-c", "import torch").stderr  # the blocker works
    shards = str(fake_shards(tmp_path / "shards", size=128))  # Model 2 trains at 128 px
    run = tmp_path / "run"
    for extra in (["--executor", "pbs", "--profile", "generic-pbs", "--container", "none"], ["--executor", "local"]):
        proc = _run(env, "-m", "jobs.submit", "--model", "2", "--data", shards, "--run-dir", str(run), "--dry-run", *extra)
        assert proc.returncode == 0 and "-m inpaint.train --config model2" in proc.stdout, proc.stderr
    proc = _run(env, "-m", "jobs.submit", "--executor", "local", "--model", "2", "--data", shards, "--run-dir", str(run),
                "--estimate", "--max-steps", "1000", "--img-per-s", "40", "--set", "train.batch_size=4")
    assert proc.returncode == 0 and "steps: 0/1000 done" in proc.stdout, proc.stderr
    ledger.append_event(run, "submit", 1, job_id="4242", executor="local", kind="train")
    write_chain_state(run, "stopped", "trainer failed (exit 1)", 1, 1, "4242", "local")
    status = _run(env, "-m", "jobs.status", str(run))
    assert status.returncode == 0 and "chain: stopped" in status.stdout, status.stderr
    cancel = _run(env, "-m", "jobs.cancel", str(run))
    assert cancel.returncode == 0, cancel.stderr


def _iso(seconds: float) -> str:
    import time
    return time.strftime(ledger.TIME_FORMAT, time.gmtime(seconds))


def test_estimate_reads_only_what_the_trainer_publishes_and_the_ledger(tmp_path):
    """A started run: steps from status.json, the step time from the ended parts in the ledger
    (1 h for 1,000 steps, start-up included), not the trainer's configs or logs."""
    run = tmp_path / "run"
    spec = resolve(parse(["--executor", "local", "--model", "2", "--data", str(fake_shards(tmp_path / "s", size=128)),
                          "--run-dir", str(run), "--walltime", "02:00:00"]))
    (run).mkdir()
    (run / "status.json").write_text('{"state": "stopped", "exit_code": 75, "step": 1000, "total_steps": 10000, '
                                     '"images_per_s": 7.5}')
    lines = [{"event": "start", "part": 1, "time": _iso(0), "start_step": None},
             {"event": "end", "part": 1, "time": _iso(3600), "step": 1000, "kind": "train"}]
    (run / "jobs").mkdir()
    (run / "jobs" / "ledger.jsonl").write_text("".join(__import__("json").dumps(l) + "\n" for l in lines))
    e = estimate(spec)
    assert (e["total_steps"], e["done_steps"], e["step_s"], e["images_per_s"]) == (10000, 1000, 3.6, 7.5)
    assert e["train_s"] == pytest.approx(9000 * 3.6)
    assert e["parts"] == 5  # 32,400 s of training in parts of 7,200 - 120 s
    # a new run has neither: it needs the planned steps and a throughput at a known batch size
    fresh = resolve(parse(["--executor", "local", "--model", "2", "--run-dir", str(tmp_path / "new"),
                           "--set", "train.batch_size=4"]), check_paths=False)
    assert estimate(fresh, img_per_s=40, max_steps=1000)["step_s"] == pytest.approx(0.1)
    with pytest.raises(Exception, match="--max-steps"):
        estimate(fresh, img_per_s=40)
