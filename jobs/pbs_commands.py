"""qsub / qstat / qdel: thin wrappers (used only by ``jobs.pbs``) that turn PBS Pro's outputs into data and clear errors.

Formats follow a real OpenPBS 23.06 server (see tests and ../shared/fixtures/openpbs): ``qsub``
prints only the job id; ``qstat -x -f -F json`` lists finished jobs too (state F with
``Exit_status``); an unknown id makes ``qstat`` exit 153 with "Unknown Job Id" on stderr; a
multi-id ``qstat -x -f -F json ID1 ID2`` answers only ID1 (exit 0), so unanswered ids are asked alone.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inpaint.core.errors import FacefillError
from jobs.scheduler import one_line

JOB_ID_RE = re.compile(r"^\d+(\[\d*\])?\.[A-Za-z0-9_.-]+$")
UNKNOWN_JOB_RE = re.compile(r"Unknown Job Id\s+(\S+)")
QSTAT_UNKNOWN_RC = 153
WALLTIME_EXIT = -29  # JOB_EXEC_KILL_WALLTIME
SIGNAL_EXIT_BASE = 256
RETRY_DELAYS_S = (2.0, 5.0, 15.0)


class QsubError(FacefillError):
    """qsub refused the job; the message carries qsub's own words (``said``: those words alone)."""

    def __init__(self, message: str, said: str | None = None) -> None:
        super().__init__(message)
        self.said = message if said is None else said


class QstatError(FacefillError):
    """qstat could not answer (after retries); never evidence that a job is gone."""


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # PBS one-letter state: Q H R E F B X W T S M
    exit_status: int | None = None
    name: str = ""
    queue: str = ""
    comment: str = ""
    start_time: str | None = None
    end_time: str | None = None
    walltime_used: str | None = None
    walltime_limit: str | None = None
    depend: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.state == "F"

    @property
    def active(self) -> bool:
        return self.state != "F"


def describe_exit(exit_status: int | None) -> str:
    """Human words for PBS's ``Exit_status`` (−29 walltime, 256+signal, else the script's code)."""
    if exit_status is None:
        return "never ran (deleted before start)"
    if exit_status == WALLTIME_EXIT:
        return "killed at walltime"
    if exit_status >= SIGNAL_EXIT_BASE:
        sig = exit_status - SIGNAL_EXIT_BASE
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    if exit_status < 0:
        return f"PBS could not run the job (Exit_status {exit_status})"
    return "succeeded" if exit_status == 0 else f"script exited {exit_status}"


