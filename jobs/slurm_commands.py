"""squeue / scontrol / scancel: thin wrappers that turn SLURM's answers into data and clear errors.

Facts from a real SLURM 22.05 cluster: ``squeue -h -j ID -o %T`` prints the state of a queued or
running job and nothing (exit 0) once it has ended; ``scontrol show job ID`` still shows an ended
job (``JobState=TIMEOUT``, ``ExitCode=0:15``) for ``MinJobAge`` (5 min by default); after that both
answer "Invalid job id specified" (exit 1). ``sacct`` needs accounting, which many clusters lack,
so it is never asked. While SLURM ends a job (``scancel``, preemption, time limit) and its batch
script still runs (KillWait), both say ``COMPLETING``; slurmstepd has then already written why
into the job's stderr: ``*** JOB 7 ON node CANCELLED AT <time> [DUE TO PREEMPTION|TIME LIMIT|…] ***``.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path

from inpaint.core.errors import FacefillError

INVALID_JOB = "Invalid job id"
# Job states after which nothing of the job runs any more (squeue's and scontrol's spelling).
ENDED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
        "SPECIAL_EXIT",
        "REVOKED",
    }
)
# slurmstepd's line in the job's stderr when SLURM ends it (older versions: "CANCELLED AT T DUE TO X on node").
CANCELLED_LINE = re.compile(r"\*\*\* JOB (\d+) (?:ON \S+ )?CANCELLED AT \S+(?: DUE TO ([A-Z ]+?))?(?:,[^*]*| on \S+)? \*\*\*")
ENDED_WORDS = {
    "TIMEOUT": "killed at its time limit",
    "NODE_FAIL": "its node failed",
    "OUT_OF_MEMORY": "killed: out of memory",
    "PREEMPTED": "preempted",
    "CANCELLED": "cancelled",
}


class SbatchError(FacefillError):
    """sbatch refused a part (unknown partition, memory or gres it cannot satisfy); its own words."""


class SlurmQueryError(FacefillError):
    """squeue/scontrol could not answer; never evidence that a job is gone."""


@dataclass(frozen=True)
class SlurmJob:
    job_id: str
    state: str  # SLURM's word: PENDING, RUNNING, COMPLETED, TIMEOUT, CANCELLED …
    exit_code: str | None = None  # scontrol's "code:signal", for ended jobs
    reason: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def describe(self) -> str:
        """The state as ``jobs.status`` shows it, e.g. ``TIMEOUT: killed at its time limit``."""
        words = ENDED_WORDS.get(self.state)
        if self.state == "FAILED" and self.exit_code:
            words = f"exit {self.exit_code}"
        if self.state == "PENDING" and self.reason and self.reason != "None":
            words = self.reason
        return f"{self.state}: {words}" if words else self.state


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise SlurmQueryError(f"{cmd[0]} not found on PATH: run this on a SLURM login node") from None
    except subprocess.TimeoutExpired:
        raise SlurmQueryError(f"{' '.join(cmd)} did not answer in 60 s") from None


def _field(text: str, name: str) -> str | None:
    found = re.search(rf"(?:^|\s){name}=(\S+)", text)
    return found.group(1) if found else None


def job_state(job_id: str) -> SlurmJob | None:
    """What SLURM says of ``job_id``: squeue for a live job, then scontrol for an ended one.

    None when SLURM no longer knows the job (ended more than ``MinJobAge`` ago); SlurmQueryError
    when the controller cannot answer.
    """
    out = _run(["squeue", "-h", "-j", str(job_id), "-o", "%T"])
    if out.returncode == 0 and out.stdout.strip():
        return SlurmJob(str(job_id), out.stdout.split()[0])
    if out.returncode != 0 and INVALID_JOB not in out.stderr:
        raise SlurmQueryError(f"squeue failed: {' '.join(out.stderr.split()) or f'exit {out.returncode}'}")
    shown = _run(["scontrol", "show", "job", str(job_id)])
    if shown.returncode != 0:
        if INVALID_JOB in shown.stderr:
            return None
        raise SlurmQueryError(f"scontrol failed: {' '.join(shown.stderr.split()) or f'exit {shown.returncode}'}")
    state = _field(shown.stdout, "JobState")
    if state is None:
        raise SlurmQueryError(f"scontrol show job {job_id} printed no JobState")
    return SlurmJob(str(job_id), state, _field(shown.stdout, "ExitCode"), _field(shown.stdout, "Reason"))


def _cancelled_line(stderr_path: str | None, job_id: str) -> tuple[bool, str | None]:
    """(slurmstepd wrote its CANCELLED line for ``job_id``, its DUE TO words) from the job's stderr."""
    if not stderr_path:
        return False, None
    try:
        with open(stderr_path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - (1 << 20)))  # the line is recent: the last MiB holds it
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return False, None
    hits = [m for m in CANCELLED_LINE.finditer(text) if m.group(1) == str(job_id)]
    return (True, hits[-1].group(2)) if hits else (False, None)


