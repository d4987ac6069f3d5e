"""``python -m jobs.logs RUN_DIR [--part N]``: the log of a chain part, wherever its executor put it.

PBS writes ``run_dir/logs/<job id>.OU``-style files (``-o`` names the folder); submitit writes
``run_dir/jobs/submitit/<job id>_0_log.out``; the trainer's own ``train.log`` is shown with
``--train``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.contract import TRAIN_LOG
from inpaint.core.errors import ConfigError
from jobs import ledger
from jobs.chain_state import read_chain_state
from jobs.scheduler import get, names, scheduler


def log_files(run_dir: Path | str, job_id: str, executor: str | None = None) -> list[Path]:
    """Every file that holds output of ``job_id``, where its scheduler writes them (every
    scheduler's places when the part does not name a known one)."""
    found = get(executor)
    every = [found] if found is not None else [scheduler(name) for name in names()]
    return sorted(dict.fromkeys(path for each in every for path in each.log_files(run_dir, job_id)))


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m jobs.logs", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--part", type=int, help="part number (default: the latest)")
    p.add_argument("--train", action="store_true", help="show the trainer's train.log instead")
    p.add_argument("--tail", type=int, default=0, help="only the last N lines")
    args = p.parse_args(argv)
    run = Path(args.run_dir)
    if args.train:
        files = [run / TRAIN_LOG] if (run / TRAIN_LOG).is_file() else []
        label = TRAIN_LOG
    else:
        parts = ledger.read_parts(run)
        if not parts:
            raise ConfigError(f"{run}: no chain recorded (jobs/ledger.jsonl missing); pass a run dir made by jobs.submit")
        # part N of the current chain (a run dir submitted again holds earlier chains too), else the latest N
        recorded = read_chain_state(run)
        current = ledger.parts_of(parts, ledger.current_chain(parts, recorded.chain if recorded else None)) or parts
        if args.part:
            chosen = next((x for x in [*reversed(current), *reversed(parts)] if x.part == args.part), None)
        else:
            chosen = current[-1]
        if chosen is None:
            raise ConfigError(f"{run}: no part {args.part}; parts are {[x.part for x in parts]}")
        label = f"part {chosen.part} (job {chosen.job_id})"
        files = log_files(run, chosen.job_id or "", chosen.executor)
    if not files:
        print(f"no log yet for {label} in {run} (PBS copies the job log when the job ends)", file=sys.stderr)
        return 1
    for f in files:
        lines = f.read_text(errors="replace").splitlines()
        print(f"==> {f} <==")
        print("\n".join(lines[-args.tail :] if args.tail else lines))
    return 0


if __name__ == "__main__":
    run_cli(main)
