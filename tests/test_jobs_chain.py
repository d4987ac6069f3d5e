"""The chain's one decision, in Python, and the PBS script that defers to it.

The exit-code table is tested once, on :func:`jobs.chain.decide`. The rendered PBS script is run
under bash with stub qsub, singularity and nvidia-smi on PATH, a stub trainer that exits with the
code under test, and a ``python3`` without site-packages: every record the part writes comes from
``python3 -m jobs.part`` with only the standard library and the project.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from jobs import chain, ledger
from jobs.chain_state import read_chain_state
from jobs.part import command
from jobs.part import end as end_part
from jobs.profiles import load_profile
from jobs.spec import JobSpec
from jobs.pbs import write_script
from jobs_support import REPO_ROOT, calls, fake_shards, make_stub_trainer, stub_bin, stub_env


def test_decision_table():
    assert chain.decide(0, 1, 5) == chain.Decision(chain.DONE, "training finished")
    assert chain.decide(0, 1, 5, then_evaluate=True).action == chain.EVALUATE
    assert chain.decide(75, 1, 5).action == chain.RESUBMIT
    assert chain.decide(75, 6, 5).action == chain.STOP  # 5 resubmissions happened already
    assert "--max-resubmits 5" in chain.decide(75, 6, 5).reason
    assert chain.decide(75, 2, 5, successor_queued=True).action == chain.CONTINUE
    assert "made no progress" in chain.decide(75, 2, 5, progressed=False).reason
    assert "train.log" in chain.decide(1, 1, 5).reason and "exit 2" in chain.decide(2, 1, 5).reason
    assert "signal 9" in chain.decide(137, 1, 5).reason and "unexpected code 3" in chain.decide(3, 1, 5).reason
    assert all(chain.decide(c, 1, 5).action == chain.STOP for c in (1, 2, 3, 137, 143, 255))
    # a cancelled chain says so, whatever ended the part (qdel/scancel send SIGTERM: 75 or 143)
    for code in (75, 143, 1):
        assert chain.decide(code, 2, 5, progressed=False, cancelled=True) == chain.Decision(chain.STOP, chain.CANCELLED_REASON)
    assert chain.decide(0, 2, 5, then_evaluate=True, cancelled=True).action == chain.DONE


def _spec(tmp_path: Path, **over) -> JobSpec:
    image = tmp_path / "facefill.sif"
    image.write_text("stub image")
    base = dict(
        run_dir=str(tmp_path / "run"), config="smoke", data=str(fake_shards(tmp_path / "shards")),
        executor="pbs", name="ff-run", walltime_s=3600, time_limit_s=3000, max_resubmits=3,
        queue="gpu", ncpus=8, ngpus=1, mem="32gb", scratch="scratch_local=20gb", image=str(image),
        train_args=["--device", "cuda", "--max-steps", "30"], trainer_module="stubtrainer",
        python="python", project_root=str(REPO_ROOT), profile=load_profile("metacentrum"),
        eval_walltime_s=900, eval_args=["--baseline", "navier-stokes"], chain_id="c1",
    )
    base.update(over)
    return JobSpec(**base)


def _run_part(spec: JobSpec, tmp_path: Path, part: int, plan: str, job_id: str, mode: str = "train",
              stubs_extra: dict | None = None, **env_extra: str) -> subprocess.CompletedProcess:
    bindir, log = stub_bin(tmp_path, **(stubs_extra or {}))
    stubs = make_stub_trainer(tmp_path / "stubpkg")
    env = stub_env(bindir, log, PYTHONPATH=str(stubs), STUB_PLAN=plan, PBS_JOBID=job_id,
                   PBS_O_WORKDIR=str(tmp_path), FACEFILL_PART=str(part), FACEFILL_MODE=mode, **env_extra)
    env.pop("SCRATCHDIR", None)
    env.update(env_extra)
    script = Path(spec.run_dir) / "jobs" / "facefill.pbs.sh"
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, cwd=tmp_path / "stubpkg")


@pytest.mark.parametrize("code,part,then_evaluate", [(0, 1, False), (0, 2, True), (75, 1, False), (75, 4, False),
                                                     (1, 1, False), (143, 1, False)])
def test_rendered_pbs_script_follows_the_python_decision(tmp_path, code, part, then_evaluate):
    spec = _spec(tmp_path, then_evaluate=then_evaluate)
    script = write_script(spec)
    proc = _run_part(spec, tmp_path, part, str(code), f"{part}0.vm")
    out = proc.stdout + proc.stderr
    log = tmp_path / "stublog"
    expected = chain.decide(code, part, spec.max_resubmits, then_evaluate)
    start, end = [e for e in ledger.read_events(spec.run_dir) if e["event"] in ("start", "end")]
    assert (start["job_id"], start["kind"], start["start_step"]) == (f"{part}0.vm", "train", None), out
    assert (end["action"], end["reason"], end["exit_code"], end["step"]) == (
        expected.action, expected.reason, code, 10 if code in (0, 75) else 0), out
    qsubs = calls(log, "qsub")
    state = read_chain_state(spec.run_dir)
    if expected.action in (chain.RESUBMIT, chain.EVALUATE):
        evaluate = expected.action == chain.EVALUATE
        walltime = " -l walltime=00:15:00" if evaluate else ""
        assert qsubs == [f"-v FACEFILL_PART={part + 1},FACEFILL_MODE={'evaluate' if evaluate else 'train'},"
                         f"FACEFILL_CHAIN=c1{walltime} {script}"]
        # the chain record names the job carrying it on, so a part killed without an end is detectable
        assert (state.state, state.next_job_id) == ("evaluating" if evaluate else "running", "101.vm")
        assert json.loads((Path(spec.run_dir) / "jobs" / "owner.json").read_text())["job_id"] == "101.vm"
        assert ledger.read_parts(spec.run_dir)[-1].to_dict() == {"part": part + 1, "chain": "c1", "job_id": "101.vm", "executor": "pbs",
                                                       "kind": "evaluate" if evaluate else "train",
                                                       "submit_time": ledger.read_parts(spec.run_dir)[-1].submit_time}
        assert proc.returncode == 0
    else:
        assert qsubs == []
        assert (state.state, state.reason) == ("done" if expected.action == chain.DONE else "stopped", expected.reason)
        assert not (Path(spec.run_dir) / "jobs" / "owner.json").exists()
        assert proc.returncode == code  # a stopped chain shows as a failed job in qstat
    # the trainer ran inside the image with the contract's arguments, a deadline fixed at the
    # part's start (the spec's time limit from then), and a GPU check before it
    sing = calls(log, "singularity")
    assert len(sing) == 1 and sing[0].startswith(f"exec --nv -B {spec.run_dir} ")
    match = re.search(rf" {spec.image} python -m stubtrainer --config smoke --data {spec.data} "
                      rf"--run-dir {spec.run_dir} --deadline (\d+) --device cuda --max-steps 30$", sing[0])
    assert match, sing[0]
    assert int(match.group(1)) == int(start["deadline"]) and calls(log, "nvidia-smi")


def test_evaluation_part_has_its_own_command_and_records(tmp_path):
    spec = _spec(tmp_path, then_evaluate=True)
    assert command(spec, 3, "evaluate", "7.vm", "/scratch/shards") == [
        "inpaint.evaluate", "--run-dir", spec.run_dir, "--data", "/scratch/shards", "--out",
        str(Path(spec.run_dir) / "eval"), "--baseline", "navier-stokes"]


def test_pbs_chain_runs_to_the_end_through_self_resubmission(tmp_path):
    """qsub queues; the test plays the PBS server, running each queued part in turn."""
    spec = _spec(tmp_path, max_resubmits=5)
    write_script(spec)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cleaner = {"clean_scratch": "#!/bin/bash\n" + 'printf "%s\\n" "$*" >> "$STUB_LOG/clean_scratch.calls"\n'}
    log = tmp_path / "stublog"
    part, job_id = 1, "100.vm"
    for _ in range(10):
        proc = _run_part(spec, tmp_path, part, "75,75,0", job_id, stubs_extra=cleaner, SCRATCHDIR=str(scratch))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        queued = sorted(log.glob("queued.*"), key=lambda p: int(p.suffix[1:]))
        if not queued:
            break
        args = queued[0].read_text()
        queued[0].unlink()
        part = int(re.search(r"FACEFILL_PART=(\d+)", args).group(1))
        job_id = f"{queued[0].suffix[1:]}.vm"
    parts = ledger.read_parts(spec.run_dir)
    assert [p.exit_code for p in parts] == [75, 75, 0]
    assert [p.job_id for p in parts] == ["100.vm", "101.vm", "102.vm"]
    assert [(p.start_step, p.step) for p in parts] == [(None, 10), (10, 20), (20, 30)]
    assert read_chain_state(spec.run_dir).state == "done"
    # shards were staged into scratch and the trainer read them from there; scratch was cleaned
    trainer_calls = [json.loads(l) for l in (Path(spec.run_dir) / "stub_calls.jsonl").read_text().splitlines()]
    assert all(c["argv"][c["argv"].index("--data") + 1] == str(scratch / "facefill-shards") for c in trainer_calls)
    assert (scratch / "facefill-shards" / "index.json").is_file()
    assert len(calls(log, "clean_scratch")) >= 3


def test_presubmitted_chain_part_skips_when_run_already_finished(tmp_path):
    spec = _spec(tmp_path, chain=3)
    write_script(spec)
    first = _run_part(spec, tmp_path, 1, "0", "1.vm")
    assert first.returncode == 0 and read_chain_state(spec.run_dir).state == "done"
    second = _run_part(spec, tmp_path, 2, "0", "2.vm")
    assert second.returncode == 0 and "chain already ended (done)" in second.stdout
    assert len((Path(spec.run_dir) / "stub_calls.jsonl").read_text().splitlines()) == 1


def test_presubmitted_part_does_not_qsub_again_and_hands_ownership_on(tmp_path):
    spec = _spec(tmp_path, chain=3)
    write_script(spec)
    ledger.append_event(spec.run_dir, "submit", 2, chain="c1", job_id="2.vm", executor="pbs", kind="train")
    proc = _run_part(spec, tmp_path, 1, "75", "1.vm")
    assert proc.returncode == 0
    assert calls(tmp_path / "stublog", "qsub") == []
    assert (read_chain_state(spec.run_dir).state, read_chain_state(spec.run_dir).next_job_id) == ("running", "2.vm")
    assert json.loads((Path(spec.run_dir) / "jobs" / "owner.json").read_text())["job_id"] == "2.vm"
    last = _run_part(spec, tmp_path, 3, "75", "3.vm")  # the last pre-submitted part hands on itself
    assert last.returncode == 0 and len(calls(tmp_path / "stublog", "qsub")) == 1


def test_stalled_part_stops_instead_of_looping(tmp_path):
    spec = _spec(tmp_path)
    write_script(spec)
    _run_part(spec, tmp_path, 1, "75", "1.vm", STUB_STEPS="10")
    proc = _run_part(spec, tmp_path, 2, "75", "2.vm", STUB_STEPS="0")
    assert read_chain_state(spec.run_dir).state == "stopped"
    assert "made no progress" in read_chain_state(spec.run_dir).reason, proc.stdout


def test_refused_successor_stops_the_chain_with_qsubs_words(tmp_path):
    spec = _spec(tmp_path)
    write_script(spec)
    refusing = {"qsub": "#!/bin/bash\necho 'qsub: Unknown queue' >&2\nexit 170\n"}
    proc = _run_part(spec, tmp_path, 1, "75", "1.vm", stubs_extra=refusing, FACEFILL_QSUB_RETRY_DELAYS="0,0")
    state = read_chain_state(spec.run_dir)
    assert state.state == "stopped" and "could not submit part 2: qsub: Unknown queue" in state.reason, proc.stdout
    assert not (Path(spec.run_dir) / "jobs" / "owner.json").exists()


def test_evaluation_part_runs_through_the_script_and_reports_its_end(tmp_path):
    """A failed evaluation part ends the chain as "stopped" with its exit code, never left
    "evaluating"; a clean evaluation ends "evaluated"."""
    (tmp_path / "stubpkg").mkdir()
    (tmp_path / "stubpkg" / "stubeval.py").write_text("import sys\nprint(sys.argv[1:])\nsys.exit(3)\n")
    spec = _spec(tmp_path, then_evaluate=True, evaluate_module="stubeval")
    write_script(spec)
    ledger.append_event(spec.run_dir, "submit", 2, chain="c1", job_id="2.vm", executor="pbs", kind="evaluate")
    proc = _run_part(spec, tmp_path, 2, "0", "2.vm", mode="evaluate")
    state = read_chain_state(spec.run_dir)
    end = ledger.read_parts(spec.run_dir)[-1]
    assert end.kind == "evaluate" and end.exit_code != 0 and proc.returncode == end.exit_code, proc.stdout
    assert state.state == "stopped" and f"evaluation failed (exit {end.exit_code})" in state.reason
    assert not (Path(spec.run_dir) / "jobs" / "owner.json").exists()
    assert calls(tmp_path / "stublog", "singularity")[0].endswith(
        f" python -m stubeval --run-dir {spec.run_dir} --data {spec.data} --out {spec.run_dir}/eval --baseline navier-stokes")
    ending = end_part(spec, 3, "evaluate", "3.vm", 0)
    assert ending.next_kind is None and read_chain_state(spec.run_dir).state == "evaluated"


def test_a_part_that_finds_its_chain_cancelled_at_its_end_stops_cleanly(tmp_path):
    """jobs.cancel marks the chain first, then qdel's the job: the part stops with that reason and
    exit 0 (a cancelled chain is a clean stop, not a failed job)."""
    (tmp_path / "stubpkg").mkdir()
    chain_json = tmp_path / "run" / "jobs" / "chain.json"
    (tmp_path / "stubpkg" / "cancelled.py").write_text(  # jobs.cancel's mark lands while the trainer runs
        "import json, sys\n"
        "s = {'state': 'cancelled', 'reason': 'cancelled with jobs.cancel', 'chain': 'c1'}\n"
        f"json.dump(s, open({str(chain_json)!r}, 'w'))\n"
        f"json.dump({{'exit_code': 75, 'step': 10, 'message': 'stopped early (received SIGTERM)'}}, "
        f"open({str(tmp_path / 'run' / 'status.json')!r}, 'w'))\n"
        "sys.exit(75)\n")
    spec = _spec(tmp_path, trainer_module="cancelled")
    write_script(spec)
    proc = _run_part(spec, tmp_path, 1, "75", "1.vm")
    (end,) = [e for e in ledger.read_events(spec.run_dir) if e["event"] == "end"]
    assert (end["exit_code"], end["action"], end["reason"]) == (75, "stop", chain.CANCELLED_REASON), proc.stdout + proc.stderr
    assert proc.returncode == 0 and calls(tmp_path / "stublog", "qsub") == []
    assert read_chain_state(spec.run_dir).state == "cancelled"


def test_the_evaluation_part_reads_data_not_a_scratch_copy(tmp_path):
    """report.md names the shards the evaluation read: --data, never $SCRATCHDIR/facefill-shards."""
    (tmp_path / "stubpkg").mkdir()
    (tmp_path / "stubpkg" / "stubeval.py").write_text("import sys\nprint(sys.argv[1:])\n")
    spec = _spec(tmp_path, then_evaluate=True, evaluate_module="stubeval")
    write_script(spec)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = _run_part(spec, tmp_path, 2, "0", "2.vm", mode="evaluate", SCRATCHDIR=str(scratch))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (call,) = calls(tmp_path / "stublog", "singularity")
    assert f" --data {spec.data} " in call, call
    assert not (scratch / "facefill-shards").exists()


def test_a_site_without_a_scratch_helper_removes_what_the_part_staged(tmp_path):
    """generic-pbs has no clean_scratch: the part itself deletes its copy of the shards at its end."""
    spec = _spec(tmp_path, profile=load_profile("generic-pbs"))
    write_script(spec)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = _run_part(spec, tmp_path, 1, "0", "1.vm", SCRATCHDIR=str(scratch))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trainer = json.loads((Path(spec.run_dir) / "stub_calls.jsonl").read_text().splitlines()[0])
    assert trainer["argv"][trainer["argv"].index("--data") + 1] == str(scratch / "facefill-shards")  # staged
    assert list(scratch.iterdir()) == []  # and removed


def test_a_part_records_the_step_the_trainer_resumes_from_not_a_stale_status(tmp_path):
    """status.json is rewritten only when a trainer exits: after a trainer was killed outright it
    still names an older step, while the trainer resumes from its newest checkpoint. The start
    record ("resumed from step N" on the terminal, and the part's progress check) must say the
    checkpoint's step."""
    from inpaint.core.contract import STATUS_FILE
    from jobs.part import start as start_part

    spec = _spec(tmp_path)
    run = Path(spec.run_dir)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "step-000000900.pt").write_bytes(b"checkpoint")
    (run / "checkpoints" / "step-000000900.pt.tmp-123").write_bytes(b"half")  # a killed writer's temporary
    (run / STATUS_FILE).write_text(json.dumps({"state": "stopped", "exit_code": 75, "step": 559, "time": 0.0}))
    assert start_part(spec, 2, "train", "7.vm") is None
    started = [e for e in ledger.read_events(run) if e.get("event") == "start"]
    assert started[-1]["start_step"] == 900


