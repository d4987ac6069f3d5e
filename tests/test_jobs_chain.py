"""The exit-code table is one definition: Python's decide() and the rendered PBS script agree.

The PBS side is proven by running the real rendered script under bash with stub qsub,
singularity and nvidia-smi on PATH and a stub trainer that exits with the code under test.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest

from jobs import chain, ledger
from jobs.chain_state import read_chain_state
from jobs.options import JobSpec
from jobs.pbs_script import render
from jobs.profiles import load_profile
from jobs.submit import _write_script
from test_jobs_support import REPO_ROOT, calls, fake_shards, make_stub_trainer, stub_bin, stub_env

CODES = (0, 75, 1, 2, 3, 137, 143, 255)


def test_python_table_matches_the_contract():
    assert chain.decide(0, 1, 5).action == chain.DONE
    assert chain.decide(0, 1, 5, then_evaluate=True).action == chain.EVALUATE
    assert chain.decide(75, 1, 5).action == chain.RESUBMIT
    assert chain.decide(75, 6, 5).action == chain.STOP  # 5 resubmissions happened already
    assert "--max-resubmits 5" in chain.decide(75, 6, 5).reason
    assert chain.decide(75, 2, 5, successor_queued=True).action == chain.CONTINUE
    assert chain.decide(75, 2, 5, progressed=False).action == chain.STOP
    assert "train.log" in chain.decide(1, 1, 5).reason
    assert "signal 9" in chain.decide(137, 1, 5).reason
    assert all(chain.decide(c, 1, 5).action == chain.STOP for c in (1, 2, 3, 255))


def test_bash_table_agrees_with_python_on_every_input(tmp_path):
    grid = list(itertools.product(CODES, (1, 3, 4), (0, 3), (0, 1), (0, 1), (0, 1)))
    lines = [chain.bash_decide_function()]
    lines += [f"facefill_decide {c} {p} {m} {e} {q} {g}" for c, p, m, e, q, g in grid]
    script = tmp_path / "decide.sh"
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True).stdout
    got = [tuple(line.split("\t", 1)) for line in out.splitlines()]
    want = [(d.action, d.reason) for d in (chain.decide(c, p, m, bool(e), bool(q), bool(g))
                                           for c, p, m, e, q, g in grid)]
    assert got == want


def _spec(tmp_path: Path, **over) -> JobSpec:
    image = tmp_path / "facefill.sif"
    image.write_text("stub image")
    base = dict(
        run_dir=str(tmp_path / "run"), config="smoke", data=str(fake_shards(tmp_path / "shards")),
        executor="pbs", name="ff-run", walltime_s=3600, time_limit_s=3000, max_resubmits=3,
        queue="gpu", ncpus=8, ngpus=1, mem="32gb", scratch="scratch_local=20gb", image=str(image),
        train_args=["--device", "cuda", "--max-steps", "30"], trainer_module="stubtrainer",
        python="python", project_root=str(REPO_ROOT), profile=load_profile("metacentrum"),
    )
    base.update(over)
    return JobSpec(**base)


def _run_part(spec: JobSpec, tmp_path: Path, part: int, plan: str, job_id: str, mode: str = "train",
              **env_extra: str) -> subprocess.CompletedProcess:
    bindir, log = stub_bin(tmp_path)
    stubs = make_stub_trainer(tmp_path / "stubpkg")
    env = stub_env(bindir, log, PYTHONPATH=str(stubs), STUB_PLAN=plan, PBS_JOBID=job_id,
                   PBS_O_WORKDIR=str(tmp_path), FACEFILL_PART=str(part), FACEFILL_MODE=mode, **env_extra)
    env.pop("SCRATCHDIR", None)
    env.update(env_extra)
    script = Path(spec.run_dir) / "jobs" / "facefill.pbs.sh"
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, cwd=tmp_path / "stubpkg")


@pytest.mark.parametrize("code,part,max_resubmits,then_evaluate", [
    (0, 1, 3, False), (0, 2, 3, True), (75, 1, 3, False), (75, 4, 3, False), (1, 1, 3, False),
    (2, 2, 3, False), (143, 1, 3, False),
])
def test_rendered_pbs_script_acts_like_decide(tmp_path, code, part, max_resubmits, then_evaluate):
    spec = _spec(tmp_path, max_resubmits=max_resubmits, then_evaluate=then_evaluate)
    script = _write_script(spec, render(spec))
    proc = _run_part(spec, tmp_path, part, str(code), f"{part}0.vm")
    log = tmp_path / "stublog"
    expected = chain.decide(code, part, max_resubmits, then_evaluate)
    end = [e for e in ledger.read_events(spec.run_dir) if e["event"] == "end"][-1]
    assert (end["action"], end["reason"], end["exit_code"]) == (expected.action, expected.reason, code), proc.stdout + proc.stderr
    qsubs = calls(log, "qsub")
    state = read_chain_state(spec.run_dir)
    if expected.action in (chain.RESUBMIT, chain.EVALUATE):
        mode = "evaluate" if expected.action == chain.EVALUATE else "train"
        assert qsubs == [f"-v FACEFILL_PART={part + 1},FACEFILL_MODE={mode} {script}"]
        assert state["state"] == ("evaluating" if mode == "evaluate" else "running")
        owner = json.loads((Path(spec.run_dir) / "jobs" / "owner.json").read_text())
        assert owner["job_id"] == "101.vm"  # the successor owns the run dir now
        assert proc.returncode == 0
    else:
        assert qsubs == []
        assert state["state"] == ("done" if expected.action == chain.DONE else "stopped")
        assert state["reason"] == expected.reason
        assert not (Path(spec.run_dir) / "jobs" / "owner.json").exists()
        assert proc.returncode == (0 if code == 0 else code)
    # the trainer ran inside the image with the contract's arguments and a GPU check before it
    sing = calls(log, "singularity")
    assert len(sing) == 1 and sing[0].startswith(f"exec --nv -B {spec.run_dir} ")
    assert f" {spec.image} python -m stubtrainer --config smoke --data {spec.data} --run-dir {spec.run_dir} --time-limit " in sing[0]
    assert sing[0].endswith("--device cuda --max-steps 30")
    assert calls(log, "nvidia-smi")


def test_pbs_chain_runs_to_the_end_through_self_resubmission(tmp_path):
    """qsub queues; the test plays the PBS server, running each queued part in turn."""
    spec = _spec(tmp_path, max_resubmits=5)
    _write_script(spec, render(spec))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    bindir, log = stub_bin(tmp_path, clean_scratch="#!/bin/bash\n" + 'printf "%s\\n" "$*" >> "$STUB_LOG/clean_scratch.calls"\n')
    part, job_id = 1, "100.vm"
    for _ in range(10):
        proc = _run_part(spec, tmp_path, part, "75,75,0", job_id, SCRATCHDIR=str(scratch))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        queued = sorted(log.glob("queued.*"), key=lambda p: int(p.suffix[1:]))
        if not queued:
            break
        args = queued[0].read_text()
        queued[0].unlink()
        part = int(re.search(r"FACEFILL_PART=(\d+)", args).group(1))
        job_id = f"{queued[0].suffix[1:]}.vm"
    parts = ledger.read_parts(spec.run_dir)
    assert [p["exit_code"] for p in parts] == [75, 75, 0]
    assert [p["job_id"] for p in parts] == ["100.vm", "101.vm", "102.vm"]
    assert [p["step"] for p in parts] == [10, 20, 30]
    assert read_chain_state(spec.run_dir)["state"] == "done"
    # shards were staged into scratch and the trainer read them from there; scratch was cleaned
    trainer_calls = [json.loads(l) for l in (Path(spec.run_dir) / "stub_calls.jsonl").read_text().splitlines()]
    assert all(c["argv"][c["argv"].index("--data") + 1] == str(scratch / "facefill-shards") for c in trainer_calls)
    assert (scratch / "facefill-shards" / "index.json").is_file()
    assert len(calls(log, "clean_scratch")) >= 3


def test_presubmitted_chain_part_skips_when_run_already_finished(tmp_path):
    spec = _spec(tmp_path, chain=3)
    _write_script(spec, render(spec))
    first = _run_part(spec, tmp_path, 1, "0", "1.vm")
    assert first.returncode == 0 and read_chain_state(spec.run_dir)["state"] == "done"
    second = _run_part(spec, tmp_path, 2, "0", "2.vm")
    assert second.returncode == 0 and "chain already ended" in second.stdout
    assert len((Path(spec.run_dir) / "stub_calls.jsonl").read_text().splitlines()) == 1


def test_presubmitted_part_does_not_qsub_again(tmp_path):
    spec = _spec(tmp_path, chain=3)
    _write_script(spec, render(spec))
    proc = _run_part(spec, tmp_path, 1, "75", "1.vm")
    assert proc.returncode == 0
    assert calls(tmp_path / "stublog", "qsub") == []
    assert read_chain_state(spec.run_dir)["state"] == "running"
    last = _run_part(spec, tmp_path, 3, "75", "3.vm")  # the last pre-submitted part hands on itself
    assert last.returncode == 0 and len(calls(tmp_path / "stublog", "qsub")) == 1


def test_stalled_part_stops_instead_of_looping(tmp_path):
    spec = _spec(tmp_path)
    _write_script(spec, render(spec))
    _run_part(spec, tmp_path, 1, "75", "1.vm", STUB_STEPS="10")
    proc = _run_part(spec, tmp_path, 2, "75", "2.vm", STUB_STEPS="0")
    assert read_chain_state(spec.run_dir)["state"] == "stopped"
    assert "made no progress" in read_chain_state(spec.run_dir)["reason"], proc.stdout
