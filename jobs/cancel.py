"""``python -m jobs.cancel RUN_DIR``: end a chain for good.

The chain is marked cancelled *first*, so a part that is stopping right now does not submit a
successor; then the live jobs of the run dir's current chain are deleted (PBS ``qdel`` / SLURM
``scancel``) or, locally, the part's processes get SIGTERM (the trainer checkpoints and exits) —
only when the recorded pid is still that process on this host.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.errors import ConfigError
from jobs import ledger, lock
from jobs.chain import CANCELLED_REASON
from jobs.chain_state import ChainState, read_chain_state, write_chain_state
from jobs.paths import LEDGER, OWNER, under
from jobs.records import PartRecord
from jobs.scheduler import get


def _open_parts(run: Path, chain: str | None) -> list[PartRecord]:
    """The parts of ``chain`` with a job and no end record yet: queued or running."""
    return [p for p in ledger.parts_of(ledger.read_parts(run), chain) if p.job_id and not p.ended]


def cancel(run_dir: Path | str) -> list[str]:
    """Cancel the chain in ``run_dir``; returns what was signalled or deleted.

    Only the run dir's current chain is cancelled (``chain.json`` names it; a run dir submitted
    again holds older chains too, whose parts have ended). An owner file that cannot be read is
    removed, so a damaged one never blocks the run dir."""
    run = Path(run_dir)
    damaged = lock.owner_unreadable(run)
    if not under(run, LEDGER).is_file():
        if damaged:
            lock.release(run)
            return [f"{under(run, OWNER)} ({damaged}) removed"]
        raise ConfigError(f"{under(run, LEDGER)}: no chain recorded here; is {run} a run dir made by jobs.submit?")
    state = read_chain_state(run)
    owner = lock.read_owner(run)
    if state is not None and state.state.ended and owner is None:  # nothing runs; a damaged owner file just goes
        lock.release(run)
        return [f"{under(run, OWNER)} ({damaged}) removed"] if damaged else []
    chain = ledger.current_chain(ledger.read_parts(run), state.chain if state else None)
    open_parts = _open_parts(run, chain)
    # the job being cancelled is the one that owns the run dir (or the newest open part), never
    # the previous part that wrote chain.json when it handed on
    newest = open_parts[-1] if open_parts else None
    job_id = (owner.job_id if owner else None) or (newest.job_id if newest else None) or (state.job_id if state else None)
    part = (newest.part if newest else 0) or (state.part if state else 0)
    executor = (owner.executor if owner else None) or (state.executor if state else None)
    write_chain_state(
        run, ChainState.CANCELLED, CANCELLED_REASON, part, state.exit_code if state else None, job_id, executor, chain=chain
    )
    ids = list(dict.fromkeys([str(p.job_id) for p in open_parts] + ([owner.job_id] if owner and owner.job_id else [])))
    done: list[str] = [f"{under(run, OWNER)} ({damaged}) removed"] if damaged else []
    found = get(executor)
    if found is not None:
        done += found.cancel(owner, ids)
    lock.release(run)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m jobs.cancel", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    args = p.parse_args(argv)
    done = cancel(args.run_dir)
    print(f"cancelled {args.run_dir}" + (f" ({', '.join(done)})" if done else " (nothing was running)"))
    return 0


if __name__ == "__main__":
    run_cli(main)
