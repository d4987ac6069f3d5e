"""Why a part stopped early: its time limit, or someone ending the job (qdel, scancel, preemption).

The trainer answers every SIGTERM the same way (checkpoint, exit 75), and so does it at its own
deadline; only the chain must tell them apart, because a walltime stop is resubmitted and a
``qdel`` must not be. The trainer's ``status.json`` says whether a signal asked for the stop
(``received SIGTERM`` vs ``time budget``: :func:`inpaint.core.contract.stop_signal`); a signal that
came before the part's deadline was not the walltime. SLURM can say more about its own job (the
job asks ``scontrol``: cancelled, preempted, requeued); PBS cannot, so there the clock decides.
"""

from __future__ import annotations

import time

from inpaint.core.contract import stop_signal
from inpaint.core.errors import FacefillError
from jobs import chain
from jobs.ledger import iso_seconds
from jobs.scheduler import get

CAUSES = {
    "scancel": chain.CANCELLED_BY_SCHEDULER,
    "preempted": chain.PREEMPTED,
    "node_failed": chain.NODE_FAILED,
    "requeued": chain.REQUEUED,
}


def _signal_name(exit_code: int, status: dict, started: float | None) -> str | None:
    """The signal that asked the trainer to stop, as its status.json (written by this part) names
    it with exit 75. A trainer killed outright (128+N) kept no new checkpoint: that stop is the
    exit-code table's, whatever sent the signal."""
    fresh = started is None or not isinstance(status.get("time"), (int, float)) or status["time"] >= started - 1
    return stop_signal(status) if exit_code == 75 and fresh else None


def scheduler_cause(executor: str, job_id: str) -> tuple[str, str] | None:
    """What the scheduler says is ending ``job_id`` (see ``ending_cause`` of each), or None when it
    says nothing or cannot answer (then the clock decides)."""
    found = get(executor)
    if found is None:
        return None
    try:
        return found.ending_cause(job_id)
    except FacefillError:
        return None


def find(
    executor: str, job_id: str, exit_code: int, status: dict, start: dict, chain_ends: list[dict], now: float | None = None
) -> chain.Interruption | None:
    """The interruption that ended this part, or None (finished, failed, or stopped at its time).

    ``start`` is the part's start event (its ``deadline``), ``chain_ends`` the end events of its
    chain so far (a preemption is resubmitted once per chain)."""
    started = iso_seconds(start["time"]) if isinstance(start.get("time"), str) else None
    name = _signal_name(exit_code, status, started)
    if name is None:
        return None
    step = status.get("step") if isinstance(status.get("step"), int) else None
    before = any(e.get("interrupted") in chain.RESUBMITTED_ONCE and e.get("action") == chain.RESUBMIT for e in chain_ends)
    said = scheduler_cause(executor, job_id)
    if said is not None and said[0] in CAUSES:
        return chain.Interruption(CAUSES[said[0]], said[1], step, before)
    if said is not None:  # the scheduler's own time limit: a walltime stop like any other
        return None
    deadline = start.get("deadline")
    now = time.time() if now is None else now
    if not isinstance(deadline, (int, float)) or now >= deadline:
        return None
    return chain.Interruption(chain.SIGNALLED, f"{name} {int(deadline - now)} s before the part's deadline", step)
