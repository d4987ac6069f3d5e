"""One owner per run dir: a second submission while a job still works on it is refused.

The owner file names the executor and the job id (PBS/SLURM) or process id (local). Liveness is
asked of the scheduler; a scheduler that cannot answer right now counts as "alive" — losing
track of a job must never let two chains write the same checkpoints.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from inpaint.atomic import write_json
from inpaint.errors import FacefillError
from inpaint.process import pid_alive
from jobs.ledger import now_iso
from jobs.paths import OWNER, under


class RunDirLockedError(FacefillError):
    """The run dir belongs to a job that is still queued or running."""


def read_owner(run_dir: Path | str) -> dict | None:
    try:
        data = json.loads(under(run_dir, OWNER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_owner(run_dir: Path | str, executor: str, job_id: str, pid: int | None = None) -> None:
    write_json(under(run_dir, OWNER), {"executor": executor, "job_id": str(job_id), "pid": pid,
                                       "host": socket.gethostname(), "time": now_iso()})


def release(run_dir: Path | str, job_id: str | None = None) -> None:
    """Drop the owner file (only if ``job_id`` still owns it, when given)."""
    owner = read_owner(run_dir)
    if owner is None or (job_id is not None and owner.get("job_id") != str(job_id)):
        return
    try:
        under(run_dir, OWNER).unlink()
    except FileNotFoundError:
        pass


def owner_alive(owner: dict) -> tuple[bool, str]:
    """(alive, how we know). Unanswerable questions count as alive."""
    executor = owner.get("executor")
    job_id = str(owner.get("job_id", ""))
    if executor == "local":
        if owner.get("host") not in (None, socket.gethostname()):
            return True, f"local process {job_id} on another host ({owner.get('host')})"
        pid = int(owner.get("pid") or job_id or 0)
        return (pid_alive(pid), f"local process {pid}") if pid > 0 else (False, "no pid")
    if executor == "pbs":
        from jobs.pbs_commands import QstatError, job_states
        try:
            states = job_states([job_id])
        except QstatError as exc:
            return True, f"PBS job {job_id} (qstat could not answer: {exc})"
        state = states.get(job_id)
        if state is None or state.state == "F":
            return False, f"PBS job {job_id}"
        return True, f"PBS job {job_id} (state {state.state})"
    if executor == "slurm":
        try:
            out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                                 text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return True, f"SLURM job {job_id} (squeue could not answer: {exc})"
        if out.returncode != 0:
            if "Invalid job id" in out.stderr:
                return False, f"SLURM job {job_id}"
            return True, f"SLURM job {job_id} (squeue failed: {out.stderr.strip()})"
        return bool(out.stdout.strip()), f"SLURM job {job_id} ({out.stdout.strip() or 'gone'})"
    return False, f"unknown executor {executor!r}"


def check_unlocked(run_dir: Path | str) -> None:
    """Raise RunDirLockedError when a live job owns ``run_dir``; clear a stale owner file."""
    owner = read_owner(run_dir)
    if owner is None:
        return
    alive, how = owner_alive(owner)
    if alive:
        raise RunDirLockedError(
            f"{under(run_dir, OWNER)}: run dir is owned by {how}; wait for it, cancel it with "
            f"`python -m jobs.cancel {run_dir}`, or pick another --run-dir")
    release(run_dir)
