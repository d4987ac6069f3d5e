"""One part of a chain, from its start to the hand-over: every decision and every record.

The PBS script keeps only what must be shell (directives, ``cd``, staging, the container call)
and calls this module around the trainer with the node's plain ``python3`` and the project on
``PYTHONPATH``; the local and SLURM parts (``jobs.submitit_chain``) call the same functions
in-process. Standard library + the project only: no torch, numpy or yaml here.

    python3 -m jobs.part start     RUN --part N --kind K --job-id ID   # prints why to skip, or nothing
    python3 -m jobs.part command   RUN ... --data DIR                   # the CLI to run, one word a line
    python3 -m jobs.part end       RUN ... --exit-code C                # decides, submits the successor (if
                                                                        #   any); exits with the job's exit code
    python3 -m jobs.part submitted RUN ... (--next-job-id ID | --error TEXT)  # a successor queued elsewhere

Every call names its chain (``--chain``, from the job's ``FACEFILL_CHAIN``): a part of an older
chain of the same run dir, still ending after the run dir was submitted again, records its own end
but never touches the new chain's state, owner or successor.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.contract import EVAL_DIR, read_status, resume_step
from inpaint.core.disk import is_disk_full
from inpaint.core.errors import FacefillError
from jobs import chain, disk_reserve, interruption, ledger, lock
from jobs.chain_state import ChainState, read_chain_state, write_chain_state
from jobs.part_lock import part_lock
from jobs.paths import under
from jobs.scheduler import one_line, scheduler
from jobs.spec import JobSpec

TRAIN, EVALUATE = "train", "evaluate"
T = TypeVar("T")


@dataclass(frozen=True)
class Ending:
    """How a part ended: the decision, what to submit next (if anything), the job's exit code."""

    decision: chain.Decision
    next_kind: str | None
    job_exit: int


def _say(text: str) -> None:
    print(f"[facefill] {text}", file=sys.stderr, flush=True)


def _events(spec: JobSpec, warn: bool = False) -> list[dict]:
    """This chain's events (a ledger line that is not an event is skipped, and said once)."""
    problems: list[str] = []
    events = ledger.read_events(spec.run_dir, problems)
    for problem in problems if warn else ():
        _say(f"warning: {problem}")
    chain_id = spec.chain_id or None
    return [e for e in events if e.get("chain") == chain_id]


def _event(events: list[dict], event: str, part: int, job_id: str | None = None) -> dict:
    """The latest ``event`` of ``part`` among ``events`` (of ``job_id`` when given), or {}."""
    found = [
        e for e in events if e.get("event") == event and e.get("part") == part and (job_id is None or e.get("job_id") == job_id)
    ]
    return found[-1] if found else {}


def _superseded(spec: JobSpec) -> str | None:
    """Why this part's chain no longer speaks for the run dir (it was submitted again), or None."""
    recorded = read_chain_state(spec.run_dir)
    current = recorded.chain if recorded else None
    if current and spec.chain_id and current != spec.chain_id:
        return chain.SUPERSEDED_REASON.format(chain=spec.chain_id, current=current)
    return None


def _cancelled(run_dir: str) -> bool:
    recorded = read_chain_state(run_dir)
    return recorded is not None and recorded.state is ChainState.CANCELLED


def _record(spec: JobSpec, event: str, part: int, **fields: Any) -> None:
    """One ledger event of this part's chain."""
    ledger.append_event(spec.run_dir, event, part, chain=spec.chain_id or None, **fields)


def _chain_state(
    spec: JobSpec, state: ChainState, reason: str, part: int, exit_code: int | None, job_id: str | None, **extra: object
) -> None:
    write_chain_state(spec.run_dir, state, reason, part, exit_code, job_id, spec.executor, chain=spec.chain_id or None, **extra)


def record_submission(spec: JobSpec, part: int, kind: str, job_id: str) -> None:
    """A part was queued: the ledger says so and its job owns the run dir until it hands on."""
    _record(spec, "submit", part, job_id=job_id, executor=spec.executor, kind=kind)
    lock.write_owner(spec.run_dir, spec.executor, job_id, pid=_local_pid(spec, job_id))


def _local_pid(spec: JobSpec, job_id: str) -> int | None:
    return scheduler(spec.executor).owner_pid(job_id)