def parse_job_id(stdout: str) -> str:
    """The id from qsub's output (it prints only the id, e.g. ``30.vm``)."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    if not lines or not JOB_ID_RE.match(lines[-1]):
        raise QsubError(f"qsub printed no job id (got {stdout.strip()!r}); check `qstat -u $USER`")
    return lines[-1]


def qsub(script: Path | str, extra_args: Sequence[str] = ()) -> str:
    """Submit ``script``; return the job id. QsubError with qsub's message when refused."""
    cmd = ["qsub", *extra_args, str(script)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise QsubError("qsub not found on PATH: submit from a PBS front-end, or use --executor local") from None
    except subprocess.TimeoutExpired:
        raise QsubError(f"qsub {script} did not answer in 120 s; check `qstat -u $USER` before retrying") from None
    if out.returncode != 0:
        message = one_line(out.stderr or out.stdout) or "no message"
        raise QsubError(f"qsub refused {script} (exit {out.returncode}): {message}", said=message)
    return parse_job_id(out.stdout)


def _state_from_json(job_id: str, info: dict) -> JobState:
    exit_status = info.get("Exit_status")
    return JobState(
        job_id=job_id,
        state=str(info.get("job_state", "?")),
        exit_status=int(exit_status) if exit_status is not None else None,
        name=str(info.get("Job_Name", "")),
        queue=str(info.get("queue", "")),
        comment=str(info.get("comment", "")),
        start_time=info.get("stime"),
        end_time=info.get("obittime"),
        walltime_used=(info.get("resources_used") or {}).get("walltime"),
        walltime_limit=(info.get("Resource_List") or {}).get("walltime"),
        depend=info.get("depend"),
        raw=info,
    )


def parse_qstat_json(text: str) -> dict[str, JobState]:
    """Jobs from ``qstat -x -f -F json``; {} for the "no Jobs" answer of an unknown id."""
    data = json.loads(text, strict=False)  # PBS does not escape control characters in variables
    return {jid: _state_from_json(jid, info) for jid, info in (data.get("Jobs") or {}).items()}


def _matches(asked: str, known: str) -> bool:
    """PBS may answer with the full server name (``30.vm`` vs ``30.vm.example.org``)."""
    return known == asked or known.startswith(asked + ".") or asked.startswith(known + ".")


def _ask_qstat(ids: Sequence[str], retry_delays: Sequence[float]) -> tuple[dict[str, JobState], set[str]]:
    """One ``qstat -x -f -F json IDS`` (plus retries): (jobs it answered, ids it called unknown)."""
    last_error = ""
    for attempt in range(len(retry_delays) + 1):
        if attempt:
            time.sleep(retry_delays[attempt - 1])
        try:
            out = subprocess.run(["qstat", "-x", "-f", "-F", "json", *ids], capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise QstatError("qstat not found on PATH: run this on a PBS front-end") from None
        except subprocess.TimeoutExpired:
            last_error = "qstat timed out"
            continue
        unknown = set(UNKNOWN_JOB_RE.findall(out.stderr))
        try:
            jobs = parse_qstat_json(out.stdout) if out.stdout.strip() else {}
        except json.JSONDecodeError as exc:
            last_error = f"unreadable qstat JSON ({exc})"
            continue
        if out.returncode == 0 or (out.returncode == QSTAT_UNKNOWN_RC and unknown) or (jobs and unknown):
            return jobs, unknown
        last_error = one_line(out.stderr) or f"exit {out.returncode}"
    raise QstatError(last_error)


def _find(asked: str, jobs: dict[str, JobState]) -> JobState | None:
    return next((st for known, st in jobs.items() if _matches(asked, known)), None)


def job_states(job_ids: Sequence[str], retry_delays: Sequence[float] | None = None) -> dict[str, JobState]:
    """States of ``job_ids``: one batched ``qstat -x -f -F json`` call, then one call per id it
    left unanswered.

    OpenPBS 23.06 answers a multi-id call with the FIRST job only (exit 0, no error), so an id
    that is neither in the answer nor reported unknown is asked again alone. Ids the server does
    not know are absent from the result. A failure that is not "Unknown Job Id" (server busy,
    network) is retried; if it persists QstatError is raised — callers must not conclude that the
    jobs are gone.
    """
    ids = [str(j) for j in job_ids if j]
    if not ids:
        return {}
    retry_delays = RETRY_DELAYS_S if retry_delays is None else retry_delays
    jobs, unknown = _ask_qstat(ids, retry_delays)
    result: dict[str, JobState] = {}
    for asked in ids:
        hit = _find(asked, jobs)
        if hit is None and not any(_matches(asked, u) for u in unknown) and len(ids) > 1:
            hit = _find(asked, _ask_qstat([asked], retry_delays)[0])
        if hit is not None:
            result[asked] = hit
    return result


def qdel(job_ids: Sequence[str]) -> tuple[list[str], str]:
    """Delete jobs; returns (ids qdel accepted, its error text). Finished ids are not errors."""
    ids = [str(j) for j in job_ids if j]
    if not ids:
        return [], ""
    try:
        out = subprocess.run(["qdel", *ids], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise QsubError("qdel not found on PATH: run this on a PBS front-end") from None
    refused = set(re.findall(r"(\d+(?:\[\d*\])?\.[\w.-]+)", out.stderr))
    return [j for j in ids if j not in refused], one_line(out.stderr)


def ending_cause(job_id: str) -> tuple[str, str] | None:
    """Why PBS is ending ``job_id``, asked by the job itself after a signal: PBS cannot say. A
    ``qdel``, a preemption and the walltime all just send SIGTERM (then SIGKILL after
    ``kill_delay``), and ``qstat`` shows the job running until it has exited, so the part judges
    by the clock alone (``jobs.part``: before its deadline, it was not the walltime)."""
    return None