def test_a_multi_node_part_that_died_before_the_trainer_wrote_is_not_judged_by_the_last_status(tmp_path):
    """Launchers (pbsdsh, srun + torchrun) do not pass 75 on, so a multi-node part takes its exit
    code from rank 0's status.json, but only from one written by this part: a rendezvous that
    failed leaves the previous part's "stopped (75)" there, which would resubmit a broken part."""
    from inpaint.core.contract import Outcome, write_status
    from jobs.part import start as start_part

    spec = _spec(tmp_path, nodes=2)
    write_status(Path(spec.run_dir), Outcome(75, "stopped at its time budget", step=40))  # part 1's
    stale = json.loads(Path(spec.run_dir, "status.json").read_text())
    stale["time"] = time.time() - 600  # written ten minutes before this part started
    Path(spec.run_dir, "status.json").write_text(json.dumps(stale))
    ledger.append_event(spec.run_dir, "submit", 2, chain="c1", job_id="2.vm", executor="pbs", kind="train")
    assert start_part(spec, 2, "train", "2.vm") is None
    ending = end_part(spec, 2, "train", "2.vm", 1)  # the launcher failed; the trainer never wrote
    part = [p for p in ledger.read_parts(spec.run_dir) if p.part == 2][0]
    assert part.exit_code == 1 and ending.decision.action == "stop", (part, ending.decision)
