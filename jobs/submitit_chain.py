"""Local and SLURM chains through submitit's own executors.

Each part is a submitit job running :func:`run_part`: it starts the trainer CLI and hands the
rest to ``jobs.part`` (the decision and every record, exactly as the PBS script does) and, when
told to, submits its successor from inside the job — the same self-resubmission as on PBS, so
no process has to watch the chain.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from jobs import container
from jobs import part as chain_part
from jobs.paths import SUBMITIT_DIR, under
from jobs.spec import JobSpec

TIMEOUT_GRACE_MIN = 5  # submitit's hard kill comes this long after the part's walltime
# The sbatch script's shell ignores SIGTERM: on a plain `scancel` SLURM signals every process of the
# job, and a shell that dies of it ends the job at once, so SLURM SIGKILLs the trainer ~3 s later,
# before its checkpoint, and the part never records its end. Ignoring it (the Python below handles
# its own) leaves the trainer the whole KillWait to checkpoint and jobs.part to record why it
# stopped; SIGKILL still ends everything.
SLURM_SETUP = ["trap '' TERM  # facefill: the part checkpoints and records its end on SIGTERM (jobs/submitit_chain.py)"]


def make_executor(spec: JobSpec, kind: str = chain_part.TRAIN) -> Any:
    """A submitit executor for ``spec.executor`` ("local" or "slurm") with the part's resources;
    an evaluation part gets its own walltime."""
    import submitit

    folder = under(spec.run_dir, SUBMITIT_DIR)  # flat: <job id>_0_log.out beside the pickles
    executor = submitit.AutoExecutor(folder=folder, cluster=spec.executor)
    walltime_s = spec.eval_walltime_s if kind == chain_part.EVALUATE and spec.eval_walltime_s else spec.walltime_s
    params: dict[str, Any] = {
        "timeout_min": int(walltime_s // 60) + TIMEOUT_GRACE_MIN,
        "name": spec.name,
    }
    if spec.executor == "slurm":
        params.update(cpus_per_task=spec.ncpus, gpus_per_node=spec.ngpus or None, nodes=spec.nodes,
                      slurm_use_srun=False,  # a job inside srun cannot sbatch its successor reliably
                      slurm_setup=list(SLURM_SETUP))
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


def submit_part(spec: JobSpec, part: int, kind: str = chain_part.TRAIN) -> str:
    """Queue part ``part`` (or the evaluation) with submitit; its id. The caller records it
    (``jobs.part.record_submission`` for the first part, ``jobs.part.submitted`` for successors)."""
    from jobs.slurm_commands import refused_submission

    what = f"{'sbatch' if spec.executor == 'slurm' else 'submitit'} (part {part})"
    with refused_submission(under(spec.run_dir, SUBMITIT_DIR), what):  # a refusal: one line, no files left
        return str(make_executor(spec, kind).submit(run_part, spec, part, kind).job_id)


def _current_job_id() -> str:
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except RuntimeError:  # called outside submitit (tests, debugging)
        return f"pid-{os.getpid()}"


def _run(cmd: list[str], spec: JobSpec) -> tuple[int, str]:
    """Run a CLI (in the submission's image, if any) with the project importable; echo its output
    into the part's log.

    Returns (exit code, last non-empty output line — the trainer's one-line status).
    """
    cmd, container_env = container.wrap(spec, cmd)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (spec.project_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(container_env)
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


def run_part(spec: JobSpec, part: int, kind: str = chain_part.TRAIN) -> dict:
    """Body of one submitit job: start, run the trainer (or the evaluation), decide, hand on."""
    job_id = _current_job_id()
    skip = chain_part.guarded(spec, part, job_id, lambda: chain_part.start(spec, part, kind, job_id, pid=os.getpid()))
    if skip:
        print(f"[facefill] {skip}", flush=True)
        return {"exit_code": None, "action": "skip", "reason": skip}
    code, last = _run([spec.python, "-m", *chain_part.command(spec, part, kind, job_id)], spec)
    ending = chain_part.guarded(spec, part, job_id, lambda: chain_part.end(spec, part, kind, job_id, code, status_line=last))
    next_id = None
    if ending.next_kind:
        try:
            next_id = submit_part(spec, part + 1, ending.next_kind)
        except Exception as exc:  # the scheduler refused: say so in the run dir, do not lose the run
            error = str(exc)
            chain_part.guarded(spec, part, job_id, lambda: chain_part.submitted(spec, part, job_id, error=error))
            return {"exit_code": code, "action": "stop", "reason": error}
        chain_part.guarded(spec, part, job_id, lambda: chain_part.submitted(spec, part, job_id, next_job_id=next_id))
    return {"exit_code": code, "action": ending.decision.action, "reason": ending.decision.reason,
            "next_job_id": next_id}
