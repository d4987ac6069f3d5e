"""The submitit PBS plugin: discovery, scripts, states from real qstat output, and full round trips
through a stub PBS server whose qsub really runs the submitted script."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import submitit
from submitit.core import utils as submitit_utils

from jobs.submitit_pbs import PBSExecutor, PBSInfoWatcher, PBSJob, PBSJobEnvironment
from jobs.submitit_pbs.executor import make_qsub_script
from jobs.submitit_pbs.requeue import requeue_record
from jobs_support import FIXTURES, calls, stub_env, stub_pbs_server


@pytest.fixture()
def pbs_server(tmp_path, monkeypatch):
    bindir, log = stub_pbs_server(tmp_path)
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    # the job unpickles functions defined in this test module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    PBSJob.watcher.clear()
    PBSJob.watcher._registered.clear()
    return log


def add(a: int, b: int) -> int:
    return a + b


def explode(message: str) -> None:
    raise ValueError(message)


def where_am_i() -> dict:
    env = submitit.JobEnvironment()
    return {"cluster": env.cluster, "job_id": env.job_id, "nodes": env.num_nodes}


class SlowCounter(submitit.helpers.Checkpointable):
    """Counts to ``n`` slowly; at the timeout signal it checkpoints its progress and is requeued."""

    def __init__(self) -> None:
        self.done = 0
        self.jobs: list[str] = []

    def __call__(self, n: int) -> tuple[int, list[str]]:
        import os
        self.jobs.append(os.environ["PBS_JOBID"])
        while self.done < n:
            time.sleep(0.25)
            self.done += 1
        return self.done, self.jobs


def test_plugin_is_discovered_by_submitit():
    from submitit.core import plugins
    assert plugins.get_executors()["pbs"] is PBSExecutor
    assert isinstance(plugins.get_job_environments()["pbs"], PBSJobEnvironment)


def test_auto_executor_parameters_become_pbs_directives(pbs_server, tmp_path):
    ex = submitit.AutoExecutor(tmp_path / "sub" / "%j", cluster="pbs")
    ex.update_parameters(timeout_min=90, gpus_per_node=2, cpus_per_task=8, mem_gb=16, name="my job",
                         pbs_queue="gpu", pbs_select_extra="scratch_local=10gb", pbs_gpu_cap="compute_70",
                         pbs_additional_directives=["-m ae"])
    job = ex.submit(add, 1, 2)
    text = job.paths.submission_file.read_text()
    pbs = [line for line in text.splitlines() if line.startswith("#PBS")]
    assert pbs[0] == "#PBS -m ae"
    assert "#PBS -q gpu" in pbs and "#PBS -N my_job" in pbs
    assert "#PBS -l select=1:ncpus=8:ngpus=2:mem=16gb:scratch_local=10gb:gpu_cap=compute_70" in pbs
    assert "#PBS -l walltime=01:30:00" in pbs
    assert "sleep 5310" in text  # USR2 90 s before the walltime: PBS itself gives no warning
    assert job.job_id == "1.vm"
    assert [Path(c).resolve() for c in calls(pbs_server, "qsub")] == [job.paths.submission_file]
    assert job.result() == 3
    with pytest.raises(NameError, match="Unknown argument 'colour'"):
        ex.update_parameters(pbs_colour="blue")


def test_result_and_exception_round_trip(pbs_server, tmp_path):
    refreshes_before = PBSJob.watcher.num_calls
    ex = submitit.AutoExecutor(tmp_path / "sub", cluster="pbs")
    ex.update_parameters(timeout_min=5)
    ok, bad, env = ex.submit(add, 20, 22), ex.submit(explode, "boom at step 7"), ex.submit(where_am_i)
    assert ok.result() == 42
    assert env.result() == {"cluster": "pbs", "job_id": env.job_id, "nodes": 1}
    error = bad.exception()
    assert isinstance(error, submitit_utils.FailedJobError) and "ValueError: boom at step 7" in str(error)
    with pytest.raises(submitit_utils.FailedJobError):
        bad.result()
    deadline = time.monotonic() + 20
    while ok.state != "COMPLETED" and time.monotonic() < deadline:
        PBSJob.watcher.update()
        time.sleep(0.2)
    assert ok.state == "COMPLETED" and ok.done()
    # one batched qstat per refresh for every job still pending then (which ones depends on how
    # fast the jobs ran: on a busy machine a refresh can come between two submissions), never one
    # call per job
    ids = {ok.job_id, bad.job_id, env.job_id}
    seen = calls(pbs_server, "qstat")
    assert len(seen) == PBSJob.watcher.num_calls - refreshes_before, seen
    assert all(c.startswith("-x -f -F json ") and set(c.split()[4:]) <= ids for c in seen), seen


def test_checkpointable_job_is_requeued_before_walltime_and_resumes(pbs_server, tmp_path):
    # a loaded machine may spend seconds starting each job: room for requeues that make little progress
    ex = submitit.AutoExecutor(tmp_path / "sub", cluster="pbs", pbs_max_num_timeout=10)
    ex.update_parameters(pbs_walltime="00:00:10", pbs_signal_delay_s=3)  # USR2 after 7 s
    job = ex.submit(SlowCounter(), 32)  # 8 s of work: needs at least one requeue
    done, jobs = job.result()
    assert done == 32
    requeued = requeue_record(job.paths.folder, job.job_id).read_text().split()
    assert len(requeued) >= 1 and jobs == [job.job_id, *requeued]
    assert job.current_job_id() == requeued[-1]
    qsubs = calls(pbs_server, "qsub")
    assert qsubs[1] == f"-v SUBMITIT_PBS_ORIGIN={job.job_id} {job.paths.submission_file}"


def test_cancel_deletes_the_current_job(pbs_server, tmp_path):
    ex = submitit.AutoExecutor(tmp_path / "sub", cluster="pbs")
    ex.update_parameters(timeout_min=5)
    job = ex.submit(time.sleep, 30)
    deadline = time.monotonic() + 20
    while not (pbs_server / "jobs" / f"{job.job_id}.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    job.cancel()
    assert calls(pbs_server, "qdel") == [job.job_id]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (pbs_server / "jobs" / f"{job.job_id}.state").read_text().startswith(("Q", "R")):
        time.sleep(0.2)
    PBSJob.watcher.update()
    assert job.state == "CANCELLED"


def test_watcher_reads_recorded_qstat_output():
    info = PBSInfoWatcher().read_info((FIXTURES / "qstat_x_f_F_json.json").read_text())
    assert info["1.vm"]["State"] == "COMPLETED"
    assert info["2.vm"]["State"] == "TIMEOUT"          # Exit_status -29
    assert info["3.vm"]["State"] == "FAILED"           # the script exited 3
    assert info["10.vm"]["State"] == "CANCELLED"       # 256 + SIGTERM (qdel)
    assert info["9.vm"]["State"] == "FAILED"           # 256 + SIGUSR1
    assert info["17.vm"]["State"] == "CANCELLED"       # deleted before it ran
    assert [info[j]["State"] for j in ("30.vm", "31.vm", "32.vm")] == ["RUNNING", "PENDING", "PENDING"]


def test_unknown_and_unreachable_jobs_are_not_done(pbs_server):
    watcher = PBSInfoWatcher()
    assert not watcher.is_done("99999.vm", mode="force")  # unknown id: UNKNOWN, not finished
    assert watcher.get_state("99999.vm", mode="cache") == "UNKNOWN"


def test_bad_parameters_are_refused_before_submission(tmp_path, pbs_server):
    with pytest.raises(ValueError, match="not a walltime"):
        make_qsub_script("true", tmp_path, walltime="soon")
    ex = PBSExecutor(tmp_path)
    with pytest.raises(ValueError, match="one task per job"):
        ex.update_parameters(tasks_per_node=4)
    assert calls(pbs_server, "qsub") == []


# Every parameter that reaches a #PBS directive, under the name the user passes it as.
DIRECTIVE_PARAMETERS = {"pbs_queue": "gpu", "pbs_account": "proj1", "pbs_gpu_cap": "compute_70",
                        "pbs_select_extra": "scratch_local=10gb", "pbs_additional_directives": ["-m ae"]}
HOSTILE_VALUES = ("\ntouch pwned #", "\rtouch pwned", "x$(touch pwned)", "x`touch pwned`", "x; touch pwned")


@pytest.mark.parametrize("parameter", sorted(DIRECTIVE_PARAMETERS))
@pytest.mark.parametrize("hostile", HOSTILE_VALUES, ids=("newline", "cr", "dollar-paren", "backtick", "semicolon"))
def test_hostile_parameter_values_are_refused_naming_the_parameter(pbs_server, tmp_path, parameter, hostile):
    from inpaint.core.errors import FacefillError

    ex = submitit.AutoExecutor(tmp_path / "sub", cluster="pbs")
    ex.update_parameters(timeout_min=5, **DIRECTIVE_PARAMETERS)  # the good values pass
    bad = [hostile] if parameter == "pbs_additional_directives" else hostile
    with pytest.raises(ValueError) as info:
        ex.update_parameters(**{parameter: bad})
    assert isinstance(info.value, FacefillError)
    message = str(info.value)
    assert parameter in message and len(message.splitlines()) == 1, message
    assert calls(pbs_server, "qsub") == [] and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("hostile", HOSTILE_VALUES, ids=("newline", "cr", "dollar-paren", "backtick", "semicolon"))
def test_hostile_text_mem_is_refused(pbs_server, tmp_path, hostile):
    ex = PBSExecutor(tmp_path / "sub")  # AutoExecutor's mem_gb is numeric; the executor's own mem is text
    with pytest.raises(ValueError, match="^mem="):
        ex.update_parameters(mem="16gb" + hostile)
    assert calls(pbs_server, "qsub") == []


@pytest.mark.parametrize("hostile", HOSTILE_VALUES, ids=("newline", "cr", "dollar-paren", "backtick", "semicolon"))
def test_hostile_folder_is_refused_before_anything_is_written(pbs_server, tmp_path, hostile):
    folder = tmp_path / f"sub{hostile}"
    with pytest.raises(ValueError, match="folder") as info:
        submitit.AutoExecutor(folder, cluster="pbs")
    assert len(str(info.value).splitlines()) == 1
    assert calls(pbs_server, "qsub") == [] and not folder.exists()


def test_watcher_gets_every_state_from_a_server_that_answers_only_the_first_id(tmp_path, monkeypatch):
    """OpenPBS 23.06 answers a multi-id qstat with the first job only; the watcher still learns all."""
    import sys

    from test_jobs_pbs_commands import FIRST_ID_ONLY, QSTAT_JSON
    from jobs_support import stub_bin, write_exe

    bindir, log = stub_bin(tmp_path)
    write_exe(bindir / "qstat", f'#!/bin/bash\nexec {sys.executable} "$0.py" "$@"\n')
    (bindir / "qstat.py").write_text(f"import sys; sys.argv[0] = {str(bindir / 'qstat')!r}\n" + FIRST_ID_ONLY)
    (bindir / "qstat.json").write_text(QSTAT_JSON.read_text())
    for key, value in stub_env(bindir, log).items():
        monkeypatch.setenv(key, value)
    watcher = PBSInfoWatcher()
    for job_id in ("1.vm", "2.vm", "30.vm"):
        watcher.register_job(job_id)
    watcher.update()
    assert [watcher.get_state(j, mode="cache") for j in ("1.vm", "2.vm", "30.vm")] == ["COMPLETED", "TIMEOUT", "RUNNING"]
