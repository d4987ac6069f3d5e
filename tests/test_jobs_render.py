"""Rendered PBS scripts: one full golden script, the directive block of every other case, and the
submit-time errors that submit nothing.

Regenerate the golden file after an intended change with FACEFILL_UPDATE_GOLDEN=1 (the test then
skips, telling you to review the diff: a rewritten file is never compared with itself).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from inpaint.core.errors import ConfigError, DataError
from jobs import submit
from jobs.chain_state import read_chain_state
from jobs.options import parse, resolve
from jobs.pbs import QsubError
from jobs.pbs_script import render
from jobs_support import FIXTURES, calls, fake_shards, stub_bin, stub_env, write_exe

GOLDEN = Path(__file__).resolve().parent / "golden" / "gpu_long.pbs.sh"
RUN = "/storage/brno2/home/jdoe/facefill/runs"
DATA = "/storage/brno2/home/jdoe/facefill/data/shards/128"
LOGS = f"#PBS -o {RUN}/case/logs/"
SELECT = "#PBS -l select=1:ncpus=8:ngpus=1:mem=32gb:scratch_local=20gb"

# case -> (options, its #PBS block)
CASES = {
    "gpu": (["--model", "2"],
            ["#PBS -N ff-case", "#PBS -q gpu", SELECT, "#PBS -l walltime=24:00:00", "#PBS -j oe", LOGS]),
    "gpu_long": (["--model", "3", "--queue", "gpu_long", "--then-evaluate"],
                 ["#PBS -N ff-case", "#PBS -q gpu_long", SELECT, "#PBS -l walltime=336:00:00", "#PBS -j oe", LOGS]),
    "custom_resources": (["--model", "1", "--walltime", "12:00:00", "--ncpus", "16", "--mem", "64gb",
                          "--scratch", "scratch_ssd=50gb", "--gpu-cap", "compute_80",
                          "--set", "train.batch_size=8", "--max-resubmits", "5"],
                         ["#PBS -N ff-case", "#PBS -q gpu",
                          "#PBS -l select=1:ncpus=16:ngpus=1:mem=64gb:scratch_ssd=50gb:gpu_cap=compute_80",
                          "#PBS -l walltime=12:00:00", "#PBS -j oe", LOGS]),
    "extra_directives": (["--model", "2", "--pbs-directive", "-m ae", "--pbs-directive", "-A open-24-7"],
                         ["#PBS -m ae", "#PBS -A open-24-7", "#PBS -N ff-case", "#PBS -q gpu", SELECT,
                          "#PBS -l walltime=24:00:00", "#PBS -j oe", LOGS]),
    "container_none": (["--model", "2", "--container", "none", "--profile", "generic-pbs"],
                       ["#PBS -N ff-case", "#PBS -q gpu", "#PBS -l select=1:ncpus=4:ngpus=1:mem=16gb",
                        "#PBS -l walltime=24:00:00", "#PBS -j oe", LOGS]),
    "multi_gpu": (["--model", "2", "--ngpus", "2"],
                  ["#PBS -N ff-case", "#PBS -q gpu", SELECT.replace("ngpus=1", "ngpus=2"), "#PBS -l walltime=24:00:00",
                   "#PBS -j oe", LOGS]),
    "multi_node": (["--model", "2", "--nodes", "2", "--ngpus", "2", "--scratch", "none"],
                   ["#PBS -N ff-case", "#PBS -q gpu", "#PBS -l select=2:ncpus=8:ngpus=2:mem=32gb",
                    "#PBS -l walltime=24:00:00", "#PBS -l place=scatter", "#PBS -j oe", LOGS]),
    "chain": (["--model", "2", "--chain", "4"],
              ["#PBS -N ff-case", "#PBS -q gpu", SELECT, "#PBS -l walltime=24:00:00", "#PBS -j oe", LOGS]),
}


def _resolve_case(argv: list[str]):
    args = parse([*argv, "--executor", "pbs", "--data", DATA, "--run-dir", f"{RUN}/case"]
                 + ([] if "--profile" in argv else ["--profile", "metacentrum"]))
    spec = resolve(args, check_paths=False)
    spec = replace(spec, project_root="/storage/brno2/home/jdoe/facefill")  # machine-independent golden files
    if spec.image is None:
        spec = replace(spec, python="/storage/brno2/home/jdoe/venv/bin/python")
    return spec


def _render_case(argv: list[str]) -> str:
    return render(_resolve_case(argv))


def check_golden(text: str, golden: Path) -> None:
    """Compare with the golden file; with FACEFILL_UPDATE_GOLDEN set, rewrite it and skip instead."""
    if os.environ.get("FACEFILL_UPDATE_GOLDEN"):
        golden.write_text(text)
        pytest.skip(f"{golden} rewritten: review the diff, then run again without FACEFILL_UPDATE_GOLDEN")
    assert text == golden.read_text(), f"{golden} differs; FACEFILL_UPDATE_GOLDEN=1 rewrites it after review"


def test_updating_a_golden_file_never_passes_as_a_comparison(tmp_path, monkeypatch):
    golden = tmp_path / "g.sh"
    golden.write_text("old\n")
    monkeypatch.setenv("FACEFILL_UPDATE_GOLDEN", "1")
    with pytest.raises(pytest.skip.Exception, match="rewritten"):
        check_golden("new\n", golden)
    assert golden.read_text() == "new\n"


def test_full_script_matches_its_golden_file_and_parses(tmp_path):
    text = _render_case(CASES["gpu_long"][0])
    check_golden(text, GOLDEN)
    script = tmp_path / "s.sh"
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_directive_block_of_each_case(case, tmp_path):
    options, block = CASES[case]
    text = _render_case(options)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1:1 + len(block)] == block
    assert not any(line.startswith("#PBS") for line in lines[1 + len(block):])  # qsub reads only the top block


def test_one_time_budget_from_the_profile_margin():
    """walltime - the site profile's margin, computed once; parts turn it into the trainer's deadline."""
    assert _resolve_case(CASES["custom_resources"][0]).time_limit_s == 12 * 3600 - 15 * 60
    spec = _resolve_case(CASES["gpu_long"][0])
    assert spec.time_limit_s == 336 * 3600 - 15 * 60
    # the evaluation part has its own walltime: minutes, not the training queue's 336 hours
    assert 5 * 60 <= spec.eval_walltime_s <= 60 * 60
    assert _resolve_case(CASES["gpu"][0]).eval_walltime_s == 0


def test_scale_options_reach_the_script():
    assert "NGPUS=2" in _render_case(CASES["multi_gpu"][0])
    assert "NODES=2" in _render_case(CASES["multi_node"][0])


def _submit_env(tmp_path, monkeypatch, qsub_text=None):
    bindir, log = stub_bin(tmp_path, **({"qsub": qsub_text} if qsub_text else {}))
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    return log


def _argv(tmp_path, *extra):
    image = tmp_path / "img.sif"
    image.write_text("x")
    return ["--executor", "pbs", "--profile", "metacentrum", "--model", "smoke", "--image", str(image),
            "--data", str(fake_shards(tmp_path / "shards")), "--run-dir", str(tmp_path / "run"), *extra]


def test_submit_writes_script_and_records_the_job(tmp_path, monkeypatch, capsys):
    log = _submit_env(tmp_path, monkeypatch)
    assert submit.main(_argv(tmp_path)) == 0
    script = tmp_path / "run" / "jobs" / "facefill.pbs.sh"
    chain = read_chain_state(tmp_path / "run").chain  # this submission's id, which every part carries
    assert calls(log, "qsub") == [f"-v FACEFILL_PART=1,FACEFILL_MODE=train,FACEFILL_CHAIN={chain} {script}"]
    assert "submitted 101.vm" in capsys.readouterr().out
    # a second submission while 101.vm is alive (stub qstat answers R) is refused, nothing queued
    running = (FIXTURES / "qstat_x_f_F_json.json").read_text().replace('"30.vm"', '"101.vm"')
    (tmp_path / "qstat.json").write_text(running)
    write_exe(tmp_path / "stubbin" / "qstat", f"#!/bin/bash\ncat {tmp_path / 'qstat.json'}\n")
    with pytest.raises(submit.lock.RunDirLockedError, match=r"owned by PBS job 101.vm \(state R\)"):
        submit.main(_argv(tmp_path))
    assert len(calls(log, "qsub")) == 1


def test_chain_presubmits_parts_with_afterany(tmp_path, monkeypatch):
    log = _submit_env(tmp_path, monkeypatch)
    assert submit.main(_argv(tmp_path, "--chain", "3")) == 0
    script = tmp_path / "run" / "jobs" / "facefill.pbs.sh"
    chain = read_chain_state(tmp_path / "run").chain
    assert calls(log, "qsub") == [
        f"-v FACEFILL_PART=1,FACEFILL_MODE=train,FACEFILL_CHAIN={chain} {script}",
        f"-W depend=afterany:101.vm -v FACEFILL_PART=2,FACEFILL_MODE=train,FACEFILL_CHAIN={chain} {script}",
        f"-W depend=afterany:102.vm -v FACEFILL_PART=3,FACEFILL_MODE=train,FACEFILL_CHAIN={chain} {script}",
    ]


@pytest.mark.parametrize("fixture,needle", [("qsub_unknown_queue.txt", "Unknown queue"),
                                            ("qsub_bad_walltime.txt", "Illegal attribute or resource value")])
def test_qsub_refusal_shows_its_message(tmp_path, monkeypatch, fixture, needle):
    message, rc = (FIXTURES / fixture).read_text().strip().rsplit("\nrc=", 1)
    _submit_env(tmp_path, monkeypatch, f"#!/bin/bash\necho '{message}' >&2\nexit {rc}\n")
    with pytest.raises(QsubError, match=rf"qsub refused .*facefill.pbs.sh \(exit {rc}\): qsub: {needle}"):
        submit.main(_argv(tmp_path))
    assert not (tmp_path / "run" / "jobs" / "owner.json").exists()
    assert not (tmp_path / "run" / "jobs" / "chain.json").exists()


@pytest.mark.parametrize("extra,error,needle", [
    (["--queue", "gpu_huge"], ConfigError, "--queue 'gpu_huge' is unknown to profile metacentrum.*gpu_long"),
    (["--walltime", "25:00:00"], ConfigError, "exceeds queue gpu's limit 24:00:00"),
    (["--walltime", "1 day"], ConfigError, "not a walltime"),
    (["--image", "/nonexistent/img.sif"], DataError, "Singularity image not found"),
    (["--data", "/nonexistent/shards"], DataError, "data folder not found"),
    (["--mem", "lots"], ConfigError, "--mem 'lots': write a PBS size"),
])
def test_bad_input_is_one_clear_line_and_nothing_submitted(tmp_path, monkeypatch, extra, error, needle):
    log = _submit_env(tmp_path, monkeypatch)
    with pytest.raises(error, match=needle) as info:
        submit.main(_argv(tmp_path) + extra)
    assert "\n" not in str(info.value)
    assert calls(log, "qsub") == []


def test_cli_prints_error_line_and_exits_2(tmp_path):
    proc = subprocess.run(
        ["python", "-m", "jobs.submit", "--executor", "local", "--model", "smoke", "--data", str(tmp_path / "none")],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "data folder not found" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_queue_without_a_scheduler_on_path_never_trains_here(tmp_path, monkeypatch, capsys):
    """`--queue` asks for a scheduler. With no qsub on PATH (a login node without the PBS module,
    a laptop) a dry run shows the PBS script, and a real submit is an error — not a 90-epoch
    training quietly started by the local executor."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no qsub, no sbatch
    shards = fake_shards(tmp_path / "shards")
    base = ["--model", "2", "--queue", "gpu_long", "--data", str(shards), "--run-dir", str(tmp_path / "run"),
            "--profile", "generic-pbs", "--container", "none"]
    assert submit.main([*base, "--dry-run"]) == 0
    script = capsys.readouterr().out
    assert "#PBS -q gpu_long" in script and "inpaint.train" in script
    with pytest.raises(ConfigError, match="--queue gpu_long needs a scheduler, but qsub is not on PATH"):
        submit.main(base)
    assert not (tmp_path / "run").exists()
    # without --queue the local executor is still the default, and an explicit choice always wins
    assert resolve(parse(["--model", "smoke", "--data", str(shards)]), check_paths=False).executor == "local"
    assert resolve(parse([*base, "--executor", "pbs"]), check_paths=False).executor == "pbs"
