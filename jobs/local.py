"""Local runs: parts are submitit's local jobs (``jobs.submitit_chain``), on this machine; an
owner is a process id, alive while that process (started no later than its record) runs here,
and cancelling one is SIGTERM to its process tree.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

from inpaint.core.process import pid_alive
from jobs.ledger import iso_seconds
from jobs.profiles import SiteProfile
from jobs.records import OwnerRecord
from jobs.scheduler import Seen, SiteDefaults
from jobs.spec import JobSpec
from jobs.submitit_chain import SubmititParts
from jobs.walltime import parse_walltime

NAME = "local"
DEFAULT_WALLTIME = "24:00:00"
MARGIN_S = 120  # the final checkpoint's margin where no site profile applies


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch, to about a second), from /proc; None
    when it cannot be read."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def local_process(owner: OwnerRecord) -> tuple[int | None, str]:
    """(pid, how we know) of the local process an owner record names, when it is on this host,
    alive and still the one recorded; (None, why not) otherwise. A pid started after the record
    was written is another program that got the number back: it must never be signalled."""
    job_id = owner.job_id
    if owner.host not in (None, socket.gethostname()):
        return None, f"local process {job_id} is on another host ({owner.host})"
    try:
        pid = int(owner.pid or job_id or 0)
    except ValueError:
        return None, f"no pid in the owner record ({job_id!r})"
    if pid <= 0 or not pid_alive(pid):
        return None, f"local process {pid} has ended" if pid > 0 else "no pid in the owner record"
    started, recorded = process_start(pid), owner.time
    try:
        recorded_s = iso_seconds(recorded) if isinstance(recorded, str) else None
    except ValueError:
        recorded_s = None
    if started is not None and recorded_s is not None and started > recorded_s + 2:
        return None, f"pid {pid} now belongs to a process started after the owner record ({recorded})"
    return pid, f"local process {pid}"


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, deepest first (so the trainer is signalled before its parents)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    order: list[int] = []

    def walk(p: int) -> None:
        for child in children.get(p, []):
            walk(child)
            order.append(child)

    walk(pid)
    return order


class Local(SubmititParts):
    name = NAME
    submit_command = "submitit"
    queued = False
    runs_here = True
    presubmits_chain = False
    multi_node = False
    container_by_default = False
    checks_container_here = True
    tracks_ended_jobs = False  # a pid says nothing once its part has recorded its end

    def chosen_by_default(self) -> bool:
        return True  # where no scheduler is

    def profile(self, name: str | None) -> SiteProfile | None:
        return None  # no site: --profile does not apply

    def defaults(self, profile: SiteProfile | None) -> SiteDefaults:
        return SiteDefaults(walltime_s=parse_walltime(DEFAULT_WALLTIME), margin_s=MARGIN_S)

    def submitit_parameters(self, spec: JobSpec) -> dict[str, Any]:
        return {"gpus_per_node": spec.ngpus} if spec.ngpus else {}

    def announce(self, spec: JobSpec, ids: list[str]) -> str:
        return f"[facefill] local chain for {spec.run_dir}: part 1 is process {ids[0]}"

    def states(self, ids: list[str]) -> tuple[dict[str, Seen], str | None]:
        seen = {}
        for job in ids:
            alive = pid_alive(int(job)) if job.isdigit() else False
            seen[job] = Seen("running", False) if alive else Seen("gone", True)
        return seen, None

    def is_alive(self, owner: OwnerRecord) -> tuple[bool, str]:
        if owner.host not in (None, socket.gethostname()):
            return True, f"local process {owner.job_id} on another host ({owner.host})"
        pid, how = local_process(owner)
        return pid is not None, how

    def owner_pid(self, job_id: str) -> int | None:
        return int(job_id) if job_id.isdigit() else None

    def ending_cause(self, job_id: str) -> tuple[str, str] | None:
        return None

    def cancel(self, owner: OwnerRecord | None, ids: list[str]) -> list[str]:
        """SIGTERM the part's process tree, if the owner's pid is still that process on this host;
        otherwise say why nothing was signalled (the chain's other pids are not ours to judge)."""
        if not owner:
            return []
        pid, how = local_process(owner)
        if pid is None:
            print(f"not signalled: {how}")
            return []
        done = []
        for target in [*descendants(pid), pid]:
            try:
                os.kill(target, signal.SIGTERM)
                done.append(str(target))
            except ProcessLookupError:
                pass
        return done


SCHEDULER = Local()
