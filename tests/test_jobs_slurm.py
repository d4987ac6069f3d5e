"""The SLURM path goes through submitit's own SlurmExecutor: each part sbatches its successor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import ledger, status
from jobs.chain_state import ENDED, read_chain_state, write_chain_state
from jobs_support import (bisect_part_walltime, RECORD, REPO_ROOT, STUB_SACCT, STUB_TRAINER_OPTIONS, STUB_SBATCH_RUN, STUB_SQUEUE, calls, fake_shards,
                               make_stub_trainer, stub_bin, stub_env, write_exe)


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
    while read_chain_state(run).state != "done" and time.monotonic() < deadline:
        time.sleep(0.3)
    parts = ledger.read_parts(run)
    assert [p.exit_code for p in parts] == [75, 75, 0]
    assert [p.job_id for p in parts] == ["501", "502", "503"]
    assert len(calls(log, "sbatch")) == 3


def test_slurm_parts_run_the_trainer_in_the_image_and_their_shell_outlives_sigterm(tmp_path):
    bindir, log = stub_bin(tmp_path, sbatch=STUB_SBATCH_RUN, squeue=STUB_SQUEUE, sacct=STUB_SACCT,
                           scancel="#!/bin/bash\nexit 0\n")
    os.unlink(bindir / "qsub")
    stubs = make_stub_trainer(tmp_path / "stubpkg")
    image = tmp_path / "facefill.sif"
    image.write_text("stub image")
    env = stub_env(bindir, log, PYTHONPATH=os.pathsep.join([str(stubs), os.environ.get("PYTHONPATH", "")]), STUB_PLAN="0")
    run, shards = tmp_path / "run", fake_shards(tmp_path / "shards")
    proc = subprocess.run([sys.executable, "-m", "jobs.submit", "--executor", "slurm", "--queue", "gpu", "--ngpus", "1",
                           "--walltime", "01:00:00", "--model", "smoke", "--trainer-module", "stubtrainer", "--device",
                           "cpu", "--image", str(image), "--data", str(shards), "--run-dir", str(run)],
                          env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deadline = time.monotonic() + 120
    while read_chain_state(run).state != "done" and time.monotonic() < deadline:
        time.sleep(0.3)
    (call,) = calls(log, "singularity")
    assert call.startswith(f"exec --nv -B {run} -B {shards} -B {REPO_ROOT} {image} python -m stubtrainer "), call
    assert calls(log, "singularity.env") == [f"SINGULARITYENV_PYTHONPATH={REPO_ROOT} APPTAINERENV_PYTHONPATH={REPO_ROOT}"]
    script = (log / "slurm" / "501.sh").read_text()
    assert "\ntrap '' TERM" in script.split("# command")[0], script


# scontrol of a job that SLURM is ending while its batch script still runs (KillWait), as a real
# SLURM 22.05 shows it to the job itself; slurmstepd has written its CANCELLED line into StdErr.
ENDING_SCONTROL = "#!/bin/bash\n" + RECORD + r'''
printf 'JobId=%s JobName=ff-run\n   JobState=COMPLETING Reason=None Dependency=(null)\n   StdErr=%s StdOut=%s\n' \
  "$3" "$STUB_LOG/job.err" "$STUB_LOG/job.err"
'''


@pytest.mark.parametrize("said,cause", [("", "scancel"), (" DUE TO PREEMPTION", "preempted"),
                                        (" DUE TO TIME LIMIT", None), (" DUE TO JOB REQUEUE", "requeued")])
def test_a_part_asks_slurm_why_its_job_is_ending(tmp_path, monkeypatch, said, cause):
    from jobs import chain, interruption

    bindir, log = stub_bin(tmp_path, scontrol=ENDING_SCONTROL)
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    (log / "job.err").write_text(f"slurmstepd-n1: error: *** JOB 77 ON n1 CANCELLED AT 2026-12-07T02:01:50{said} ***\n")
    status = {"exit_code": 75, "step": 40, "time": time.time(),
              "message": "stopped early (received SIGTERM) with a checkpoint at step 40; run again to continue"}
    start = {"time": ledger.now_iso(), "deadline": time.time() + 3600}
    found = interruption.find("slurm", "77", 75, status, start, [])
    assert (found.cause if found else None) == cause
    if cause is None:  # SLURM's time limit: a walltime stop, resubmitted like any other
        return
    first = chain.decide(75, 2, 5, interrupted=found)
    assert first.action == {"scancel": chain.STOP, "preempted": chain.RESUBMIT, "requeued": chain.CONTINUE}[cause]
    if cause == "preempted":  # once per chain: the second preemption stops it
        ends = [{"event": "end", "interrupted": "preempted", "action": "resubmit"}]
        again = interruption.find("slurm", "77", 75, status, start, ends)
        assert chain.decide(75, 3, 5, interrupted=again).action == chain.STOP
        assert "preempted again" in chain.decide(75, 3, 5, interrupted=again).reason
    # a stop at the trainer's own time budget is never asked about
    budget = {**status, "message": "stopped early (time budget: 3 s left) with a checkpoint at step 40"}
    assert interruption.find("slurm", "77", 75, budget, start, []) is None


# --- jobs.status asks SLURM (stubs answer as a real SLURM 22.05 does) ----------------------------

# squeue prints the state of a live job and NOTHING (exit 0) for an ended one; scontrol still shows
# an ended job for MinJobAge; after that both say "Invalid job id specified" (exit 1).
STATUS_SQUEUE = "#!/bin/bash\n" + RECORD + r'''
while [ $# -gt 0 ]; do case "$1" in -j) id="$2"; shift 2 ;; *) shift ;; esac; done
f="$STUB_LOG/slurm/$id"
[ -f "$f" ] || { echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; }
read -r st _ < "$f"; case "$st" in PENDING|RUNNING|COMPLETING) echo "$st" ;; esac
'''
STATUS_SCONTROL = "#!/bin/bash\n" + RECORD + r'''
f="$STUB_LOG/slurm/$3"
[ -f "$f" ] || { echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; }
read -r st code < "$f"
printf 'JobId=%s JobName=ff-run\n   JobState=%s Reason=None Dependency=(null)\n   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=%s\n' "$3" "$st" "${code:-0:0}"
'''


def _slurm_status_stubs(tmp_path, monkeypatch, jobs: dict[str, str]):
    bindir, log = stub_bin(tmp_path, squeue=STATUS_SQUEUE, scontrol=STATUS_SCONTROL)
    os.unlink(bindir / "qsub")
    (log / "slurm").mkdir()
    for job_id, state in jobs.items():
        (log / "slurm" / job_id).write_text(state + "\n")
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    return log


def _slurm_ledger(run, kinds=("train", "train"), ended=1):
    for part, kind in enumerate(kinds, start=1):
        job = str(500 + part)
        ledger.append_event(run, "submit", part, job_id=job, executor="slurm", kind=kind)
        ledger.append_event(run, "start", part, job_id=job, executor="slurm", kind=kind)
        if part <= ended:
            ledger.append_event(run, "end", part, exit_code=75, step=10 * part, action="resubmit", reason="r")


def test_status_shows_each_parts_slurm_state(tmp_path, monkeypatch):
    log = _slurm_status_stubs(tmp_path, monkeypatch, {"501": "COMPLETED 0:0", "502": "RUNNING"})
    run = tmp_path / "run"
    _slurm_ledger(run)
    write_chain_state(run, "running", "part 2 is 502", 1, 75, "501", "slurm")
    text, data = status.render_status(run)
    assert data["scheduler"] == {"501": "COMPLETED", "502": "RUNNING"}
    assert "resubmit [COMPLETED]" in text and text.startswith("chain: running")
    assert calls(log, "squeue") == ["-h -j 501 -o %T", "-h -j 502 -o %T"]
    assert calls(log, "scontrol") == ["show job 501"]  # only for the job squeue no longer lists


def test_evaluation_killed_at_its_time_limit_is_reported_not_left_evaluating(tmp_path, monkeypatch):
    _slurm_status_stubs(tmp_path, monkeypatch, {"501": "COMPLETED 0:0", "502": "TIMEOUT 0:15"})
    run = tmp_path / "run"
    _slurm_ledger(run, kinds=("train", "evaluate"))
    write_chain_state(run, "evaluating", "training finished; evaluation submitted; part 2 is 502", 1, 0, "501", "slurm")
    text, data = status.render_status(run)
    assert data["chain"]["state"] == "stopped" and data["chain"]["recorded_state"] == "evaluating"
    first = text.splitlines()[0]
    assert first.startswith("chain: stopped") and "part 2 (evaluate)" in first and "killed at its time limit" in first
    assert "ended without an end record [TIMEOUT: killed at its time limit]" in text


def test_a_part_slurm_no_longer_knows_is_gone_not_running(tmp_path, monkeypatch):
    _slurm_status_stubs(tmp_path, monkeypatch, {})
    run = tmp_path / "run"
    _slurm_ledger(run, kinds=("train",), ended=0)
    write_chain_state(run, "running", "part 1 is 501", 0, None, "501", "slurm")
    text, data = status.render_status(run)
    assert data["chain"]["state"] == "stopped" and "gone from SLURM" in data["scheduler"]["501"]


def test_a_failing_controller_is_unknown_never_lost(tmp_path, monkeypatch):
    _slurm_status_stubs(tmp_path, monkeypatch, {})
    write_exe(tmp_path / "stubbin" / "squeue",
              "#!/bin/bash\necho 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n")
    run = tmp_path / "run"
    _slurm_ledger(run, kinds=("train",), ended=0)
    write_chain_state(run, "running", "part 1 is 501", 0, None, "501", "slurm")
    text, data = status.render_status(run)
    assert data["chain"]["state"] == "running" and data["scheduler"] == {}
    assert "NOT presumed lost" in text and "Unable to contact slurm controller" in text


def test_cancel_with_an_unreachable_controller_claims_nothing(tmp_path, monkeypatch):
    from jobs import cancel

    log = _slurm_status_stubs(tmp_path, monkeypatch, {})
    write_exe(tmp_path / "stubbin" / "scancel", "#!/bin/bash\n" + RECORD +
              "echo 'scancel: error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n")
    run = tmp_path / "run"
    _slurm_ledger(run, kinds=("train",), ended=0)
    write_chain_state(run, "running", "part 1 is 501", 0, None, "501", "slurm")
    assert cancel.cancel(run) == []
    assert calls(log, "scancel") == ["501"] and read_chain_state(run).state == "cancelled"


def test_status_piped_into_head_ends_quietly(tmp_path):
    run = tmp_path / "run"
    for part in range(1, 401):  # --json output far beyond a pipe's buffer
        ledger.append_event(run, "submit", part, job_id=str(10_000 + part), executor="local", kind="train")
        ledger.append_event(run, "end", part, exit_code=75, step=part, action="resubmit", reason="r" * 100)
    proc = subprocess.run(f"{sys.executable} -m jobs.status --json {run} | head -c 100", shell=True,
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.stderr == "" and len(proc.stdout) == 100


# --- a real one-node SLURM cluster (tests/slurm_cluster.py; skips without root, runs in CI) ------

def test_without_root_the_cluster_cannot_start_and_says_why(monkeypatch, tmp_path):
    import slurm_cluster

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(slurm_cluster.ClusterUnavailable, match="needs root"):
        slurm_cluster.start_cluster(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written


# A trainer that, like the real one, answers SIGTERM with a checkpoint (taking CHECKPOINT_S) and exit
# 75 at the step it had reached, saying "received SIGTERM": cancelled before its first step, it
# "made no progress".
TERM_TRAINER = STUB_TRAINER_OPTIONS + r'''
def stop(*_):
    time.sleep(float(os.environ.get("CHECKPOINT_S", "0")))
    json.dump({"state": "stopped", "exit_code": 75, "step": 0, "time": time.time(),
               "message": "stopped early (received SIGTERM) with a checkpoint at step 0; run again to continue"},
              open(os.path.join(a.run_dir, "status.json"), "w"))
    open(os.path.join(a.run_dir, "trainer.checkpointed"), "w").close()
    print("stopped (exit 75) step 0: received SIGTERM", flush=True)
    sys.exit(75)
signal.signal(signal.SIGTERM, stop)
open(os.path.join(a.run_dir, "trainer.started"), "w").close()
time.sleep(120)
'''


def _cluster_submit(cluster, run, *extra, env_extra=None, timeout=120):
    env = {**cluster.env, **(env_extra or {})}
    argv = [sys.executable, "-m", "jobs.submit", "--executor", "slurm", "--queue", cluster.partition,
            "--model", "smoke", "--device", "cpu", "--run-dir", str(run), *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout)


def _cli(cluster, module, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], env=cluster.env, capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=120)


def _wait_for(what, ready, timeout=120.0, every=0.5):
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


def test_real_sbatch_refusal_is_one_line_and_leaves_nothing_behind(slurm_cluster, tmp_path):
    run = tmp_path / "run"
    proc = _cluster_submit(slurm_cluster, run, "--data", str(fake_shards(tmp_path / "shards")), "--queue", "no_such_partition")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "sbatch" in proc.stderr and "Invalid partition name specified" in proc.stderr, proc.stderr
    left = sorted(str(p.relative_to(run)) for p in run.rglob("*")) if run.exists() else []
    assert not any(name.startswith(("jobs/spec.json", "jobs/submitit", "jobs/owner.json", "jobs/ledger")) for name in left), left
    assert slurm_cluster.run("squeue", "-h").stdout.strip() == ""


def _start_waiting_chain(slurm_cluster, tmp_path, checkpoint_s: float = 0):
    """Submit a one-part chain whose trainer runs until signalled; return (run dir, job id) once it runs."""
    stubs = tmp_path / "stubpkg"
    stubs.mkdir()
    (stubs / "termtrainer.py").write_text(TERM_TRAINER)
    run = tmp_path / "run"
    env = {"PYTHONPATH": os.pathsep.join([str(stubs), os.environ.get("PYTHONPATH", "")]),
           "CHECKPOINT_S": str(checkpoint_s)}
    proc = _cluster_submit(slurm_cluster, run, "--data", str(fake_shards(tmp_path / "shards")), "--walltime", "00:10:00",
                           "--trainer-module", "termtrainer", env_extra=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = ledger.read_parts(run)[0].job_id
    _wait_for("the trainer to start", (run / "trainer.started").exists)
    return run, job


def test_real_cancel_ends_a_running_chain_and_says_it_was_cancelled(slurm_cluster, tmp_path):
    run, job = _start_waiting_chain(slurm_cluster, tmp_path)
    shown = _cli(slurm_cluster, "jobs.status", run)
    assert shown.returncode == 0 and f"{job:22}" in shown.stdout and "RUNNING" in shown.stdout, shown.stdout + shown.stderr
    cancel = _cli(slurm_cluster, "jobs.cancel", run)
    assert cancel.returncode == 0 and job in cancel.stdout, cancel.stdout + cancel.stderr
    _wait_for("the job to end", lambda: slurm_cluster.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "")
    time.sleep(1)
    parts = ledger.read_parts(run)
    assert len(parts) == 1 and read_chain_state(run).state == "cancelled"  # no successor
    # SLURM ends the job when its batch shell dies of the SIGTERM, so the part may not get to
    # record its end; if it does, the reason is the cancellation, never "made no progress"
    if parts[0].ended:
        assert parts[0].action == "stop" and "cancelled" in parts[0].reason, parts[0]
    shown = _cli(slurm_cluster, "jobs.status", run)
    assert shown.stdout.startswith("chain: cancelled"), shown.stdout
    assert "[CANCELLED: cancelled]" in shown.stdout and "no progress" not in shown.stdout, shown.stdout
    log = (run / "jobs" / "submitit" / f"{job}_0_log.out").read_text() + (run / "jobs" / "submitit" / f"{job}_0_log.err").read_text()
    assert "no progress" not in log and "raise --walltime" not in log, log


def _job_processes(job: str) -> list[int]:
    """Every process of SLURM job ``job`` on this machine (the batch shell and all it started)."""
    marker = f"SLURM_JOB_ID={job}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_real_killed_part_is_reported_from_slurms_state(slurm_cluster, tmp_path):
    """A part killed outright (as at a node failure: SIGKILL to every process of the job, which
    ``scancel --signal=KILL`` is not: SLURM cancels the job with SIGTERM first) writes no end
    record: status says so."""
    run, job = _start_waiting_chain(slurm_cluster, tmp_path)
    pids = _job_processes(job)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    _wait_for("the job to end", lambda: slurm_cluster.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "")
    shown = _cli(slurm_cluster, "jobs.status", run)
    first = shown.stdout.splitlines()[0]
    assert first.startswith("chain: stopped — part 1 (train) ended without an end record"), shown.stdout
    assert "ended without an end record [" in shown.stdout
    assert not ledger.read_parts(run)[0].ended


@pytest.mark.parametrize("how", [["scancel"], ["scancel", "--signal=KILL", "--full"]], ids=["scancel", "scancel-KILL"])
def test_real_scancel_lets_the_part_checkpoint_record_why_and_stop(slurm_cluster, tmp_path, how):
    """A plain scancel (and ``--signal=KILL``, which SLURM turns into a cancel: SIGTERM, then
    SIGKILL after KillWait) leaves the trainer its checkpoint (here 4 s) and the part asks SLURM
    why it is ending: cancelled, so the chain stops, saying so, and nothing is resubmitted."""
    run, job = _start_waiting_chain(slurm_cluster, tmp_path, checkpoint_s=4)
    assert slurm_cluster.run(*how, job).returncode == 0
    _wait_for("the job to end", lambda: slurm_cluster.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "")
    time.sleep(1)
    log = (run / "jobs" / "submitit" / f"{job}_0_log.out").read_text() + (run / "jobs" / "submitit" / f"{job}_0_log.err").read_text()
    assert (run / "trainer.checkpointed").exists(), log
    parts = ledger.read_parts(run)
    assert len(parts) == 1 and slurm_cluster.run("squeue", "-h").stdout.strip() == "", (parts, log)
    assert (parts[0].exit_code, parts[0].action, parts[0].interrupted) == (75, "stop", "scancel"), (parts, log)
    state = read_chain_state(run)
    assert state.state == "stopped" and state.reason.startswith(f"cancelled by the scheduler (SLURM job {job}"), state
    shown = _cli(slurm_cluster, "jobs.status", run)
    assert shown.stdout.startswith("chain: stopped — cancelled by the scheduler"), shown.stdout


REAL_TRAIN = ["--set", "data.workers=0", "--set", "train.batch_size=24", "--set", "train.log_every_steps=1",
              "--set", "train.checkpoint_every_steps=100"]


def _chain_ended(run) -> bool:
    return read_chain_state(run).state in ENDED


def test_real_chain_of_walltime_limited_parts_ends_where_an_uninterrupted_run_ends(slurm_cluster, shards64, tmp_path):
    """The real trainer, split by its walltime into ≥ 2 SLURM jobs that sbatch each other, reaches
    the same final step as one uninterrupted job; jobs.status shows each part's SLURM state.

    How many steps fit in a part depends on this machine's speed right now, so the part walltime
    is calibrated from the uninterrupted job's own timing (start-up + about 1.5 steps), then
    bisected between "made no progress" and "fit in one part"."""
    steps = 4
    whole = tmp_path / "whole"
    proc = _cluster_submit(slurm_cluster, whole, "--data", str(shards64), "--max-steps", str(steps), *REAL_TRAIN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _wait_for("the uninterrupted run", lambda: _chain_ended(whole), timeout=600)
    whole_parts = ledger.read_parts(whole)
    assert read_chain_state(whole).state == "done" and len(whole_parts) == 1 and whole_parts[0].step == steps
    times = [json.loads(line)["time"] for line in (whole / "metrics.jsonl").read_text().splitlines()]
    step_s = sorted(b - a for a, b in zip(times, times[1:]))[len(times) // 2 - 1]
    part_s = ledger.iso_seconds(whole_parts[0].end_time) - ledger.iso_seconds(whole_parts[0].start_time) + 1
    overhead_s = max(1.0, part_s - (times[-1] - times[0]))  # start-up, first step, checkpoint, exit
    # start short (about 1.5 steps a part): a part that makes no progress costs only its start-up
    walltime = int((overhead_s + 1.5 * step_s + 2) / 0.9) + 1  # the trainer gets 90 % of a short walltime

    def run_split(attempt: int, walltime: int):
        split = tmp_path / f"split{attempt}"
        proc = _cluster_submit(slurm_cluster, split, "--data", str(shards64), "--max-steps", str(steps),
                               "--walltime", str(walltime), "--allow-short-walltime", "--max-resubmits", "8", *REAL_TRAIN)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _wait_for("the split run", lambda: _chain_ended(split), timeout=600)
        parts = ledger.read_parts(split)
        ok = read_chain_state(split).state == "done" and len(parts) >= 2
        return ok, parts, str(read_chain_state(split).reason)

    ok, parts, tries = bisect_part_walltime(run_split, walltime, attempts=4)
    split = tmp_path / f"split{len(tries) - 1}"
    assert ok, f"tries (walltime, steps, reason): {tries}"
    assert [p.exit_code for p in parts] == [75] * (len(parts) - 1) + [0]
    assert parts[-1].step == whole_parts[0].step == steps
    assert all(a.step < b.step for a, b in zip(parts, parts[1:]))
    assert len({p.job_id for p in parts}) == len(parts)
    shown = _cli(slurm_cluster, "jobs.status", split)
    assert shown.returncode == 0 and shown.stdout.startswith("chain: done"), shown.stdout + shown.stderr
    for p in parts:  # every part's row carries SLURM's own state of its job
        row = next(line for line in shown.stdout.splitlines() if line.split()[:1] == [str(p.part)])
        assert p.job_id in row and "[COMPLETED" in row, shown.stdout