def start(spec: JobSpec, part: int, kind: str, job_id: str, pid: int | None = None, host: str | None = None) -> str | None:
    """Record the part's start, or return why it must not run (the chain already ended: a
    pre-submitted part after the end, or a cancelled chain; or a newer chain took the run dir).
    The trainer's deadline is fixed here, once: the part's time limit counted from now. ``host``:
    the nodes a multi-node part runs on (default: this host)."""
    superseded = _superseded(spec)
    if superseded:
        return superseded
    recorded = read_chain_state(spec.run_dir)
    if recorded is not None and recorded.state.ended:
        return f"chain already ended ({recorded.state.value}); nothing to do"
    deadline = time.time() + spec.time_limit_s if kind == TRAIN else None
    _record(
        spec,
        "start",
        part,
        job_id=job_id,
        executor=spec.executor,
        host=host or socket.gethostname(),
        kind=kind,
        pid=pid,
        start_step=resume_step(spec.run_dir),
        deadline=deadline,
    )
    lock.write_owner(spec.run_dir, spec.executor, job_id, pid=_local_pid(spec, job_id))
    return None


def command(spec: JobSpec, part: int, kind: str, job_id: str, data: str | None = None) -> list[str]:
    """What the part runs after ``python -m``: the trainer with the deadline fixed at start, or
    the evaluation."""
    if kind == EVALUATE:
        return spec.evaluate_argv(data)
    deadline = _event(_events(spec), "start", part, job_id).get("deadline") or time.time() + spec.time_limit_s
    return spec.trainer_argv(data, deadline)


def _already_ended(events: list[dict], part: int, job_id: str) -> bool:
    """Whether this run of the part has recorded its end already (an end after its latest start)."""
    index = {id(e): i for i, e in enumerate(events)}
    start = _event(events, "start", part, job_id)
    since = index[id(start)] if start else -1
    return any(e.get("event") == "end" and e.get("part") == part and index[id(e)] > since for e in events)


def end(spec: JobSpec, part: int, kind: str, job_id: str, exit_code: int, status_line: str | None = None) -> Ending:
    """Decide what follows the part and record it (ledger end, chain state, owner), once: under
    the run dir's part lock, a second end of the same run of a part decides nothing."""
    with part_lock(spec.run_dir):
        events = _events(spec, warn=True)
        if _already_ended(events, part, job_id):
            decision = chain.Decision(chain.STOP, f"part {part} ({job_id}) recorded its end already; nothing more to do")
            _say(decision.reason)
            return Ending(decision, None, 0)
        superseded = _superseded(spec)
        if superseded:
            _record(
                spec,
                "end",
                part,
                exit_code=exit_code,
                step=read_status(spec.run_dir).get("step"),
                action=chain.STOP,
                reason=superseded,
                kind=kind,
            )
            _say(f"part {part}: {superseded}")
            return Ending(chain.Decision(chain.STOP, superseded), None, 0)
        if kind == EVALUATE:
            return _end_evaluation(spec, part, job_id, exit_code, status_line)
        return _end_training(spec, part, job_id, exit_code, status_line, events)


def _end_evaluation(spec: JobSpec, part: int, job_id: str, exit_code: int, status_line: str | None) -> Ending:
    run_dir = spec.run_dir
    cancelled = _cancelled(run_dir)
    extra = {"status_line": status_line} if status_line else {}
    _record(spec, "end", part, exit_code=exit_code, kind=EVALUATE, **extra)
    if exit_code == 0:
        decision = chain.Decision(chain.DONE, f"evaluation written to {under(run_dir, EVAL_DIR)}")
        _chain_state(spec, ChainState.EVALUATED, decision.reason, part, exit_code, job_id)
    else:
        logs = scheduler(spec.executor).logs_dir(run_dir)
        decision = chain.Decision(chain.STOP, f"evaluation failed (exit {exit_code}): read the job log in {logs}")
        if not cancelled:
            _chain_state(spec, ChainState.STOPPED, decision.reason, part, exit_code, job_id)
    lock.release(run_dir, job_id)
    return Ending(decision, None, 0 if cancelled else exit_code)


