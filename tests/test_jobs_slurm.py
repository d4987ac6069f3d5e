"""The SLURM path goes through submitit's own SlurmExecutor: each part sbatches its successor."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from jobs import ledger
from jobs.chain_state import read_chain_state
from test_jobs_support import (REPO_ROOT, STUB_SACCT, STUB_SBATCH_RUN, STUB_SQUEUE, calls, fake_shards,
                               make_stub_trainer, stub_bin, stub_env)


def test_slurm_chain_resubmits_itself_until_done(tmp_path):
    bindir, log = stub_bin(tmp_path, sbatch=STUB_SBATCH_RUN, squeue=STUB_SQUEUE, sacct=STUB_SACCT,
                           srun="#!/bin/bash\nexec \"$@\"\n", scancel="#!/bin/bash\nexit 0\n")
    os.unlink(bindir / "qsub")  # a SLURM site
    stubs = make_stub_trainer(tmp_path / "stubpkg")
    env = stub_env(bindir, log, PYTHONPATH=os.pathsep.join([str(stubs), os.environ.get("PYTHONPATH", "")]),
                   STUB_PLAN="75,75,0", STUB_SLEEP="1.5")
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "jobs.submit", "--executor", "slurm", "--queue", "gpu", "--ngpus", "1",
            "--mem", "16gb", "--walltime", "02:00:00", "--model", "smoke", "--trainer-module", "stubtrainer",
            "--device", "cpu", "--data", str(fake_shards(tmp_path / "shards")), "--run-dir", str(run)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "part 1 is job 501" in proc.stdout
    script = (log / "slurm" / "501.sh").read_text()
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --gpus-per-node=1" in script
    assert "#SBATCH --mem=16GB" in script and "#SBATCH --time=125" in script  # walltime + grace
    # a second submission while part 1 lives is refused
    second = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert second.returncode == 2 and "owned by SLURM job 501 (RUNNING)" in second.stderr, second.stderr
    deadline = time.monotonic() + 120
    while read_chain_state(run).get("state") != "done" and time.monotonic() < deadline:
        time.sleep(0.3)
    parts = ledger.read_parts(run)
    assert [p["exit_code"] for p in parts] == [75, 75, 0]
    assert [p["job_id"] for p in parts] == ["501", "502", "503"]
    assert len(calls(log, "sbatch")) == 3
