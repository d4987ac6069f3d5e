"""``python -m inpaint.train``: train a model in a run dir, resuming whatever is already there.

The job layer's only interface to training: arguments in, exit code out (0 finished, 75 stopped
early with a valid checkpoint — run again, 1 training failure, 2 bad input), ``status.json`` and
a one-line status as the last stdout line.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.contract import EXIT_STOPPED
from inpaint.core.errors import ConfigError
from inpaint.training.signals import StopRequest  # standard library only: installed before torch loads


def parse_deadline(text: str) -> float:
    """A UNIX time (``1767225600``) or an ISO 8601 date-time (``2026-01-01T12:00:00+01:00``).

    ``nan`` and ``inf`` parse as floats but are no time: ``nan`` compares false with everything,
    so it would silently mean "no deadline".
    """
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite time; give UNIX seconds or an ISO 8601 date-time")
        return value
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a UNIX time nor an ISO 8601 date-time") from None


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0 (``nan`` and ``inf`` would mean "no limit")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m inpaint.train", description="Train a facefill model in a run dir, resuming whatever is already there.",
                                epilog="Exit codes: 0 finished, 75 stopped early with a checkpoint (run again "
                                       "to continue), 1 training failure, 2 bad input. Ctrl-C, SIGTERM, SIGUSR1 or "
                                       "SIGUSR2: checkpoint at the end of the step, exit 75; a second Ctrl-C aborts "
                                       "at once.")
    p.add_argument("--config", required=True, help="YAML file or packaged name (smoke, model1, model2, model3)")
    p.add_argument("--data", required=True, type=Path, help="shard folder written by data_prep.pack (holds index.json)")
    p.add_argument("--run-dir", required=True, type=Path, help="where checkpoints, logs and samples go; resumed if it has checkpoints")
    p.add_argument("--time-limit", type=positive_seconds, metavar="S", help="wall-clock budget of this process in seconds; stops with a checkpoint before it runs out (exit 75)")
    p.add_argument("--deadline", type=parse_deadline, metavar="T", help="absolute end time (UNIX seconds or ISO 8601); like --time-limit")
    p.add_argument("--max-steps", type=int, metavar="N", help="cap on the total number of optimizer steps (same as --set train.max_steps=N)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels: stop+resume gives bit-identical weights (slower)")
    p.add_argument("--force", action="store_true", help="resume even if the config or shards differ from the checkpoint's")
    p.add_argument("--allow-world-size-change", action="store_true",
                   help="resume a checkpoint written by another number of processes (nodes x processes per node), "
                        "knowing the batch order then differs from an uninterrupted run's; refused without it")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=1e-4 (repeatable)")
    return p


def main(argv: Sequence[str] | None = None, whole_process: bool = False) -> int:
    """Train; ``whole_process``: this is the process (``python -m inpaint.train``), so the stop
    signals are caught from the first line on and ignored once the outcome is final."""
    started = time.time()  # --time-limit counts from here: loading torch and set-up use the budget too
    # Caught before anything heavy: a SIGTERM while torch loads or the data is read must end in a
    # status line and exit 75 (the job layer resubmits), not in the default death (143).
    stop = StopRequest().install()
    try:
        return _train_from_args(argv, started, stop, whole_process)
    finally:
        if whole_process:
            final_outcome()
        else:
            stop.restore()  # in-process callers (tests, notebooks) get their handlers back


def final_outcome() -> None:
    """From here on the exit code is decided and status.json written: a late SIGTERM, SIGUSR1 or
    SIGUSR2 (a scheduler's stop racing the finish) must not turn it into death by signal. Ignored,
    not caught: the interpreter resets caught signals to the default while it shuts down."""
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)


def _train_from_args(argv: Sequence[str] | None, started: float, stop: StopRequest, whole_process: bool) -> int:
    args = build_parser().parse_args(argv)
    from inpaint.core.config import load_config
    from inpaint.core.shard_format import read_index

    overrides = list(args.overrides)
    if args.max_steps is not None:
        if args.max_steps < 1:
            raise ConfigError(f"--max-steps {args.max_steps} must be a positive number of steps")
        overrides.append(f"train.max_steps={args.max_steps}")
    config = load_config(args.config, overrides)
    # Like the config, the shard folder is checked before the run dir is taken: a mistyped --data
    # must leave no run dir behind and say so once, not again as a status line.
    read_index(args.data)
    from inpaint.training.loop import TrainOptions, train  # torch: seconds, so after the quick checks

    opts = TrainOptions(config=config, data_root=args.data, run_dir=args.run_dir, device=args.device,
                        time_limit=args.time_limit, deadline=args.deadline, deterministic=args.deterministic,
                        force=args.force, allow_world_size_change=args.allow_world_size_change, start_time=started,
                        **({"cpu_baseline": 0.0} if whole_process else {}))  # bill start-up to the run too
    outcome = train(opts, stop)
    if outcome.exit_code == EXIT_STOPPED and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 says it
        where = f"at step {outcome.step}" if outcome.step is not None else "before the first step"
        print(f"stopped {where}; run the same command to continue", file=sys.stderr, flush=True)
    return outcome.exit_code


if __name__ == "__main__":
    run_cli(lambda argv=None: main(argv, whole_process=True))
