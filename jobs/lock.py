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
from jobs.ledger import now_iso
from jobs.paths import OWNER, under
from jobs.records import OwnerRecord
from jobs.scheduler import get


class RunDirLockedError(FacefillError):
    """The run dir belongs to a job that is still queued or running."""


def read_owner(run_dir: Path | str) -> OwnerRecord | None:
    try:
        data = json.loads(under(run_dir, OWNER).read_text())
    except (OSError, ValueError):
        return None
    return OwnerRecord.from_dict(data) if isinstance(data, dict) else None


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


def owner_record(executor: str, job_id: str, pid: int | None = None) -> OwnerRecord:
    return OwnerRecord(executor, str(job_id), pid, socket.gethostname(), now_iso())


def write_owner(run_dir: Path | str, executor: str, job_id: str, pid: int | None = None) -> None:
    write_json(under(run_dir, OWNER), owner_record(executor, job_id, pid).to_dict())


def release(run_dir: Path | str, job_id: str | None = None) -> None:
    """Drop the owner file (only if ``job_id`` still owns it, when given; without ``job_id`` an
    unreadable owner file goes too, so ``jobs.cancel`` can always free a run dir)."""
    owner = read_owner(run_dir)
    if owner is None and (job_id is not None or owner_unreadable(run_dir) is None):
        return
    if owner is not None and job_id is not None and owner.job_id != str(job_id):
        return
    try:
        under(run_dir, OWNER).unlink()
    except FileNotFoundError:
        pass


def owner_alive(owner: OwnerRecord) -> tuple[bool, str]:
    """(alive, how we know), asked of the owner's scheduler. Unanswerable questions count as alive."""
    found = get(owner.executor)
    if found is None:
        return False, f"unknown executor {owner.executor!r}"
    return found.is_alive(owner)


def _locked_error(run_dir: Path | str, how: str) -> RunDirLockedError:
    return RunDirLockedError(
        f"{under(run_dir, OWNER)}: run dir is owned by {how}; wait for it, cancel it with "
        f"`python -m jobs.cancel {run_dir}`, or pick another --run-dir"
    )


def _create(path: Path, record: OwnerRecord) -> bool:
    """Create ``path`` holding ``record`` unless it exists: written under a temporary name, then
    hard-linked (``link`` fails on an existing name, like ``O_EXCL``), so it is never seen half-written."""
    tmp = tmp_name(path)
    write_json(tmp, record.to_dict())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, stale: OwnerRecord) -> None:
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
    if not isinstance(moved, dict) or OwnerRecord.from_dict(moved) != stale:
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
    from jobs.local import NAME as LOCAL  # this process holds it until its first part is queued

    record = owner_record(LOCAL, str(os.getpid()), os.getpid())
    for _ in range(5):
        if _create(path, record):
            return
        owner = read_owner(run_dir)
        if owner is None:
            damage = owner_unreadable(run_dir)
            if damage:
                raise RunDirLockedError(
                    f"{path}: {damage}, so the run dir's owner is unknown; if no job of this run dir is queued or "
                    f"running, clear it with `python -m jobs.cancel {run_dir}` and submit again"
                )
            continue  # it vanished (released) between our create and our read
        alive, how = owner_alive(owner)
        if alive:
            raise _locked_error(run_dir, how)
        _take_over(path, owner)
    raise _locked_error(run_dir, "another submission taking it right now")
