"""What a real submit refuses before anything is queued or started: shards of the wrong size or
without training images, a config that does not resolve, a missing image, a walltime too short
for a queued part. Each refusal is one line on stderr naming the option or file and the fix,
exit 2, and nothing written or queued.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.options import parse, resolve
from jobs_support import REPO_ROOT, calls, fake_shards, stub_bin, stub_env


def _pbs_submit(tmp_path: Path, *extra: str, image: bool = True) -> tuple[subprocess.CompletedProcess, Path]:
    bindir, log = stub_bin(tmp_path)
    argv = [sys.executable, "-m", "jobs.submit", "--executor", "pbs", "--profile", "metacentrum",
            "--run-dir", str(tmp_path / "run")]
    if image:
        sif = tmp_path / "img.sif"
        sif.write_text("x")
        argv += ["--image", str(sif)]
    proc = subprocess.run([*argv, *extra], env=stub_env(bindir, log), capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)
    return proc, log


def _refused(proc: subprocess.CompletedProcess, log: Path, tmp_path: Path, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    assert calls(log, "qsub") == [] and not (tmp_path / "run").exists()


def test_shards_of_another_size_are_refused_before_qsub(tmp_path):
    """Model 2 trains at 128 px: 64 px shards would wait in the queue and then fail in seconds."""
    shards = fake_shards(tmp_path / "shards64", size=64)
    proc, log = _pbs_submit(tmp_path, "--queue", "gpu_long", "--model", "2", "--data", str(shards))
    _refused(proc, log, tmp_path, str(shards), "64 px", "data.size = 128", "--set data.size=64")


def test_matching_size_through_set_is_accepted(tmp_path):
    shards = fake_shards(tmp_path / "shards64", size=64)
    proc, log = _pbs_submit(tmp_path, "--queue", "gpu_long", "--model", "2", "--data", str(shards),
                            "--set", "data.size=64")
    assert proc.returncode == 0, proc.stderr
    assert len(calls(log, "qsub")) == 1


def test_shards_without_training_faces_are_refused(tmp_path):
    shards = fake_shards(tmp_path / "testonly", size=64, train=0)
    proc, log = _pbs_submit(tmp_path, "--model", "smoke", "--data", str(shards))
    _refused(proc, log, tmp_path, str(shards), "no training faces")


def test_a_damaged_index_is_refused_naming_it(tmp_path):
    shards = fake_shards(tmp_path / "shards", size=64)
    (shards / "index.json").write_text('{"format": 1}\n')
    proc, log = _pbs_submit(tmp_path, "--model", "smoke", "--data", str(shards))
    _refused(proc, log, tmp_path, str(shards / "index.json"), "data_prep.pack")


def test_an_invalid_override_is_refused_before_qsub(tmp_path):
    proc, log = _pbs_submit(tmp_path, "--model", "smoke", "--data", str(fake_shards(tmp_path / "shards")),
                            "--set", "train.batch_size=abc")
    _refused(proc, log, tmp_path, "train.batch_size")


def test_a_missing_image_is_refused_and_uris_are_accepted(tmp_path):
    shards = str(fake_shards(tmp_path / "shards"))
    proc, log = _pbs_submit(tmp_path, "--model", "smoke", "--data", shards, "--image", str(tmp_path / "none.sif"),
                            image=False)
    _refused(proc, log, tmp_path, str(tmp_path / "none.sif"), "--container none")
    uri, log = _pbs_submit(tmp_path / "uri", "--model", "smoke", "--data", shards, "--image",
                           "docker://nvcr.io/nvidia/pytorch:24.01-py3", image=False)
    assert uri.returncode == 0, uri.stderr
    assert len(calls(log, "qsub")) == 1


def test_a_walltime_shorter_than_the_minimum_is_refused_for_queued_parts(tmp_path):
    proc, log = _pbs_submit(tmp_path, "--model", "smoke", "--data", str(fake_shards(tmp_path / "shards")),
                            "--walltime", "00:02:00")
    _refused(proc, log, tmp_path, "--walltime 00:02:00", "00:05:00")
    # a local part waits in no queue: short parts are allowed (tests split real runs into seconds)
    spec = resolve(parse(["--executor", "local", "--model", "smoke", "--walltime", "30",
                          "--data", str(fake_shards(tmp_path / "shards"))]))
    assert spec.walltime_s == 30


def test_dry_run_warns_about_the_size_and_still_prints_the_script(tmp_path):
    shards = fake_shards(tmp_path / "shards64", size=64)
    proc, log = _pbs_submit(tmp_path, "--queue", "gpu_long", "--model", "2", "--data", str(shards), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#!/bin/bash") and "warning: " in proc.stderr and "64 px" in proc.stderr
    assert calls(log, "qsub") == []


def test_submit_imports_no_torch(tmp_path):
    code = "import sys, jobs.submit, jobs.options, jobs.status, jobs.follow; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_shards_of_another_size_are_refused_before_sbatch(slurm_cluster, tmp_path):
    """The same refusal on a real SLURM cluster: nothing reaches sbatch, nothing is queued."""
    shards = fake_shards(tmp_path / "shards64", size=64)
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "jobs.submit", "--executor", "slurm", "--queue", slurm_cluster.partition,
                           "--model", "2", "--device", "cpu", "--data", str(shards), "--run-dir", str(run)],
                          env=slurm_cluster.env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "64 px" in lines[0] and "data.size = 128" in lines[0], proc.stderr
    assert not run.exists()
    assert slurm_cluster.run("squeue", "-h").stdout.strip() == ""


@pytest.mark.parametrize("executor", ["pbs", "slurm"])
def test_the_walltime_minimum_can_be_waived_for_debug_queues(tmp_path, executor):
    argv = ["--executor", executor, "--model", "smoke", "--walltime", "60", "--allow-short-walltime",
            "--profile", "generic-pbs", "--container", "none", "--data", str(fake_shards(tmp_path / "shards"))]
    if executor == "slurm":
        argv = [a for a in argv if a not in ("--profile", "generic-pbs")]
    assert resolve(parse(argv)).walltime_s == 60
