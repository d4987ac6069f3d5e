"""``jobs.status`` shows where a running part is, numbers epochs as train.log does, lists the
attempts a part was interrupted in, and on PBS the walltime used and the numeric Exit_status."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from jobs import ledger, status
from jobs.chain_state import write_chain_state
from jobs_support import FIXTURES, stub_bin, stub_env, write_exe


def _status_json(run: Path, **fields) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "status.json").write_text(json.dumps({"time": time.time(), **fields}))


def test_a_running_part_shows_its_current_step(tmp_path):
    run = tmp_path / "run"
    ledger.append_event(run, "submit", 1, chain="c1", job_id=str(os.getpid()), executor="local", kind="train")
    ledger.append_event(run, "start", 1, chain="c1", job_id=str(os.getpid()), executor="local", kind="train",
                        host="vm", start_step=None)
    write_chain_state(run, "running", "part 1 started", 1, None, str(os.getpid()), "local", chain="c1")
    time.sleep(1.1)  # the ledger's clock counts whole seconds
    _status_json(run, state="running", step=412, total_steps=3000, epoch=1, images_per_s=3.1, exit_code=None)
    text, data = status.render_status(run)
    row = next(line for line in text.splitlines() if line.split()[:2] == ["1", "train"])
    assert "412" in row.split() and "step 412/3000" in row and "epoch 2" in row, text
    assert data["parts"][0]["current"]["step"] == 412


def test_a_running_part_reads_the_newest_logged_step_when_status_json_is_older(tmp_path):
    """status.json of the previous part (step 100) is older than this part's start: the newest
    record in metrics.jsonl (what train.log's progress line said) is where the part is."""
    run = tmp_path / "run"
    _status_json(run, state="stopped", step=100, total_steps=3000, epoch=0, exit_code=75, time=time.time() - 3600)
    ledger.append_event(run, "start", 1, chain="c1", job_id=str(os.getpid()), executor="local", kind="train",
                        host="vm", start_step=100)
    time.sleep(1.1)
    with open(run / "metrics.jsonl", "w") as fh:
        for step in (150, 200):
            fh.write(json.dumps({"step": step, "epoch": 3, "time": time.time(), "img_per_s": 2.5}) + "\n")
    text, data = status.render_status(run)
    assert "step 200/3000" in text and "epoch 3" in text, text
    assert data["parts"][0]["current"]["step"] == 200


def test_epochs_are_numbered_as_in_train_log(tmp_path):
    """status.json counts completed epochs (0 during the first); train.log says "epoch 1/90"."""
    run = tmp_path / "run"
    _status_json(run, state="stopped", step=40, total_steps=300, epoch=0, exit_code=75, message="m")
    assert "(epoch 1)" in status.summarize_outputs(run)
    # finished exactly at the end of epoch 2: the last progress line said "epoch 2/2"
    (run / "metrics.jsonl").write_text(json.dumps({"step": 300, "epoch": 2, "time": time.time()}) + "\n")
    _status_json(run, state="finished", step=300, total_steps=300, epoch=2, exit_code=0, message="m")
    assert "(epoch 2)" in status.summarize_outputs(run)


def test_interrupted_attempts_are_listed(tmp_path):
    """A requeued part ran twice under one job: both attempts are rows, the first says why it ended."""
    run = tmp_path / "run"
    ledger.append_event(run, "submit", 1, chain="c1", job_id="77", executor="local", kind="train")
    ledger.append_event(run, "start", 1, chain="c1", job_id="77", executor="local", kind="train", host="a")
    ledger.append_event(run, "end", 1, chain="c1", exit_code=75, step=40, action="continue", kind="train",
                        reason="requeued by the scheduler", interrupted="requeued")
    ledger.append_event(run, "start", 1, chain="c1", job_id="77", executor="local", kind="train", host="b")
    ledger.append_event(run, "end", 1, chain="c1", exit_code=0, step=90, action="done", kind="train", reason="r")
    write_chain_state(run, "done", "training finished", 1, 0, "77", "local", chain="c1")
    parts = ledger.read_parts(run)
    assert len(parts) == 1 and parts[0].step == 90 and parts[0].host == "b"
    assert [(a.step, a.interrupted) for a in parts[0].attempts] == [(40, "requeued")]
    text, _ = status.render_status(run)
    rows = [line for line in text.splitlines() if line.split()[:1] == ["1"]]
    assert len(rows) == 2 and "interrupted (requeued)" in rows[0] and "done" in rows[1], text


def test_pbs_parts_show_walltime_used_and_exit_status(tmp_path, monkeypatch):
    bindir, log = stub_bin(tmp_path)
    write_exe(bindir / "qstat", f"#!/bin/bash\ncat {FIXTURES / 'qstat_x_f_F_json.json'}\n")
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    run = tmp_path / "run"
    for part, job in enumerate(("26.vm", "28.vm"), start=1):
        ledger.append_event(run, "submit", part, job_id=job, executor="pbs")
    ledger.append_event(run, "end", 2, exit_code=0, step=200, action="done", reason="r")
    text, data = status.render_status(run)
    row = next(line for line in text.splitlines() if "26.vm" in line)
    assert "Exit_status -29" in row and "walltime 00:00:12 of 00:00:10" in row, text
    assert data["jobs"]["26.vm"] == {"state": "F", "exit_status": -29, "walltime_used": "00:00:12",
                                     "walltime_limit": "00:00:10"}
    assert data["jobs"]["28.vm"]["exit_status"] == 0