def _written_since(status: dict, started: dict) -> bool:
    """Whether ``status`` (status.json) was written by the trainer of the part that ``started``:
    one that died before writing leaves an earlier part's there (ledger times are whole seconds)."""
    written, began = status.get("time"), started.get("time")
    if not isinstance(written, (int, float)) or not isinstance(began, str):
        return True  # nothing to compare (an old ledger): as before
    return written >= ledger.iso_seconds(began)


def _end_training(spec: JobSpec, part: int, job_id: str, exit_code: int, status_line: str | None, events: list[dict]) -> Ending:
    run_dir = spec.run_dir
    status = read_status(run_dir)
    cancelled = _cancelled(run_dir)
    extra = {"status_line": status_line} if status_line else {}
    started = _event(events, "start", part, job_id)
    if spec.nodes > 1 and isinstance(status.get("exit_code"), int) and _written_since(status, started):
        exit_code = status["exit_code"]  # the launchers do not pass 75 through; rank 0's status does
    step = status.get("step")
    start_step = started.get("start_step")
    stop = (
        None
        if cancelled
        else interruption.find(spec.executor, job_id, exit_code, status, started, [e for e in events if e.get("event") == "end"])
    )
    decision = chain.decide(
        exit_code,
        part,
        spec.max_resubmits,
        spec.then_evaluate,
        successor_queued=0 < part < spec.chain,
        progressed=start_step is None or step is None or step > start_step,
        cancelled=cancelled,
        interrupted=stop,
    )
    if stop is not None:
        extra["interrupted"] = stop.cause
    _record(
        spec, "end", part, exit_code=exit_code, step=step, action=decision.action, reason=decision.reason, kind=TRAIN, **extra
    )
    _say(f"part {part}: trainer exit {exit_code} at step {step}: {decision.action} ({decision.reason})")
    # The job fails (in qstat/sacct) only when the chain stopped for a reason to look into; a
    # cancelled chain is a clean stop.
    job_exit = exit_code if decision.action == chain.STOP and exit_code != 0 and not cancelled else 0
    if decision.action in (chain.RESUBMIT, chain.EVALUATE):
        return Ending(decision, EVALUATE if decision.action == chain.EVALUATE else TRAIN, job_exit)
    if decision.action == chain.CONTINUE:
        queued = job_id if stop is not None else _event(events, "submit", part + 1).get("job_id")
        _chain_state(spec, ChainState.RUNNING, decision.reason, part, exit_code, job_id, next_job_id=queued)
        if queued:
            lock.write_owner(run_dir, spec.executor, queued, pid=_local_pid(spec, queued))
    elif decision.action == chain.DONE:
        _chain_state(spec, ChainState.DONE, decision.reason, part, exit_code, job_id)
        lock.release(run_dir, job_id)
    else:
        if not cancelled:  # keep the user's word for it
            _chain_state(spec, ChainState.STOPPED, decision.reason, part, exit_code, job_id)
        lock.release(run_dir, job_id)
    return Ending(decision, None, job_exit)


def submitted(spec: JobSpec, part: int, job_id: str, next_job_id: str | None = None, error: str | None = None) -> None:
    """The successor of ``part`` was queued as ``next_job_id``, or the scheduler refused it."""
    run_dir = spec.run_dir
    events = _events(spec)
    ended = _event(events, "end", part)
    code, reason = ended.get("exit_code"), ended.get("reason", "")
    kind = EVALUATE if ended.get("action") == chain.EVALUATE else TRAIN
    superseded = _superseded(spec)
    if next_job_id:
        if _event(events, "start", part + 1) or superseded:
            # the successor already runs (a free node or a fast local part started it before this
            # record): its word stands; or a newer chain owns the run dir (its successor will find
            # that out at its start and skip)
            _record(spec, "submit", part + 1, job_id=next_job_id, executor=spec.executor, kind=kind)
            if not superseded and not _event(events, "end", part + 1):  # still running: say so in chain.json
                _successor_running(spec, part, kind, reason, code, job_id, next_job_id)
            return
        record_submission(spec, part + 1, kind, next_job_id)
        _successor_running(spec, part, kind, reason, code, job_id, next_job_id)
        _say(f"submitted part {part + 1} ({kind}) as {next_job_id}")
        return
    if superseded:
        return
    _chain_state(
        spec,
        ChainState.STOPPED,
        f"could not submit part {part + 1}: {one_line(str(error))}; run jobs.submit again to continue",
        part,
        code,
        job_id,
    )
    lock.release(run_dir, job_id)


