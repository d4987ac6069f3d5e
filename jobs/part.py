"""One part of a chain, from its start to the hand-over: every decision and every record.

The PBS script keeps only what must be shell (directives, ``cd``, staging, the container call,
``qsub``) and calls this module around the trainer with the node's plain ``python3`` and the
project on ``PYTHONPATH``; the local and SLURM parts (``jobs.submitit_chain``) call the same
functions in-process. Standard library + the project only: no torch, numpy or yaml here.

    python3 -m jobs.part start     RUN --part N --kind K --job-id ID   # prints why to skip, or nothing
    python3 -m jobs.part command   RUN ... --data DIR                   # the CLI to run, one word a line
    python3 -m jobs.part end       RUN ... --exit-code C                # qsub arguments of the successor, if any;
                                                                        #   exits with the job's exit code
    python3 -m jobs.part submitted RUN ... (--next-job-id ID | --error TEXT)
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from inpaint.cli import run_cli
from inpaint.contract import read_status
from jobs import chain, ledger, lock
from jobs.chain_state import ENDED, read_chain_state, write_chain_state
from jobs.paths import EVAL_DIR, LOGS_DIR, SUBMITIT_DIR, under
from jobs.spec import JobSpec
from jobs.walltime import format_walltime

TRAIN, EVALUATE = "train", "evaluate"


@dataclass(frozen=True)
class Ending:
    """How a part ended: the decision, what to submit next (if anything), the job's exit code."""

    decision: chain.Decision
    next_kind: str | None
    job_exit: int


def _event(run_dir: str, event: str, part: int, job_id: str | None = None) -> dict:
    """This part's latest ``event`` in the ledger (of ``job_id`` when given), or {}."""
    found = [e for e in ledger.read_events(run_dir) if e.get("event") == event and e.get("part") == part
             and (job_id is None or e.get("job_id") == job_id)]
    return found[-1] if found else {}


def record_submission(spec: JobSpec, part: int, kind: str, job_id: str) -> None:
    """A part was queued: the ledger says so and its job owns the run dir until it hands on."""
    ledger.append_event(spec.run_dir, "submit", part, job_id=job_id, executor=spec.executor, kind=kind)
    lock.write_owner(spec.run_dir, spec.executor, job_id, pid=_local_pid(spec, job_id))


def _local_pid(spec: JobSpec, job_id: str) -> int | None:
    return int(job_id) if spec.executor == "local" and job_id.isdigit() else None


def start(spec: JobSpec, part: int, kind: str, job_id: str, pid: int | None = None) -> str | None:
    """Record the part's start, or return why it must not run (the chain already ended: a
    pre-submitted part after the end, or a cancelled chain). The trainer's deadline is fixed here,
    once: the part's time limit counted from now."""
    state = read_chain_state(spec.run_dir).get("state")
    if state in ENDED:
        return f"chain already ended ({state}); nothing to do"
    deadline = time.time() + spec.time_limit_s if kind == TRAIN else None
    ledger.append_event(spec.run_dir, "start", part, job_id=job_id, executor=spec.executor, host=socket.gethostname(),
                        kind=kind, pid=pid, start_step=read_status(spec.run_dir).get("step"), deadline=deadline)
    lock.write_owner(spec.run_dir, spec.executor, job_id, pid=_local_pid(spec, job_id))
    return None


def command(spec: JobSpec, part: int, kind: str, job_id: str, data: str | None = None) -> list[str]:
    """What the part runs after ``python -m``: the trainer with the deadline fixed at start, or
    the evaluation."""
    if kind == EVALUATE:
        return spec.evaluate_argv(data)
    deadline = _event(spec.run_dir, "start", part, job_id).get("deadline") or time.time() + spec.time_limit_s
    return spec.trainer_argv(data, deadline)


