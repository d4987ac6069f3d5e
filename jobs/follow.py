"""Watch a chain from the terminal: print each part as the ledger records it, and the trainer's
own lines from ``train.log`` as they come (step, img/s, ETA), until it ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from jobs import ledger, lock
from jobs.chain_state import ChainRecord, ChainState, read_chain_state
from jobs.log_tail import LogTail
from jobs.records import OwnerRecord

TRAIN_PREFIX = "[train] "  # a line of the trainer's log, beside the job layer's "[facefill]" lines
DEAD_GRACE_S = 10.0  # an owner may vanish for a moment while a part hands over to the next


def describe_event(ev: dict) -> str:
    part, kind = ev.get("part"), ev.get("kind", "train")
    label = f"part {part}" if kind == "train" else f"{kind} (part {part})"
    if ev.get("event") == "submit":
        return f"{label}: submitted as job {ev.get('job_id')}"
    if ev.get("event") == "start":
        resumed = f", resumed from step {ev['start_step']}" if kind == "train" and ev.get("start_step") else ""
        return f"{label}: started on {ev.get('host', '?')}{resumed}"
    if ev.get("event") == "end":
        step = f" at step {ev['step']}" if ev.get("step") is not None else ""
        action = f" -> {ev['action']} ({ev.get('reason', '')})" if ev.get("action") else ""
        said = f"\n[facefill]   {ev['status_line']}" if ev.get("status_line") else ""
        return f"{label}: exit {ev.get('exit_code')}{step}{action}{said}"
    return f"{label}: {ev.get('event')}"


def follow(
    run_dir: Path | str,
    out: TextIO,
    poll_s: float = 0.5,
    is_alive: Callable[[OwnerRecord], bool] | None = None,
    chain: str | None = None,
    log: LogTail | None = None,
) -> ChainRecord:
    """Block until the chain in ``run_dir`` ends; return its final chain state. With ``chain``,
    only that chain's events are printed (a run dir submitted again holds the earlier ones too);
    with ``log``, the new lines of that file too (the trainer's, opened before the chain started).

    If the owning process disappears without the chain reaching an end state (killed, out of
    memory), a "stopped" state naming the lost part is returned instead of waiting forever.
    """
    alive = is_alive or (lambda owner: lock.owner_alive(owner)[0])
    seen = 0
    dead_since: float | None = None

    def show_log() -> None:
        for line in log.new_lines() if log is not None else ():
            print(f"{TRAIN_PREFIX}{line}", file=out, flush=True)

    while True:
        events = [e for e in ledger.read_events(run_dir) if chain is None or e.get("chain") == chain]
        for ev in events[seen:]:
            if ev.get("event") == "end":
                show_log()  # the trainer exited before its part recorded the end: its lines come first
            print(f"[facefill] {describe_event(ev)}", file=out, flush=True)
        seen = len(events)
        show_log()
        state = read_chain_state(run_dir)
        owner = lock.read_owner(run_dir)
        if state is not None and state.state.ended and owner is None:
            show_log()
            return state
        if owner is not None and alive(owner):
            dead_since = None
        else:
            dead_since = dead_since or time.monotonic()
            if time.monotonic() - dead_since > DEAD_GRACE_S:
                state = read_chain_state(run_dir)
                show_log()
                if state is not None and state.state.ended:
                    return state
                lost = owner.job_id if owner else "?"
                return ChainRecord(
                    ChainState.STOPPED,
                    f"job {lost} ended without a decision (killed?); "
                    f"see {Path(run_dir) / 'jobs' / 'submitit'} and submit again to resume",
                )
        time.sleep(poll_s)
