"""``python -m jobs.status RUN_DIR``: where a chain stands, part by part.

Each part's job is looked up where it ran (``Scheduler.states``): PBS in one batched ``qstat -x -f
-F json`` call (finished jobs included; ids a server leaves unanswered are asked alone), SLURM with
``squeue`` then ``scontrol show job`` (which keeps ended jobs for ``MinJobAge``), a local part by its pid. A
scheduler that cannot answer is reported as "unknown", never as a lost job. A part whose job
ended without recording its end (killed at walltime, node failure, ``scancel -s KILL``) is found
from the scheduler's state, and the chain is reported stopped instead of "running" or
"evaluating" forever.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.contract import EVAL_DIR, SAMPLES_DIR, read_status
from inpaint.core.errors import ConfigError
from jobs import ledger, lock
from jobs.chain_state import ChainRecord, ChainState, read_chain_state
from jobs.paths import LEDGER, under
from jobs.progress import Position, last_metrics, position, status_epoch
from jobs.records import PartRecord
from jobs.scheduler import Seen, names, scheduler


def scheduler_states(parts: list[PartRecord]) -> tuple[dict[str, Seen], list[str]]:
    """job id -> what its scheduler says, for every part that has a job (for a scheduler that
    cannot tell how an ended job went, only the parts still open); (states, warnings)."""
    seen: dict[str, Seen] = {}
    warnings: list[str] = []
    for name in names():
        asked = scheduler(name)
        ids = [str(p.job_id) for p in parts if p.executor == name and p.job_id and (asked.tracks_ended_jobs or not p.ended)]
        if ids:
            found, warning = asked.states(ids)
            seen.update(found)
            if warning:
                warnings.append(warning)
    return seen, warnings


def unrecorded_end(part: PartRecord, seen: dict[str, Seen]) -> Seen | None:
    """The scheduler's word for a part whose job ended without the part recording its end."""
    state = seen.get(str(part.job_id))
    return state if state is not None and state.ended and not part.ended else None


def effective_chain(
    run_dir: Path, chain: ChainRecord | None, parts: list[PartRecord], seen: dict[str, Seen]
) -> ChainRecord | None:
    """chain.json, unless the newest part of its chain ended without a word: then the chain has stopped."""
    parts = ledger.parts_of(parts, ledger.current_chain(parts, chain.chain if chain else None))
    if not parts or (chain is not None and chain.state.ended):
        return chain
    last = parts[-1]
    ended = unrecorded_end(last, seen)
    if ended is None:
        return chain
    how = "ended without an end record" if last.start_time else "ended before it started"
    reason = (
        f"part {last.part} ({last.kind or 'train'}) {how} ({ended.words}); read its log with "
        f"`python -m jobs.logs {run_dir} --part {last.part}`, then submit again"
    )
    recorded = {"recorded_state": chain.state.value if chain else None, "recorded_reason": chain.reason if chain else None}
    if chain is None:
        return ChainRecord(ChainState.STOPPED, reason, extra=recorded)
    return replace(chain, state=ChainState.STOPPED, reason=reason, extra={**chain.extra, **recorded})


def summarize_outputs(run_dir: Path | str) -> str:
    """What the run has produced so far (from the trainer's status.json), for status and chain ends."""
    run = Path(run_dir)
    status = read_status(run)
    lines = [f"run dir: {run}"]
    if status:
        lines.append(
            f"  trainer: {status.get('state')} at step {status.get('step')}/{status.get('total_steps')}"
            f" (epoch {status_epoch(status, last_metrics(run))}): {status.get('message', '')}"
        )
        if status.get("checkpoint"):
            lines.append(f"  latest checkpoint: {run / status['checkpoint']}")
    samples = sorted((run / SAMPLES_DIR).glob("*.png"))
    if samples:
        lines.append(f"  samples: {samples[-1]} ({len(samples)} images)")
    if (run / EVAL_DIR).is_dir():
        lines.append(f"  evaluation: {run / EVAL_DIR}")
    return "\n".join(lines)


