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

from inpaint.core.atomic import tmp_name, write_json
from inpaint.core.errors import FacefillError
from inpaint.core.process import pid_alive
from jobs.ledger import iso_seconds, now_iso
from jobs.paths import OWNER, under


class RunDirLockedError(FacefillError):
    """The run dir belongs to a job that is still queued or running."""


def read_owner(run_dir: Path | str) -> dict | None:
    try:
        data = json.loads(under(run_dir, OWNER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def owner_unreadable(run_dir: Path | str) -> str | None:
    """Why an existing owner file is not an owner record (empty, not JSON, not an object), or None
    (absent or fine). Owner files are written whole (temporary name, then link or rename), so an
    unreadable one is damage, not a write in progress: it is never taken for a live owner."""
    try:
        raw = under(run_dir, OWNER).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not raw.strip():
        return "empty"
    try:
        data = json.loads(raw)
    except ValueError:
        return "not JSON"
    return None if isinstance(data, dict) else f"a JSON {type(data).__name__}, not an object"


def owner_record(executor: str, job_id: str, pid: int | None = None) -> dict:
    return {"executor": executor, "job_id": str(job_id), "pid": pid, "host": socket.gethostname(), "time": now_iso()}


def write_owner(run_dir: Path | str, executor: str, job_id: str, pid: int | None = None) -> None:
    write_json(under(run_dir, OWNER), owner_record(executor, job_id, pid))


def release(run_dir: Path | str, job_id: str | None = None) -> None:
    """Drop the owner file (only if ``job_id`` still owns it, when given; without ``job_id`` an
    unreadable owner file goes too, so ``jobs.cancel`` can always free a run dir)."""
    owner = read_owner(run_dir)
    if owner is None and (job_id is not None or owner_unreadable(run_dir) is None):
        return
    if owner is not None and job_id is not None and owner.get("job_id") != str(job_id):
        return
    try:
        under(run_dir, OWNER).unlink()
    except FileNotFoundError:
        pass


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch, to about a second), from /proc; None
    when it cannot be read."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def local_process(owner: dict) -> tuple[int | None, str]:
    """(pid, how we know) of the local process an owner record names, when it is on this host,
    alive and still the one recorded; (None, why not) otherwise. A pid started after the record
    was written is another program that got the number back: it must never be signalled."""
    job_id = str(owner.get("job_id", ""))
    if owner.get("host") not in (None, socket.gethostname()):
        return None, f"local process {job_id} is on another host ({owner.get('host')})"
    try:
        pid = int(owner.get("pid") or job_id or 0)
    except ValueError:
        return None, f"no pid in the owner record ({job_id!r})"
    if pid <= 0 or not pid_alive(pid):
        return None, f"local process {pid} has ended" if pid > 0 else "no pid in the owner record"
    started, recorded = process_start(pid), owner.get("time")
    try:
        recorded_s = iso_seconds(recorded) if isinstance(recorded, str) else None
    except ValueError:
        recorded_s = None
    if started is not None and recorded_s is not None and started > recorded_s + 2:
        return None, f"pid {pid} now belongs to a process started after the owner record ({recorded})"
    return pid, f"local process {pid}"


def owner_alive(owner: dict) -> tuple[bool, str]:
    """(alive, how we know). Unanswerable questions count as alive."""
    executor = owner.get("executor")
    job_id = str(owner.get("job_id", ""))
    if executor == "local":
        if owner.get("host") not in (None, socket.gethostname()):
            return True, f"local process {job_id} on another host ({owner.get('host')})"
        pid, how = local_process(owner)
        return pid is not None, how
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
            damage = owner_unreadable(run_dir)
            if damage:
                raise RunDirLockedError(
                    f"{path}: {damage}, so the run dir's owner is unknown; if no job of this run dir is queued or "
                    f"running, clear it with `python -m jobs.cancel {run_dir}` and submit again")
            continue  # it vanished (released) between our create and our read
        alive, how = owner_alive(owner)
        if alive:
            raise _locked_error(run_dir, how)
        _take_over(path, owner)
    raise _locked_error(run_dir, "another submission taking it right now")
