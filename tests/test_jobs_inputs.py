"""What ``jobs.submit`` accepts, refuses and warns about before anything reaches a scheduler.

Every value that lands in a ``#PBS``/``#SBATCH`` directive or the job script is checked, so a
newline or a command substitution can never become a line the job runs; two submissions racing
for one run dir leave exactly one chain; a dry run works on any machine.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inpaint.core.errors import FacefillError
from jobs import submit
from jobs.options import build_parser, parse, resolve
from jobs_support import FIXTURES, REPO_ROOT, calls, fake_shards, stub_bin, stub_env, write_exe

BAD = {"newline": "\ntouch pwned #", "return": "\rtouch pwned", "dollar": "$(touch pwned)",
       "backtick": "`touch pwned`", "semicolon": ";touch pwned"}


def _paths(tmp_path: Path, bad: str) -> dict[str, Path]:
    """Real files and folders whose names carry ``bad``: the only fault is the name itself."""
    image = tmp_path / f"img{bad}.sif"
    image.write_text("x")
    config = tmp_path / f"cfg{bad}.yaml"
    config.write_text("name: smoke\n")
    return {"image": image, "config": config, "data": fake_shards(tmp_path / f"shards{bad}")}


# option -> value with the bad text in it (a function of the bad text and the created paths)
OPTIONS = {
    "--run-dir": lambda bad, tmp, p: str(tmp / f"run{bad}"),
    "--pbs-directive": lambda bad, tmp, p: f"-m ae{bad}",
    "--gpu-cap": lambda bad, tmp, p: f"compute_70{bad}",
    "--scratch": lambda bad, tmp, p: f"scratch_local=20gb{bad}",
    "--queue": lambda bad, tmp, p: f"gpu{bad}",
    "--name": lambda bad, tmp, p: f"job{bad}",
    "--image": lambda bad, tmp, p: str(p["image"]),
    "--data": lambda bad, tmp, p: str(p["data"]),
    "--config": lambda bad, tmp, p: str(p["config"]),
    "--walltime": lambda bad, tmp, p: f"01:00:00{bad}",
    "--mem": lambda bad, tmp, p: f"16gb{bad}",
    "--set": lambda bad, tmp, p: f"train.batch_size=8{bad}",
}


PBS_ONLY = ("--pbs-directive", "--gpu-cap", "--scratch", "--image")


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("option,executor", [(o, "pbs") for o in sorted(OPTIONS)]
                         + [(o, "slurm") for o in sorted(OPTIONS) if o not in PBS_ONLY])
def test_control_and_shell_characters_are_refused_naming_the_option(tmp_path, monkeypatch, option, kind, executor):
    bindir, log = stub_bin(tmp_path)
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    paths = _paths(tmp_path, BAD[kind])
    good_image = tmp_path / "good.sif"
    good_image.write_text("x")
    argv = {"--executor": executor, "--model": "smoke", "--data": str(fake_shards(tmp_path / "shards")),
            "--run-dir": str(tmp_path / "run"), "--walltime": "01:00:00"}
    if executor == "pbs":
        argv.update({"--profile": "metacentrum", "--image": str(good_image)})
    else:
        argv.update({"--queue": "debug"})
    if option == "--config":
        argv.pop("--model")
    argv[option] = OPTIONS[option](BAD[kind], tmp_path, paths)
    flat = [x for kv in argv.items() for x in kv]
    with pytest.raises(FacefillError) as info:
        submit.main(flat)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert option in message and "\n" not in message and "\r" not in message, message
    assert calls(log, "qsub") == [] and calls(log, "sbatch") == []
    assert not any(p.name.startswith("run") for p in tmp_path.iterdir()), "nothing may be written"
    assert not (tmp_path / "pwned").exists()


def test_injection_error_is_one_line_on_stderr_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.submit", "--executor", "pbs", "--profile", "generic-pbs", "--container",
         "none", "--dry-run", "--model", "smoke", "--data", str(fake_shards(tmp_path / "shards")),
         "--run-dir", str(tmp_path / "runs" / "nl\ntouch pwned #")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.startswith("error: --run-dir") and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == "" and not (tmp_path / "runs").exists()


SLOW_QSUB = "#!/bin/bash\n" + 'printf "%s\\n" "$*" >> "$STUB_LOG/qsub.calls"\nsleep 2\n' + r'''
n=$(( $(cat "$STUB_LOG/next_id" 2>/dev/null || echo 100) + 1 )); echo "$n" > "$STUB_LOG/next_id"
echo "$n.vm"
'''


def test_two_submits_racing_for_one_run_dir_leave_exactly_one_chain(tmp_path):
    """The owner check and the owner write are one atomic create: the loser names the holder."""
    running = (FIXTURES / "qstat_x_f_F_json.json").read_text()
    running = running.replace('"30.vm"', '"101.vm"').replace('"32.vm"', '"102.vm"')
    (tmp_path / "qstat.json").write_text(running)
    bindir, log = stub_bin(tmp_path, qsub=SLOW_QSUB)
    write_exe(bindir / "qstat", f"#!/bin/bash\ncat {tmp_path / 'qstat.json'}\n")
    image = tmp_path / "img.sif"
    image.write_text("x")
    argv = [sys.executable, "-m", "jobs.submit", "--executor", "pbs", "--profile", "metacentrum", "--model",
            "smoke", "--image", str(image), "--data", str(fake_shards(tmp_path / "shards")),
            "--run-dir", str(tmp_path / "run")]
    env = stub_env(bindir, log)
    procs = [subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    assert loser[2].startswith("error: ") and "owned by" in loser[2] and len(loser[2].strip().splitlines()) == 1
    assert len(calls(log, "qsub")) == 1


def test_a_stale_owner_of_a_dead_process_is_taken_over(tmp_path, monkeypatch):
    bindir, log = stub_bin(tmp_path)
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = tmp_path / "run" / "jobs" / "owner.json"
    owner.parent.mkdir(parents=True)
    owner.write_text(f'{{"executor": "local", "job_id": "{dead.pid}", "pid": {dead.pid}, "host": null}}\n')
    image = tmp_path / "img.sif"
    image.write_text("x")
    assert submit.main(["--executor", "pbs", "--profile", "metacentrum", "--model", "smoke", "--image", str(image),
                        "--data", str(fake_shards(tmp_path / "shards")), "--run-dir", str(tmp_path / "run")]) == 0
    assert '"101.vm"' in owner.read_text() and len(calls(log, "qsub")) == 1


def test_model_accepts_the_config_names_the_trainer_accepts():
    for given, config in (("2", "model2"), ("model2", "model2"), ("model3", "model3"), ("smoke", "smoke")):
        spec = resolve(parse(["--executor", "local", "--model", given]), check_paths=False)
        assert spec.config == config and spec.run_dir.endswith(f"runs/{config}")
    with pytest.raises(SystemExit):
        parse(["--model", "model9"])


def test_every_option_has_help():
    parser = build_parser()
    shown = [a for a in parser._actions if a.help != "==SUPPRESS=="]
    assert [a.option_strings for a in shown if not a.help] == []


@pytest.mark.parametrize("profile,needle", [("generic-pbs", "no Singularity image"),
                                            ("metacentrum", "Singularity image not found")])
def test_dry_run_works_anywhere_and_warns_for_each_path_it_could_not_check(tmp_path, profile, needle):
    """The user's own command plus --dry-run, on a machine without qsub, shards or the image."""
    env = {k: v for k, v in os.environ.items() if k != "FACEFILL_PROFILE"}
    env.update(PATH=str(Path(sys.executable).parent) + os.pathsep + "/usr/bin:/bin", PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "-m", "jobs.submit", "--queue", "gpu_long", "--model", "2", "--profile", profile]
    proc = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#!/bin/bash\n") and "#PBS -q gpu_long" in proc.stdout
    warnings = proc.stderr.strip().splitlines()
    assert all(w.startswith("warning: ") for w in warnings), warnings
    assert any("data folder not found" in w for w in warnings) and any(needle in w for w in warnings), warnings
    assert not (tmp_path / "runs").exists()
    real = subprocess.run([*cmd, "--executor", "pbs"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert real.returncode == 2 and real.stderr.startswith("error: ") and not (tmp_path / "runs").exists()


def test_then_evaluate_leaves_the_baseline_to_evaluate_and_sizes_for_it_when_opencv_is_importable(tmp_path, monkeypatch):
    """evaluate adds Navier–Stokes by itself where the node has OpenCV; an explicit --baseline
    would make a node without OpenCV fail (exit 2), so the command carries no baseline flag."""
    argv = ["--executor", "local", "--model", "2", "--then-evaluate", "--run-dir", str(tmp_path / "run")]
    spec = resolve(parse(argv), check_paths=False)
    assert spec.evaluate_argv() == ["inpaint.evaluate", "--run-dir", spec.run_dir, "--data", spec.data,
                                    "--out", str(Path(spec.run_dir) / "eval")]  # evaluate's default, cv2 in [dev]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cv2" else real_find_spec(name, *a))
    without = resolve(parse(argv), check_paths=False)
    assert without.evaluate_argv() == spec.evaluate_argv()
    assert without.eval_walltime_s < spec.eval_walltime_s  # one scored column instead of two


def test_a_world_size_change_is_passed_on_only_when_asked_for() -> None:
    """The trainer refuses to resume a checkpoint of another process count; a chain can say it
    means it, and the flag reaches every part's trainer command."""
    plain = resolve(parse(["--executor", "local", "--model", "smoke"]), check_paths=False)
    allowed = resolve(parse(["--executor", "local", "--model", "smoke", "--allow-world-size-change"]), check_paths=False)
    assert "--allow-world-size-change" not in plain.trainer_argv()
    assert "--allow-world-size-change" in allowed.trainer_argv()