def _part_state(part: PartRecord, seen: dict[str, Seen]) -> str:
    state = seen.get(str(part.job_id or "?"))
    usage = state.usage() if state else ""
    if state is not None and unrecorded_end(part, seen) is not None:
        return (f"ended without an end record [{state.words}]" if part.start_time else f"never ran [{state.words}]") + usage
    if part.action:
        cause = f" · interrupted ({part.interrupted})" if part.interrupted else ""
        return (f"{part.action} [{state.words}]" if state else part.action) + usage + cause
    now = f" — {Position(**part.current).describe()}" if part.current else ""
    return (state.words if state else "") + now + usage


def _attempt_state(attempt: PartRecord) -> str:
    """How an earlier run of a part ended: interrupted (and why), or without an end record."""
    if not attempt.ended:
        return "ended without an end record; the part ran again"
    cause = f"interrupted ({attempt.interrupted})" if attempt.interrupted else "ended"
    return f"{cause}: {attempt.action or '?'} ({attempt.reason or ''})"


def current_position(run: Path, part: PartRecord, seen: dict[str, Seen]) -> dict | None:
    """Where a running training part is now, when the trainer has published it since the part
    started (an older status.json is the previous part's end)."""
    if not part.training or not part.start_time or part.ended:
        return None
    if unrecorded_end(part, seen) is not None:
        return None
    now = position(run)
    if now is None or now.time is None or now.time < ledger.iso_seconds(part.start_time):
        return None
    return asdict(now)


def _row(part: PartRecord, run: PartRecord, state: str) -> str:
    """One line of the table: ``run`` is the part itself or one of its earlier attempts."""
    step = run.step if run.step is not None else (run.current or {}).get("step", "")
    if run.host and "," in run.host:  # a multi-node part records every node it ran on
        state += f" (nodes {run.host})"
    return (
        f"{part.part:>4}  {part.kind or 'train':8}  {str(run.job_id or '?'):22}  "
        f"{run.submit_time or '':20}  {run.start_time or '':20}  {run.end_time or '':20}  "
        f"{'' if run.exit_code is None else run.exit_code:>4}  {str(step):>8}  {state}"
    )


def render_status(run_dir: Path | str) -> tuple[str, dict]:
    run = Path(run_dir)
    if not under(run, LEDGER).is_file():
        raise ConfigError(f"{under(run, LEDGER)}: no chain recorded here; is {run} a run dir made by jobs.submit?")
    problems: list[str] = []
    parts = ledger.read_parts(run, problems)
    seen, warnings = scheduler_states(parts)
    warnings = problems + warnings
    recorded = read_chain_state(run)
    chain = effective_chain(run, recorded, parts, seen)
    current = ledger.current_chain(parts, recorded.chain if recorded else None)
    several = len(ledger.chains(parts)) > 1
    lines = [f"chain: {chain.state.value if chain else '?'} — {chain.reason if chain else ''}"]
    lines += [f"warning: {w}" for w in warnings]
    lines.append(
        f"{'part':>4}  {'kind':8}  {'job id':22}  {'submitted':20}  {'started':20}  {'ended':20}  {'exit':>4}  {'step':>8}  state / action"
    )
    parts = [replace(p, current=current_position(run, p, seen) or p.current) if p.chain == current else p for p in parts]
    for chain_id in ledger.chains(parts):
        if several:
            lines.append(f"-- chain {chain_id}" + (" (current)" if chain_id == current else " (an earlier submission)"))
        for p in ledger.parts_of(parts, chain_id):
            for a in p.attempts:
                lines.append(_row(p, replace(a, submit_time=p.submit_time), _attempt_state(a)))
            lines.append(_row(p, p, _part_state(p, seen)))
    owner = lock.read_owner(run)
    if owner:
        lines.append(f"owner: {owner.executor} job {owner.job_id}")
    lines.append(summarize_outputs(run))
    data = {
        "chain": chain.to_dict() if chain else {},
        "parts": [p.to_dict() for p in parts],
        "scheduler": {job: s.words for job, s in seen.items()},
        "jobs": {job: s.detail for job, s in seen.items() if s.detail},
        "warning": "; ".join(warnings) or None,
    }
    return "\n".join(lines), data


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m jobs.status", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    text, data = render_status(args.run_dir)
    try:
        print(json.dumps(data, indent=1) if args.json else text, flush=True)
    except BrokenPipeError:
        # the reader left (`| head`): not an error; point stdout at /dev/null so the final flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    run_cli(main)
