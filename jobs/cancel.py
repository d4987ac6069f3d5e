"""``python -m jobs.cancel RUN_DIR``: end a chain for good.

The chain is marked cancelled *first*, so a part that is stopping right now does not submit a
successor; then the live jobs are deleted (PBS ``qdel`` / SLURM ``scancel``) or, locally, the
part's processes get SIGTERM (the trainer checkpoints and exits).
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Sequence

from inpaint.cli import run_cli
from inpaint.errors import ConfigError
from jobs import ledger, lock
from jobs.chain_state import ENDED, read_chain_state, write_chain_state
from jobs.paths import LEDGER, under


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


def _open_job_ids(run_dir: Path) -> list[str]:
    return [str(p["job_id"]) for p in ledger.read_parts(run_dir) if p.get("job_id") and "exit_code" not in p]


def cancel(run_dir: Path | str) -> list[str]:
    """Cancel the chain in ``run_dir``; returns what was signalled or deleted."""
    run = Path(run_dir)
    if not under(run, LEDGER).is_file():
        raise ConfigError(f"{under(run, LEDGER)}: no chain recorded here; is {run} a run dir made by jobs.submit?")
    state = read_chain_state(run)
    if state.get("state") in ENDED and lock.read_owner(run) is None:
        return []
    write_chain_state(run, "cancelled", "cancelled with jobs.cancel", int(state.get("part") or 0),
                      state.get("exit_code"), state.get("job_id"), state.get("executor"))
    owner = lock.read_owner(run) or {}
    executor = owner.get("executor") or state.get("executor")
    done: list[str] = []
    if executor == "pbs":
        from jobs.pbs_commands import qdel
        deleted, err = qdel(_open_job_ids(run))
        done += deleted
        if err:
            print(f"qdel: {err}")
    elif executor == "slurm":
        from jobs.slurm_commands import scancel
        cancelled, err = scancel(_open_job_ids(run))
        done += cancelled
        if err:
            print(f"scancel: {err}")
    elif executor == "local" and owner.get("pid"):
        pid = int(owner["pid"])
        for target in [*descendants(pid), pid]:
            try:
                os.kill(target, signal.SIGTERM)
                done.append(str(target))
            except ProcessLookupError:
                pass
    lock.release(run)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.cancel", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    args = p.parse_args(argv)
    done = cancel(args.run_dir)
    print(f"cancelled {args.run_dir}" + (f" ({', '.join(done)})" if done else " (nothing was running)"))
    return 0


if __name__ == "__main__":
    run_cli(main)