def end(spec: JobSpec, part: int, kind: str, job_id: str, exit_code: int, status_line: str | None = None) -> Ending:
    """Decide what follows the part and record it: ledger end, chain state, owner."""
    run_dir = spec.run_dir
    status = read_status(run_dir)
    cancelled = read_chain_state(run_dir).get("state") == "cancelled"
    extra = {"status_line": status_line} if status_line else {}
    if kind == EVALUATE:
        ledger.append_event(run_dir, "end", part, exit_code=exit_code, kind=kind, **extra)
        if exit_code == 0:
            decision = chain.Decision(chain.DONE, f"evaluation written to {under(run_dir, EVAL_DIR)}")
            write_chain_state(run_dir, "evaluated", decision.reason, part, exit_code, job_id, spec.executor)
        else:
            logs = under(run_dir, SUBMITIT_DIR if spec.executor != "pbs" else LOGS_DIR)
            decision = chain.Decision(chain.STOP, f"evaluation failed (exit {exit_code}): read the job log in {logs}")
            if not cancelled:
                write_chain_state(run_dir, "stopped", decision.reason, part, exit_code, job_id, spec.executor)
        lock.release(run_dir, job_id)
        return Ending(decision, None, exit_code)

    if spec.nodes > 1 and isinstance(status.get("exit_code"), int):
        exit_code = status["exit_code"]  # the launchers do not pass 75 through; rank 0's status does
    step = status.get("step")
    start_step = _event(run_dir, "start", part, job_id).get("start_step")
    decision = chain.decide(exit_code, part, spec.max_resubmits, spec.then_evaluate,
                            successor_queued=0 < part < spec.chain,
                            progressed=start_step is None or step is None or step > start_step, cancelled=cancelled)
    ledger.append_event(run_dir, "end", part, exit_code=exit_code, step=step, action=decision.action,
                        reason=decision.reason, kind=kind, **extra)
    print(f"[facefill] part {part}: trainer exit {exit_code} at step {step}: {decision.action} ({decision.reason})",
          file=sys.stderr, flush=True)
    job_exit = exit_code if decision.action == chain.STOP and exit_code != 0 else 0
    if decision.action in (chain.RESUBMIT, chain.EVALUATE):
        return Ending(decision, EVALUATE if decision.action == chain.EVALUATE else TRAIN, job_exit)
    if decision.action == chain.CONTINUE:
        queued = _event(run_dir, "submit", part + 1).get("job_id")
        write_chain_state(run_dir, "running", decision.reason, part, exit_code, job_id, spec.executor,
                          next_job_id=queued)
        if queued:
            lock.write_owner(run_dir, spec.executor, queued)
    elif decision.action == chain.DONE:
        write_chain_state(run_dir, "done", decision.reason, part, exit_code, job_id, spec.executor)
        lock.release(run_dir, job_id)
    else:
        if not cancelled:  # keep the user's word for it
            write_chain_state(run_dir, "stopped", decision.reason, part, exit_code, job_id, spec.executor)
        lock.release(run_dir, job_id)
    return Ending(decision, None, job_exit)


def qsub_args(spec: JobSpec, part: int, kind: str) -> list[str]:
    """``qsub`` arguments of part ``part`` (the first ones and every successor): its number and
    mode, which the script reads as FACEFILL_PART and FACEFILL_MODE; an evaluation gets its own
    walltime (the command line overrides the script's ``#PBS -l walltime``)."""
    args = ["-v", f"FACEFILL_PART={part},FACEFILL_MODE={kind}"]
    if kind == EVALUATE and spec.eval_walltime_s:
        args += ["-l", f"walltime={format_walltime(spec.eval_walltime_s)}"]
    return args


def submitted(spec: JobSpec, part: int, job_id: str, next_job_id: str | None = None, error: str | None = None) -> None:
    """The successor of ``part`` was queued as ``next_job_id``, or the scheduler refused it."""
    run_dir = spec.run_dir
    ended = _event(run_dir, "end", part, None)
    code, reason = ended.get("exit_code"), ended.get("reason", "")
    kind = EVALUATE if ended.get("action") == chain.EVALUATE else TRAIN
    if next_job_id:
        if _event(run_dir, "start", part + 1):  # the successor already runs (a fast local part): its word stands
            ledger.append_event(run_dir, "submit", part + 1, job_id=next_job_id, executor=spec.executor, kind=kind)
            return
        record_submission(spec, part + 1, kind, next_job_id)
        write_chain_state(run_dir, "evaluating" if kind == EVALUATE else "running",
                          f"{reason}; part {part + 1} is {next_job_id}", part, code, job_id, spec.executor,
                          next_job_id=next_job_id)
        print(f"[facefill] submitted part {part + 1} ({kind}) as {next_job_id}", file=sys.stderr, flush=True)
        return
    write_chain_state(run_dir, "stopped", f"could not submit part {part + 1}: {' '.join(str(error).split())}; "
                      "run jobs.submit again to continue", part, code, job_id, spec.executor)
    lock.release(run_dir, job_id)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m jobs.part", description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("start", "command", "end", "submitted"))
    p.add_argument("run_dir")
    p.add_argument("--part", type=int, required=True)
    p.add_argument("--kind", choices=(TRAIN, EVALUATE), default=TRAIN)
    p.add_argument("--job-id", required=True)
    p.add_argument("--data", help="command: the shards folder this part reads (staged or not)")
    p.add_argument("--exit-code", type=int, help="end: the exit code of what the part ran")
    p.add_argument("--next-job-id", help="submitted: the successor's job id")
    p.add_argument("--error", help="submitted: why the scheduler refused the successor")
    a = p.parse_args(argv)
    spec = JobSpec.load(Path(a.run_dir))
    if a.step == "start":
        skip = start(spec, a.part, a.kind, a.job_id)
        if skip:
            print(skip)
    elif a.step == "command":
        print("\n".join(command(spec, a.part, a.kind, a.job_id, a.data)))
    elif a.step == "end":
        ending = end(spec, a.part, a.kind, a.job_id, a.exit_code if a.exit_code is not None else 1)
        if ending.next_kind:
            print("\n".join(qsub_args(spec, a.part + 1, ending.next_kind)))
        return ending.job_exit
    else:
        submitted(spec, a.part, a.job_id, a.next_job_id, a.error or "no job id")
    return 0


if __name__ == "__main__":
    run_cli(main)
