"""Local and SLURM chains through submitit's own executors.

Each part is a submitit job running :func:`run_part`: it starts the trainer CLI, applies the
shared exit-code table (:func:`jobs.chain.decide`) and, on 75, submits its successor from inside
the job — the same self-resubmission as the PBS script, so no process has to watch the chain.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from jobs import chain, ledger, lock
from jobs.chain_state import read_chain_state, write_chain_state
from jobs.options import JobSpec
from jobs.paths import SUBMITIT_DIR, under

TIMEOUT_GRACE_MIN = 5  # submitit's hard kill comes this long after the part's walltime


def make_executor(spec: JobSpec) -> Any:
    """A submitit executor for ``spec.executor`` ("local" or "slurm") with the part's resources."""
    import submitit

    folder = under(spec.run_dir, SUBMITIT_DIR)  # flat: <job id>_0_log.out beside the pickles
    executor = submitit.AutoExecutor(folder=folder, cluster=spec.executor)
    params: dict[str, Any] = {
        "timeout_min": int(spec.walltime_s // 60) + TIMEOUT_GRACE_MIN,
        "name": spec.name,
    }
    if spec.executor == "slurm":
        params.update(cpus_per_task=spec.ncpus, gpus_per_node=spec.ngpus or None, nodes=spec.nodes,
                      slurm_use_srun=False)  # a job inside srun cannot sbatch its successor reliably
        if spec.queue:
            params["slurm_partition"] = spec.queue
        if spec.mem:
            params["mem_gb"] = _mem_gb(spec.mem)
        params = {k: v for k, v in params.items() if v is not None}
    elif spec.ngpus:
        params["gpus_per_node"] = spec.ngpus
    executor.update_parameters(**params)
    return executor


def _mem_gb(mem: str) -> float:
    units = {"kb": 1 / 1024**2, "mb": 1 / 1024, "gb": 1, "tb": 1024, "b": 1 / 1024**3}
    text = mem.lower()
    for unit, factor in units.items():
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * factor, 3)
    return float(text)


def submit_part(spec: JobSpec, part: int, kind: str = "train") -> str:
    """Submit part ``part`` (or the evaluation); record it in the ledger and as the run dir's owner."""
    job = make_executor(spec).submit(run_part, spec, part, kind)
    job_id = str(job.job_id)
    ledger.append_event(spec.run_dir, "submit", part, job_id=job_id, executor=spec.executor, kind=kind)
    lock.write_owner(spec.run_dir, spec.executor, job_id, pid=int(job_id) if spec.executor == "local" else None)
    return job_id


def _current_job_id(spec: JobSpec) -> str:
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except RuntimeError:  # called outside submitit (tests, debugging)
        return f"pid-{os.getpid()}"


def _run(cmd: list[str], spec: JobSpec) -> tuple[int, str]:
    """Run a CLI with the project importable; echo its output into the part's log.

    Returns (exit code, last non-empty output line — the trainer's one-line status).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (spec.project_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    print("[facefill] $ " + " ".join(cmd), flush=True)
    last = ""
    with subprocess.Popen(cmd, env=env, cwd=spec.project_root, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.strip():
                last = line.strip()
    code = proc.returncode
    return (128 - code if code < 0 else code), last[:300]  # killed by signal N: 128+N, as a shell says


def run_part(spec: JobSpec, part: int, kind: str = "train") -> dict:
    """Body of one submitit job: train (or evaluate), then decide and hand on."""
    run_dir = spec.run_dir
    job_id = _current_job_id(spec)
    if read_chain_state(run_dir).get("state") in ("cancelled",):
        return {"exit_code": None, "action": chain.STOP, "reason": "cancelled before start"}
    ledger.append_event(run_dir, "start", part, job_id=job_id, executor=spec.executor,
                        host=socket.gethostname(), kind=kind, pid=os.getpid())
    lock.write_owner(run_dir, spec.executor, job_id, pid=int(job_id) if job_id.isdigit() and spec.executor == "local" else None)

    if kind == "evaluate":
        code, last = _run([spec.python, "-m", "inpaint.evaluate", "--run-dir", run_dir, "--data", spec.data,
                           "--out", str(Path(run_dir) / "eval")], spec)
        ledger.append_event(run_dir, "end", part, exit_code=code, kind=kind, status_line=last)
        if code == 0:
            write_chain_state(run_dir, "evaluated", f"evaluation written to {run_dir}/eval", part, code, job_id, spec.executor)
        else:
            write_chain_state(run_dir, "stopped", f"evaluation failed (exit {code}): read {run_dir}/jobs/submitit",
                              part, code, job_id, spec.executor)
        lock.release(run_dir, job_id)
        return {"exit_code": code, "action": chain.DONE if code == 0 else chain.STOP}

    step_before = ledger.read_status_json(run_dir).get("step")
    code, last = _run(spec.trainer_command(), spec)
    step = ledger.read_status_json(run_dir).get("step")
    progressed = step_before is None or step is None or step > step_before
    decision = chain.decide(code, part, spec.max_resubmits, spec.then_evaluate, progressed=progressed)
    action, reason = decision.action, decision.reason
    if action == chain.RESUBMIT and read_chain_state(run_dir).get("state") == "cancelled":
        action, reason = chain.STOP, "cancelled with jobs.cancel"
    ledger.append_event(run_dir, "end", part, exit_code=code, step=step, action=action, reason=reason,
                        status_line=last)
    print(f"[facefill] part {part}: trainer exit {code} at step {step}: {action} ({reason})", flush=True)

    next_id = None
    if action in (chain.RESUBMIT, chain.EVALUATE):
        kind_next = "evaluate" if action == chain.EVALUATE else "train"
        try:
            next_id = submit_part(spec, part + 1, kind_next)
        except Exception as exc:  # the scheduler refused: say so in the run dir, do not lose the run
            write_chain_state(run_dir, "stopped", f"could not submit part {part + 1}: {exc}; run jobs.submit again",
                              part, code, job_id, spec.executor)
            lock.release(run_dir, job_id)
            return {"exit_code": code, "action": chain.STOP, "reason": str(exc)}
        state = "evaluating" if action == chain.EVALUATE else "running"
        write_chain_state(run_dir, state, f"{reason}; part {part + 1} is {next_id}", part, code, job_id, spec.executor)
    elif action == chain.DONE:
        write_chain_state(run_dir, "done", reason, part, code, job_id, spec.executor)
        lock.release(run_dir, job_id)
    else:
        if read_chain_state(run_dir).get("state") != "cancelled":  # keep the user's word for it
            write_chain_state(run_dir, "stopped", reason, part, code, job_id, spec.executor)
        lock.release(run_dir, job_id)
    return {"exit_code": code, "step": step, "action": action, "reason": reason, "next_job_id": next_id}