def ending_cause(job_id: str) -> tuple[str, str] | None:
    """Why SLURM is ending ``job_id``, asked by the job itself after a signal: ("scancel" |
    "preempted" | "node_failed" | "requeued" | "timeout", what SLURM said), or None while SLURM lets it run (the
    signal came from elsewhere). Raises SlurmQueryError when the controller cannot answer."""
    shown = _run(["scontrol", "show", "job", str(job_id)])
    if shown.returncode != 0:
        raise SlurmQueryError(f"scontrol failed: {' '.join(shown.stderr.split()) or f'exit {shown.returncode}'}")
    state = _field(shown.stdout, "JobState") or "?"
    if state in ("RUNNING", "PENDING", "SUSPENDED", "CONFIGURING"):
        return None
    said, due = _cancelled_line(_field(shown.stdout, "StdErr"), job_id)
    if due == "PREEMPTION" or state == "PREEMPTED":
        return "preempted", f"SLURM job {job_id}: {'DUE TO PREEMPTION' if due else state}"
    if due == "NODE FAILURE" or state == "NODE_FAIL":
        return "node_failed", f"SLURM job {job_id}: {'DUE TO NODE FAILURE' if due else state}"
    if due == "TIME LIMIT" or state in ("TIMEOUT", "DEADLINE"):
        return "timeout", f"SLURM job {job_id}: {'DUE TO TIME LIMIT' if due else state}"
    if due == "JOB REQUEUE" or state in ("REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"):
        return "requeued", f"SLURM job {job_id}: requeued"
    if said or state in ("CANCELLED", "COMPLETING"):
        return "scancel", f"SLURM job {job_id} {'CANCELLED' if said else state}"
    return None


def hostnames(nodelist: str) -> list[str]:
    """The node names of a SLURM node list (``ffnode[1-2]``), by ``scontrol show hostnames``; the
    list as given when scontrol cannot expand it."""
    try:
        shown = _run(["scontrol", "show", "hostnames", nodelist])
    except SlurmQueryError:
        return [nodelist]
    return shown.stdout.split() if shown.returncode == 0 and shown.stdout.strip() else [nodelist]


def scancel(job_ids: list[str]) -> tuple[list[str], str]:
    """Cancel jobs; returns (ids scancel accepted, its error text). Ended ids are not errors."""
    ids = [str(j) for j in job_ids if j]
    if not ids:
        return [], ""
    out = _run(["scancel", *ids])
    refused = set(re.findall(r"job(?: id)?\s+(\d+(?:_\d+)?)", out.stderr, flags=re.IGNORECASE))
    if out.returncode != 0 and not refused:  # scancel itself failed (no controller): nothing was cancelled
        return [], " ".join(out.stderr.split()) or f"exit {out.returncode}"
    return [j for j in ids if j not in refused], " ".join(out.stderr.split())


@contextmanager
def refused_submission(folder: Path | str, what: str) -> Iterator[None]:
    """Around a submitit ``submit``: a refusal becomes a one-line :class:`SbatchError`, and the
    files submitit wrote for the job that never was (pickle, script) are removed with the folder
    when nothing else is in it."""
    from submitit.core.utils import FailedJobError

    folder = Path(folder)
    before = set(folder.iterdir()) if folder.is_dir() else None
    said = io.StringIO()  # submitit prints sbatch's stderr itself before raising: keep it to one line
    try:
        with redirect_stderr(said):
            yield
        sys.stderr.write(said.getvalue())
    except FailedJobError as exc:
        if folder.is_dir():
            for path in set(folder.iterdir()) - (before or set()):
                if path.is_file():
                    path.unlink()
            if before is None and not any(folder.iterdir()):
                folder.rmdir()
        lines = [re.sub(r"^\w+: error: ", "", line.strip()) for line in str(exc).splitlines() if line.strip()]
        words = "; ".join(lines) or "no message"
        raise SbatchError(f"{what} refused: {words}") from None