def _successor_running(spec: JobSpec, part: int, kind: str, reason: str, code: int | None, job_id: str, next_job_id: str) -> None:
    """chain.json: the chain goes on with the successor ``next_job_id``."""
    state = ChainState.EVALUATING if kind == EVALUATE else ChainState.RUNNING
    _chain_state(spec, state, f"{reason}; part {part + 1} is {next_job_id}", part, code, job_id, next_job_id=next_job_id)


def hand_on(spec: JobSpec, part: int, job_id: str, kind: str) -> tuple[str | None, str | None]:
    """Submit the successor of ``part`` (of ``kind``) with the chain's scheduler and record it:
    (its job id, None), or (None, why the scheduler refused it — then the chain has stopped)."""
    try:
        next_id = scheduler(spec.executor).submit_successor(spec, part + 1, kind)
    except Exception as exc:  # the scheduler refused: say so in the run dir, do not lose the run
        error = str(exc)
        guarded(spec, part, job_id, lambda: submitted(spec, part, job_id, error=error))
        return None, error
    guarded(spec, part, job_id, lambda: submitted(spec, part, job_id, next_job_id=next_id))
    return next_id, None


def guarded(spec: JobSpec, part: int, job_id: str, step: Callable[[], T]) -> T:
    """Run a step of the part; a disk that cannot take the part's records becomes one line (and,
    on a full disk, a "stopped" chain state written in the room of the run dir's reserve) instead
    of a traceback and a chain.json that still says "running"."""
    try:
        return step()
    except OSError as exc:
        path = getattr(exc, "filename", None) or spec.run_dir
        if not is_disk_full(exc):
            raise FacefillError(
                f"{path}: cannot write the chain's records ({exc.strerror or exc}); fix the run dir, then submit again"
            ) from None
        reason = (
            f"part {part} ({job_id}) could not write its records: the disk holding {spec.run_dir} is full; "
            "free space, then submit again"
        )
        disk_reserve.free(spec.run_dir)
        try:
            if not _superseded(spec):
                _chain_state(spec, ChainState.STOPPED, reason, part, None, job_id)
        except OSError:
            pass  # nothing more can be written; the one line below still says it
        raise FacefillError(f"{path}: the disk is full; part {part} stopped the chain; free space, then submit again") from None


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python3 -m jobs.part", description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("start", "command", "end", "submitted"))
    p.add_argument("run_dir")
    p.add_argument("--part", type=int, required=True)
    p.add_argument("--kind", choices=(TRAIN, EVALUATE), default=TRAIN)
    p.add_argument("--job-id", required=True)
    p.add_argument("--chain", default="", help="the chain this part belongs to (default: the run dir's latest)")
    p.add_argument("--data", help="command: the shards folder this part reads (staged or not)")
    p.add_argument("--exit-code", type=int, help="end: the exit code of what the part ran")
    p.add_argument("--next-job-id", help="submitted: the successor's job id")
    p.add_argument("--error", help="submitted: why the scheduler refused the successor")
    a = p.parse_args(argv)
    spec = JobSpec.load(Path(a.run_dir))
    if a.chain:
        spec = replace(spec, chain_id=a.chain)  # the job's own chain, even if spec.json was rewritten by a newer submission
    if a.step == "start":
        skip = guarded(spec, a.part, a.job_id, lambda: start(spec, a.part, a.kind, a.job_id))
        if skip:
            print(skip)
    elif a.step == "command":
        print("\n".join(command(spec, a.part, a.kind, a.job_id, a.data)))
    elif a.step == "end":
        code = a.exit_code if a.exit_code is not None else 1
        ending = guarded(spec, a.part, a.job_id, lambda: end(spec, a.part, a.kind, a.job_id, code))
        if ending.next_kind:
            hand_on(spec, a.part, a.job_id, ending.next_kind)
        return ending.job_exit
    else:
        guarded(spec, a.part, a.job_id, lambda: submitted(spec, a.part, a.job_id, a.next_job_id, a.error or "no job id"))
    return 0


if __name__ == "__main__":
    run_cli(main)
