"""End to end with the local executor (submitit's LocalExecutor): chains, crashes, limits, locks.

Most tests use a stub trainer with the contract's CLI (exact control over exit codes); the last
one runs the real trainer on the packed 64 px shards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


from jobs import ledger
from jobs.chain_state import read_chain_state
from jobs_support import REPO_ROOT, bisect_part_walltime, fake_shards, make_stub_trainer


def _submit(tmp_path: Path, *extra: str, plan: str = "0", env_extra: dict | None = None,
            stub: bool = True, check_rc: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if stub:
        env["PYTHONPATH"] = os.pathsep.join([str(make_stub_trainer(tmp_path / "stubpkg")), env.get("PYTHONPATH", "")])
        env["STUB_PLAN"] = plan
    env.update(env_extra or {})
    argv = [sys.executable, "-m", "jobs.submit", "--executor", "local", "--model", "smoke",
            "--run-dir", str(tmp_path / "run"), *extra]
    if stub:
        argv += ["--trainer-module", "stubtrainer", "--data", str(fake_shards(tmp_path / "shards"))]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=400)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stdout + proc.stderr
    return proc


def test_chain_of_three_parts_finishes_and_ledger_lists_every_part(tmp_path):
    proc = _submit(tmp_path, "--walltime", "00:01:00", "--max-steps", "30", plan="75,75,0", check_rc=0)
    parts = ledger.read_parts(tmp_path / "run")
    assert [p.part for p in parts] == [1, 2, 3]
    assert [p.exit_code for p in parts] == [75, 75, 0]
    assert [p.step for p in parts] == [10, 20, 30]
    assert [p.action for p in parts] == ["resubmit", "resubmit", "done"]
    assert all(p.executor == "local" and p.job_id and p.submit_time and p.start_time and p.end_time
               for p in parts)
    assert len({p.job_id for p in parts}) == 3
    # every part got the contract's arguments, with a deadline of the part's time limit (60 s
    # minus margin) from the part's start, fixed once by jobs.part
    calls = [json.loads(l) for l in (tmp_path / "run" / "stub_calls.jsonl").read_text().splitlines()]
    starts = [e for e in ledger.read_events(tmp_path / "run") if e["event"] == "start"]
    assert [c["argv"][c["argv"].index("--deadline") + 1] for c in calls] == [str(int(e["deadline"])) for e in starts]
    assert all(53 <= e["deadline"] - ledger.iso_seconds(e["time"]) <= 55 for e in starts)
    assert all(c["argv"][c["argv"].index("--run-dir") + 1] == str(tmp_path / "run") for c in calls)
    assert read_chain_state(tmp_path / "run").state == "done"
    assert not (tmp_path / "run" / "jobs" / "owner.json").exists()
    out = proc.stdout
    assert "part 3: exit 0 at step 30 -> done" in out and "chain done" in out
    assert out.rstrip().splitlines()[-2].startswith("run dir: ") or f"run dir: {tmp_path / 'run'}" in out


def test_trainer_crash_stops_the_chain_with_the_reason_in_the_run_dir(tmp_path):
    proc = _submit(tmp_path, "--walltime", "60", plan="75,1,0", check_rc=1)
    parts = ledger.read_parts(tmp_path / "run")
    assert [p.exit_code for p in parts] == [75, 1]
    state = read_chain_state(tmp_path / "run")
    assert state.state == "stopped" and "train.log" in state.reason and state.exit_code == 1
    assert "chain stopped" in proc.stdout


def test_max_resubmits_is_respected(tmp_path):
    _submit(tmp_path, "--walltime", "60", "--max-resubmits", "1", "--max-steps", "100", plan="75", check_rc=1)
    parts = ledger.read_parts(tmp_path / "run")
    assert len(parts) == 2 and parts[-1].action == "stop"
    assert "--max-resubmits 1 reached" in read_chain_state(tmp_path / "run").reason


def test_second_submit_on_a_live_run_dir_is_refused_then_cancel_frees_it(tmp_path):
    first = _submit(tmp_path, "--walltime", "60", "--no-wait", plan="75", env_extra={"STUB_SLEEP": "60"}, check_rc=0)
    assert "background" in first.stdout
    run = tmp_path / "run"
    deadline = time.monotonic() + 60
    while not (run / "stub_calls.jsonl").exists() and not (run / "jobs" / "owner.json").exists():
        assert time.monotonic() < deadline, "the background chain never started"
        time.sleep(0.2)
    time.sleep(0.5)
    second = _submit(tmp_path, "--walltime", "60", plan="0", check_rc=2)
    assert second.stderr.startswith("error: ") and "owned by local process" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    cancel = subprocess.run([sys.executable, "-m", "jobs.cancel", str(run)], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=60)
    assert cancel.returncode == 0, cancel.stderr
    assert read_chain_state(run).state == "cancelled"
    deadline = time.monotonic() + 30
    while (run / "jobs" / "owner.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    status = subprocess.run([sys.executable, "-m", "jobs.status", str(run)], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=60)
    assert status.returncode == 0 and "chain: cancelled" in status.stdout


def test_dry_run_prints_the_trainer_command_and_starts_nothing(tmp_path):
    proc = _submit(tmp_path, "--walltime", "00:10:00", "--dry-run", "--set", "train.batch_size=2", check_rc=0)
    assert "-m stubtrainer --config smoke --data" in proc.stdout
    assert "--time-limit 540 --set train.batch_size=2" in proc.stdout
    assert not (tmp_path / "run" / "jobs" / "ledger.jsonl").exists()


REAL_TRAIN = ["--device", "cpu", "--set", "data.workers=0", "--set", "train.batch_size=48",
              "--set", "train.log_every_steps=1", "--set", "train.checkpoint_every_steps=100"]


def test_real_trainer_split_into_parts_ends_where_an_uninterrupted_run_ends(tmp_path, shards64):
    """Resumption through the job layer loses no step: ≥3 time-limited parts reach the same final
    step as one uninterrupted part.

    How many steps fit in a part depends on this machine's speed right now, so the part walltime
    is calibrated: first from the uninterrupted run's own timing (start-up + about two steps),
    then shortened if a try needed fewer than 3 parts or lengthened if a part made no progress.
    """
    steps = 8
    whole = tmp_path / "whole"
    whole.mkdir()
    _submit(whole, "--data", str(shards64), "--max-steps", str(steps), *REAL_TRAIN, stub=False, check_rc=0)
    whole_parts = ledger.read_parts(whole / "run")
    assert len(whole_parts) == 1 and whole_parts[0].step == steps
    times = [json.loads(l)["time"] for l in (whole / "run" / "metrics.jsonl").read_text().splitlines()]
    diffs = sorted(b - a for a, b in zip(times, times[1:]))
    step_s = diffs[len(diffs) // 2]
    part_s = ledger.iso_seconds(whole_parts[0].end_time) - ledger.iso_seconds(whole_parts[0].start_time) + 1
    overhead_s = max(1.0, part_s - (times[-1] - times[0]))  # start-up, first step, checkpoint, exit
    walltime = int(overhead_s + 1.5 * step_s + 2)

    def run_split(attempt: int, walltime: int):
        split = tmp_path / f"split{attempt}"
        split.mkdir()
        proc = _submit(split, "--data", str(shards64), "--max-steps", str(steps), "--walltime", str(walltime),
                       "--max-resubmits", "8", *REAL_TRAIN, stub=False)
        parts = ledger.read_parts(split / "run")
        return proc.returncode == 0 and len(parts) >= 3, parts, str(read_chain_state(split / "run").reason)

    ok, parts, tries = bisect_part_walltime(run_split, walltime, attempts=5)
    split = tmp_path / f"split{len(tries) - 1}"
    assert ok, f"tries (walltime, steps per part, reason): {tries}"
    assert [p.exit_code for p in parts] == [75] * (len(parts) - 1) + [0]
    assert [p.action for p in parts] == ["resubmit"] * (len(parts) - 1) + ["done"]
    assert parts[-1].step == whole_parts[0].step == steps
    assert all(a.step < b.step for a, b in zip(parts, parts[1:]))
    status = json.loads((split / "run" / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == steps
    ckpts = sorted((split / "run" / "checkpoints").glob("step-*.pt"))
    assert ckpts and ckpts[-1].name == f"step-{steps:09d}.pt"
