"""One owner per run dir: a second submission while a job still works on it is refused.

The owner file names the executor and the job id (PBS/SLURM) or process id (local). A submission
takes the run dir with an atomic create (:func:`claim`: the file appears complete or not at all,
and only one of two racing submits gets it); the jobs of the chain then hand it on. Liveness is
asked of the scheduler; a scheduler that cannot answer right now counts as "alive" — losing
track of a job must never let two chains write the same checkpoints.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from inpaint.atomic import tmp_name, write_json
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


def owner_record(executor: str, job_id: str, pid: int | None = None) -> dict:
    return {"executor": executor, "job_id": str(job_id), "pid": pid, "host": socket.gethostname(), "time": now_iso()}


def write_owner(run_dir: Path | str, executor: str, job_id: str, pid: int | None = None) -> None:
    write_json(under(run_dir, OWNER), owner_record(executor, job_id, pid))


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
            state = job_states([job_id]).get(job_id)
        except QstatError as exc:
            return True, f"PBS job {job_id} (qstat could not answer: {exc})"
        if state is None or state.finished:
            return False, f"PBS job {job_id}"
        return True, f"PBS job {job_id} (state {state.state})"
    if executor == "slurm":
        from jobs.slurm_commands import SlurmQueryError, job_state
        try:
            job = job_state(job_id)
        except SlurmQueryError as exc:
            return True, f"SLURM job {job_id} (SLURM could not answer: {exc})"
        if job is None or job.ended:
            return False, f"SLURM job {job_id}"
        return True, f"SLURM job {job_id} ({job.describe()})"
    return False, f"unknown executor {executor!r}"


def _locked_error(run_dir: Path | str, how: str) -> RunDirLockedError:
    return RunDirLockedError(
        f"{under(run_dir, OWNER)}: run dir is owned by {how}; wait for it, cancel it with "
        f"`python -m jobs.cancel {run_dir}`, or pick another --run-dir")


def _create(path: Path, record: dict) -> bool:
    """Create ``path`` holding ``record`` unless it exists: written under a temporary name, then
    hard-linked (``link`` fails on an existing name, like ``O_EXCL``), so it is never seen half-written."""
    tmp = tmp_name(path)
    write_json(tmp, record)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, stale: dict) -> None:
    """Move a dead owner's file aside; put back what was moved if it was not the stale one (another
    submit took the run dir in between)."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        moved = json.loads(aside.read_text())
    except (OSError, json.JSONDecodeError):
        moved = None
    if moved != stale:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def claim(run_dir: Path | str) -> None:
    """Take ``run_dir`` for this process, atomically; RunDirLockedError naming the holder when a
    live job or process owns it. A dead owner's file (killed job, crashed submit) is taken over."""
    path = under(run_dir, OWNER)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = owner_record("local", str(os.getpid()), os.getpid())
    for _ in range(5):
        if _create(path, record):
            return
        owner = read_owner(run_dir)
        if owner is None:
            continue  # it vanished (released) between our create and our read
        alive, how = owner_alive(owner)
        if alive:
            raise _locked_error(run_dir, how)
        _take_over(path, owner)
    raise _locked_error(run_dir, "another submission taking it right now")
