"""The job layer under reliability audit: a run dir submitted again, jobs ended by hand, and
inputs or files that used to crash a part or reach a scheduler.

Real processes throughout: the PBS stub server of ``jobs_support`` runs each ``qsub``'d script
under bash (its ``qdel`` sends SIGTERM like PBS), every ``jobs.part`` runs on a ``python3`` without
site-packages, and the trainer stub answers SIGTERM the way the real one does (checkpoint, exit 75,
"received SIGTERM" in status.json).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inpaint.core.errors import ConfigError
from jobs import cancel, ledger, lock, status, submit
from jobs.chain_state import read_chain_state, write_chain_state
from jobs.options import parse, resolve
from jobs.pbs import QsubError
from jobs.pbs_script import render
from jobs_support import (REPO_ROOT, STUB_TRAINER_OPTIONS, calls, fake_shards, stub_bin, stub_env, stub_pbs_server,
                               write_exe)

# Like the real trainer: a stop asked for by SIGTERM is a checkpoint and exit 75 with "received
# SIGTERM" in status.json; a stop at its time budget says "time budget". TRAINER_QUICK lists the
# calls (0, 1, ...) that stop at once at their time budget; the others run until signalled.
TERM_AWARE_TRAINER = STUB_TRAINER_OPTIONS + r'''
run = a.run_dir
os.makedirs(run, exist_ok=True)
calls = os.path.join(run, "trainer.calls")
n = open(calls).read().count("\n") if os.path.exists(calls) else 0
with open(calls, "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\n")
path = os.path.join(run, "status.json")
step = json.load(open(path))["step"] if os.path.exists(path) else 0
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append("received SIGTERM"))
def finish(why):
    tmp = path + ".tmp"
    json.dump({"state": "stopped", "exit_code": 75, "step": step, "total_steps": 1000, "time": time.time(),
               "message": f"stopped early ({why}) with a checkpoint at step {step}; run again to continue"}, open(tmp, "w"))
    os.replace(tmp, path)
    print(f"stopped (exit 75) step {step}/1000: {why}", flush=True)
    sys.exit(75)
step += 10
if str(n) in os.environ.get("TRAINER_QUICK", "").split(","):
    finish("time budget: 5 s left, next step + checkpoint need ~9 s")
open(os.path.join(run, f"running.{n}"), "w").close()
t0 = time.time()
while not stop and time.time() - t0 < 60:
    time.sleep(0.1)
finish(stop[0] if stop else "time budget: 0 s left")
'''


def _wait_for(what: str, ready, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.2)


class PbsStub:
    """A run dir driven through the CLIs against the stub PBS server."""

    def __init__(self, tmp_path: Path, quick: str = "") -> None:
        self.bindir, self.log = stub_pbs_server(tmp_path)
        stubs = tmp_path / "stubpkg"
        stubs.mkdir()
        (stubs / "termaware.py").write_text(TERM_AWARE_TRAINER)
        self.env = stub_env(self.bindir, self.log, TRAINER_QUICK=quick,
                            PYTHONPATH=os.pathsep.join([str(stubs), str(REPO_ROOT)]))
        self.env.pop("SCRATCHDIR", None)
        self.run = tmp_path / "run"
        self.shards = fake_shards(tmp_path / "shards")

    def cli(self, module: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, *args], env=self.env, capture_output=True, text=True,
                              cwd=REPO_ROOT, timeout=120)

    def submit(self) -> subprocess.CompletedProcess:
        proc = self.cli("jobs.submit", "--executor", "pbs", "--profile", "generic-pbs", "--container", "none",
                        "--model", "smoke", "--trainer-module", "termaware", "--data", str(self.shards),
                        "--run-dir", str(self.run))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def job_ended(self, job_id: str) -> bool:
        state = self.log / "jobs" / f"{job_id}.state"
        return state.is_file() and state.read_text().startswith("F")

    def wait_running(self, call: int) -> None:
        _wait_for(f"trainer call {call} to run", (self.run / f"running.{call}").exists)

    def job_output(self, job_id: str) -> str:
        out = self.log / "jobs" / f"{job_id}.out"
        return out.read_text() if out.is_file() else ""


def test_submitting_a_used_run_dir_again_keeps_the_chains_apart_and_cancel_finds_the_running_job(tmp_path):
    """chain -> cancel -> submit again -> cancel, as the README recommends ("submit again to continue")."""
    pbs = PbsStub(tmp_path, quick="0,2")  # each chain's part 1 stops at its time budget, its part 2 runs on
    pbs.submit()
    pbs.wait_running(1)  # part 2 (job 2.vm), submitted by part 1
    first = pbs.cli("jobs.cancel", str(pbs.run))
    assert first.returncode == 0 and "2.vm" in first.stdout, first.stdout + first.stderr
    assert read_chain_state(pbs.run).job_id == "2.vm"  # the job cancelled, not the previous part
    _wait_for("job 2.vm to end", lambda: pbs.job_ended("2.vm"))

    pbs.submit()  # a new chain, part 1 again (job 3.vm), which hands on to its own part 2 (job 4.vm)
    pbs.wait_running(3)
    _wait_for("part 2 to be recorded as submitted", lambda: read_chain_state(pbs.run).next_job_id == "4.vm")
    assert read_chain_state(pbs.run).state == "running"
    shown = pbs.cli("jobs.status", "--json", str(pbs.run))
    data = json.loads(shown.stdout)
    old, new = dict.fromkeys(p["chain"] for p in data["parts"])
    assert [(p["chain"], p["part"], p["job_id"], p.get("exit_code")) for p in data["parts"]] == [
        (old, 1, "1.vm", 75), (old, 2, "2.vm", 75), (new, 1, "3.vm", 75), (new, 2, "4.vm", None)], shown.stdout
    assert data["chain"]["chain"] == new
    second = pbs.cli("jobs.cancel", str(pbs.run))
    assert second.returncode == 0 and "4.vm" in second.stdout, second.stdout + second.stderr
    _wait_for("job 4.vm to end", lambda: pbs.job_ended("4.vm"))

    state = read_chain_state(pbs.run)
    assert (state.state, state.job_id, state.chain) == ("cancelled", "4.vm", new)
    parts = ledger.read_parts(pbs.run)
    assert [(p.part, p.action, p.start_time <= p.end_time) for p in parts] == [
        (1, "resubmit", True), (2, "stop", True), (1, "resubmit", True), (2, "stop", True)]
    assert all("cancelled with jobs.cancel" in parts[i].reason for i in (1, 3))
    assert len(calls(pbs.log, "qsub")) == 4 and calls(pbs.log, "qdel") == ["2.vm", "4.vm"]
    text = pbs.cli("jobs.status", str(pbs.run)).stdout
    assert text.startswith("chain: cancelled") and f"-- chain {old} (an earlier submission)" in text, text


def test_a_ledger_written_before_chain_ids_is_split_where_part_1_is_submitted_again(tmp_path):
    run = tmp_path / "run"
    for job, part, code in (("1.vm", 1, 75), ("2.vm", 2, 75), ("3.vm", 1, 75)):
        ledger.append_event(run, "submit", part, job_id=job, executor="pbs", kind="train")
        ledger.append_event(run, "start", part, job_id=job, executor="pbs", kind="train")
        ledger.append_event(run, "end", part, exit_code=code, step=10, action="resubmit", reason="r", kind="train")
    ledger.append_event(run, "submit", 2, job_id="4.vm", executor="pbs", kind="train")
    parts = ledger.read_parts(run)
    assert [(p.chain, p.part, p.job_id, p.exit_code) for p in parts] == [
        ("legacy-1", 1, "1.vm", 75), ("legacy-1", 2, "2.vm", 75), ("legacy-2", 1, "3.vm", 75), ("legacy-2", 2, "4.vm", None)]


def test_a_raw_qdel_stops_the_chain_and_says_so(tmp_path):
    """A SIGTERM long before the part's deadline is a qdel (or a preemption), not the walltime:
    the chain stops with that reason instead of resubmitting itself."""
    pbs = PbsStub(tmp_path)
    pbs.submit()
    pbs.wait_running(0)
    qdel = subprocess.run(["qdel", "1.vm"], env=pbs.env, capture_output=True, text=True, timeout=60)
    assert qdel.returncode == 0, qdel.stderr
    _wait_for("job 1.vm to end", lambda: pbs.job_ended("1.vm"))
    (part,) = ledger.read_parts(pbs.run)
    assert (part.exit_code, part.action, part.interrupted) == (75, "stop", "signal"), pbs.job_output("1.vm")
    assert "SIGTERM" in part.reason and "qdel" in part.reason and "time limit" not in part.reason.split(",")[0]
    state = read_chain_state(pbs.run)
    assert state.state == "stopped" and "submit again to continue" in state.reason
    assert calls(pbs.log, "qsub") == [calls(pbs.log, "qsub")[0]]  # no successor
    assert not (pbs.run / "jobs" / "owner.json").exists()


# --- jobs.part: bad ledger lines, two ends at once, a full disk, a copied run dir --------------

def _queued_run(tmp_path: Path, monkeypatch) -> tuple[Path, Path, dict]:
    """A run dir submitted to a PBS stub that only queues (job 101.vm), its part 1 started."""
    bindir, log = stub_bin(tmp_path)
    env = stub_env(bindir, log)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    run = tmp_path / "run"
    assert submit.main(["--executor", "pbs", "--profile", "generic-pbs", "--container", "none", "--model", "smoke",
                        "--data", str(fake_shards(tmp_path / "shards")), "--run-dir", str(run)]) == 0
    chain = read_chain_state(run).chain
    started = _part(env, "start", run, chain)
    assert started.returncode == 0, started.stderr
    (run / "status.json").write_text(json.dumps({"state": "stopped", "exit_code": 75, "step": 10, "time": time.time(),
                                                 "message": "stopped early (time budget: 3 s left) with a checkpoint"}))
    return run, log, env


def _part(env: dict, step: str, run: Path, chain: str | None, *extra: str, wait: bool = True):
    """``python3 -m jobs.part STEP`` as the PBS script runs it for part 1 (job 101.vm) of ``chain``."""
    argv = ["python3", "-m", "jobs.part", step, str(run), "--part", "1", "--job-id", "101.vm",
            *(["--chain", chain] if chain else []), *extra]
    env = {**env, "PYTHONPATH": str(REPO_ROOT)}
    if not wait:
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    return subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


@pytest.mark.parametrize("bad", [b"[1, 2]", b'{"event": "end", "part": "one"}', b'"text"', b"\xff\xfe{}",
                                 b'{"event": "start", "part": 1, "deadline": "soon"}'])
def test_one_bad_ledger_line_is_skipped_and_reported_and_the_successor_still_submitted(tmp_path, monkeypatch, bad):
    run, log, env = _queued_run(tmp_path, monkeypatch)
    with open(run / "jobs" / "ledger.jsonl", "ab") as fh:
        fh.write(bad + b"\n")
    ended = _part(env, "end", run, read_chain_state(run).chain, "--exit-code", "75")
    assert ended.returncode == 0 and "submitted part 2 (train) as 102.vm" in ended.stderr, ended.stderr
    assert "FACEFILL_PART=2" in calls(log, "qsub")[-1]
    assert "ledger.jsonl line 3 skipped" in ended.stderr and "Traceback" not in ended.stderr
    text, data = status.render_status(run)
    assert "warning: " in text and "ledger.jsonl line 3 skipped" in data["warning"]
    assert [p.get("action") for p in data["parts"]] == ["resubmit", None]  # part 2 queued, not started


def test_two_ends_of_one_part_at_once_submit_one_successor(tmp_path, monkeypatch):
    run, log, env = _queued_run(tmp_path, monkeypatch)
    chain = read_chain_state(run).chain
    procs = [_part(env, "end", run, chain, "--exit-code", "75", wait=False) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert sorted(p.returncode for p in procs) == [0, 0], outs
    assert [c for c in calls(log, "qsub") if "FACEFILL_PART=2" in c] != [], outs
    assert len([c for c in calls(log, "qsub") if "FACEFILL_PART=2" in c]) == 1, outs  # one successor
    assert [e["event"] for e in ledger.read_events(run)].count("end") == 1


def test_a_full_disk_inside_jobs_part_is_one_line_and_stops_the_chain(tmp_path, monkeypatch, tmpfs):
    from disk_support import fill_disk

    small = tmpfs(1 << 20)
    monkeypatch.chdir(small)
    run, log, env = _queued_run(small, monkeypatch)
    fill_disk(small)
    chain = read_chain_state(run).chain
    # decide (an append may still fit in the ledger's last page), qsub, record: one of them meets the full disk
    ended = _part(env, "end", run, chain, "--exit-code", "75")
    assert ended.returncode == 2 and ended.stdout == "", ended.stdout + ended.stderr
    lines = ended.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "disk is full" in lines[-1] and "Traceback" not in ended.stderr, ended.stderr
    state = read_chain_state(run)
    assert state.state == "stopped" and "disk" in state.reason and "full" in state.reason


def test_jobs_part_on_a_copied_run_dir_refuses_instead_of_writing_into_the_original(tmp_path, monkeypatch):
    run, log, env = _queued_run(tmp_path, monkeypatch)
    before = (run / "jobs" / "ledger.jsonl").read_bytes()
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    ended = _part(env, "end", copy, read_chain_state(run).chain, "--exit-code", "75")
    assert ended.returncode == 2 and ended.stdout == "", ended.stdout
    assert ended.stderr.startswith("error: ") and len(ended.stderr.strip().splitlines()) == 1, ended.stderr
    assert "spec.json" in ended.stderr and "copied" in ended.stderr and "--run-dir" in ended.stderr
    assert (run / "jobs" / "ledger.jsonl").read_bytes() == before


# --- jobs.cancel and owner.json ------------------------------------------------------------------

def _local_ledger(run: Path) -> None:
    ledger.append_event(run, "submit", 1, chain="c1", job_id="4242", executor="local", kind="train")
    write_chain_state(run, "submitted", "first part submitted", 0, None, None, "local", chain="c1")


@pytest.mark.parametrize("case", ["pid reused", "other host"])
def test_cancel_never_signals_a_process_that_is_not_the_chains(tmp_path, case):
    run = tmp_path / "run"
    _local_ledger(run)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        record = {"executor": "local", "job_id": str(bystander.pid), "pid": bystander.pid,
                  "host": "elsewhere" if case == "other host" else None,
                  "time": "2020-01-01T00:00:00Z" if case == "pid reused" else ledger.now_iso()}
        (run / "jobs" / "owner.json").write_text(json.dumps(record))
        done = subprocess.run([sys.executable, "-m", "jobs.cancel", str(run)], capture_output=True, text=True,
                              cwd=REPO_ROOT, timeout=60)
        assert done.returncode == 0 and "not signalled" in done.stdout, done.stdout + done.stderr
        time.sleep(0.5)
        assert bystander.poll() is None, "jobs.cancel signalled a process that is not the chain's"
        assert read_chain_state(run).state == "cancelled"
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("content", ["", "{", "[]"])
def test_a_damaged_owner_file_is_named_by_submit_and_cleared_by_cancel(tmp_path, monkeypatch, content):
    bindir, log = stub_bin(tmp_path)
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    run = tmp_path / "run"
    _local_ledger(run)
    owner = run / "jobs" / "owner.json"
    owner.write_text(content)
    argv = ["--executor", "pbs", "--profile", "generic-pbs", "--container", "none", "--model", "smoke",
            "--data", str(fake_shards(tmp_path / "shards")), "--run-dir", str(run)]
    with pytest.raises(lock.RunDirLockedError) as info:
        submit.main(argv)
    message = str(info.value)
    assert "owner.json" in message and "jobs.cancel" in message and "\n" not in message, message
    assert calls(log, "qsub") == []
    cancel.cancel(run)
    assert not owner.exists()
    assert submit.main(argv) == 0 and len(calls(log, "qsub")) == 1


# --- what jobs.submit refuses before anything reaches a scheduler ------------------------------

def _pbs_argv(tmp_path: Path, *extra: str) -> list[str]:
    return ["--executor", "pbs", "--profile", "generic-pbs", "--container", "none", "--model", "smoke",
            "--data", str(fake_shards(tmp_path / "shards")), *extra]


def test_an_invalid_config_is_refused_before_anything_is_queued(tmp_path, monkeypatch):
    bindir, log = stub_bin(tmp_path)
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        submit.main(_pbs_argv(tmp_path, "--run-dir", str(tmp_path / "run"), "--set", "train.batch_size=abc"))
    assert "train.batch_size" in str(info.value) and "\n" not in str(info.value)
    assert calls(log, "qsub") == [] and not (tmp_path / "run").exists()


def test_a_quote_in_the_run_dir_never_reaches_qsub(tmp_path, monkeypatch):
    bindir, log = stub_bin(tmp_path)
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    for quoted in ("it's", 'say"what'):
        with pytest.raises(ConfigError, match="--run-dir .*quotes"):
            submit.main(_pbs_argv(tmp_path, "--run-dir", str(tmp_path / quoted)))
    assert calls(log, "qsub") == []


def test_a_qsub_error_with_a_nul_byte_comes_back_as_one_printable_line(tmp_path, monkeypatch):
    bindir, log = stub_bin(tmp_path)
    write_exe(bindir / "qsub", "#!/bin/bash\nprintf 'qsub: illegal -o value\\0\\n\\tsee man qsub\\0' >&2\nexit 2\n")
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(QsubError) as info:
        submit.main(_pbs_argv(tmp_path, "--run-dir", str(tmp_path / "run")))
    message = str(info.value)
    assert "qsub: illegal -o value see man qsub" in message
    assert message.isprintable(), repr(message)


def test_a_run_dir_holding_a_placeholder_is_rendered_as_written(tmp_path):
    """Rendering is one pass: ``{{IMAGE}}`` in --run-dir stays text inside its quotes."""
    image = tmp_path / "img.sif"
    image.write_text("x")
    run = tmp_path / "{{IMAGE}}" / "run"
    spec = resolve(parse(["--executor", "pbs", "--profile", "generic-pbs", "--model", "smoke", "--image", str(image),
                          "--data", str(fake_shards(tmp_path / "shards")), "--run-dir", str(run)]))
    text = render(spec)
    assert f"RUN_DIR='{run}'\n" in text and f"IMAGE={image}\n" in text
    script = tmp_path / "s.sh"
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("image", ["docker://x && touch F #", "/images/my image.sif", "docker://x|sh"])
def test_an_image_that_is_not_one_path_is_refused(tmp_path, image):
    with pytest.raises(ConfigError, match="--image") as info:
        resolve(parse(["--executor", "pbs", "--profile", "generic-pbs", "--model", "smoke", "--image", image,
                       "--data", str(fake_shards(tmp_path / "shards")), "--run-dir", str(tmp_path / "run")]),
                check_paths=False)
    assert "\n" not in str(info.value)


# --- --image with the local and SLURM executors ----------------------------------------------------

def _local_image_chain(tmp_path: Path, runtime: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    from jobs_support import STUB_SINGULARITY, make_stub_trainer

    bindir, log = stub_bin(tmp_path)
    if runtime == "apptainer":
        os.unlink(bindir / "singularity")
        write_exe(bindir / "apptainer", STUB_SINGULARITY)
    image = tmp_path / "facefill.sif"
    image.write_text("stub image")
    env = stub_env(bindir, log, STUB_PLAN="0",
                   PYTHONPATH=os.pathsep.join([str(make_stub_trainer(tmp_path / "stubpkg")), str(REPO_ROOT)]))
    os.unlink(bindir / "qsub")
    proc = subprocess.run([sys.executable, "-m", "jobs.submit", "--executor", "local", "--model", "smoke",
                           "--container", "singularity", "--image", str(image), "--trainer-module", "stubtrainer",
                           "--data", str(fake_shards(tmp_path / "shards")), "--run-dir", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    return proc, log, image


@pytest.mark.parametrize("runtime", ["singularity", "apptainer"])
def test_the_local_executor_runs_the_trainer_in_the_image(tmp_path, runtime):
    proc, log, image = _local_image_chain(tmp_path, runtime)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = tmp_path / "run"
    (call,) = calls(log, runtime)
    assert call.startswith(f"exec -B {run} -B {tmp_path / 'shards'} -B {REPO_ROOT} {image} python -m stubtrainer "), call
    (env,) = calls(log, f"{runtime}.env")
    assert env == f"SINGULARITYENV_PYTHONPATH={REPO_ROOT} APPTAINERENV_PYTHONPATH={REPO_ROOT}"
    assert (run / "stub_calls.jsonl").is_file() and read_chain_state(run).state == "done"
