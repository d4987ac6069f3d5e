"""``python -m jobs.submit``: start (or continue) a training run as a chain of batch jobs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from inpaint.core.cli import run_cli
from inpaint.core.contract import TRAIN_LOG
from inpaint.core.errors import FacefillError
from jobs import disk_reserve, ledger, lock
from jobs.chain_state import ChainState, write_chain_state
from jobs.log_tail import LogTail
from jobs.options import parse, resolve
from jobs.part import TRAIN, record_submission
from jobs.paths import CHAIN_STATE, JOBS_DIR, LOGS_DIR, under
from jobs.scheduler import scheduler
from jobs.spec import JobSpec


def _start_background(argv: Sequence[str], run_dir: str) -> int:
    """Re-run this command detached (local --no-wait): the chain outlives the terminal."""
    log = Path(run_dir) / LOGS_DIR / "chain.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [a for a in argv if a != "--no-wait"] + ["--foreground-after-fork"]
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobs.submit", *args], stdout=fh, stderr=fh, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return proc.pid


def _warn(error: FacefillError) -> None:
    print(f"warning: {error} (dry run: not checked further)", file=sys.stderr)


def dry_run(spec: JobSpec) -> int:
    """Print what would be submitted (PBS: the script) and the trainer command each part runs."""
    script = scheduler(spec.executor).preview(spec)
    print(script, end="")
    print(
        f"# {spec.executor} executor, parts of {spec.walltime}; each runs (the --time-limit becomes a --deadline "
        "fixed when the part starts):"
    )
    print(("# " if script else "") + " ".join([spec.python, "-m", *spec.trainer_argv()]))
    return 0


def submit_first(spec: JobSpec) -> tuple[JobSpec, list[str]]:
    """Submit part 1 (and any pre-submitted parts: PBS --chain) of a new chain; restore the previous chain
    state on error.

    Every submission is a new chain with its own id, even on a used run dir ("submit again to
    continue"): its parts are recorded apart from the old chain's, whose jobs may still be ending."""
    previous = under(spec.run_dir, CHAIN_STATE)
    previous_text = previous.read_text() if previous.is_file() else None
    spec = replace(spec, chain_id=ledger.new_chain_id())
    # A new chain must not inherit the end state of an old one (parts skip an ended chain).
    write_chain_state(
        spec.run_dir, ChainState.SUBMITTED, "first part submitted", 0, None, None, spec.executor, chain=spec.chain_id
    )
    disk_reserve.make(spec.run_dir)
    try:
        spec.save()
        ids = scheduler(spec.executor).submit(spec)
        for part, job_id in reversed(list(enumerate(ids, start=1))):
            record_submission(spec, part, TRAIN, job_id)  # the first part owns the run dir
        return spec, ids
    except BaseException:
        if previous_text is None:
            previous.unlink(missing_ok=True)
        else:
            previous.write_text(previous_text)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    detached = "--foreground-after-fork" in argv
    args = parse([a for a in argv if a != "--foreground-after-fork"])
    checks_only = args.dry_run or args.estimate
    spec = resolve(args, problem=_warn) if checks_only else resolve(args)
    if args.estimate:
        from jobs.estimate import print_estimate

        return print_estimate(spec, args.img_per_s, args.max_steps)
    if args.dry_run:
        return dry_run(spec)

    created = [p for p in (Path(spec.run_dir), under(spec.run_dir, JOBS_DIR)) if not p.exists()]
    if not detached:  # a detached chain runs on the claim its parent took for it
        lock.claim(spec.run_dir)
    runs_here = scheduler(spec.executor).runs_here
    try:
        if runs_here and args.no_wait and not detached:
            pid = _start_background(argv, spec.run_dir)
            lock.write_owner(spec.run_dir, spec.executor, str(pid), pid)
            print(
                f"chain running in the background (pid {pid}); follow it with: "
                f"python -m jobs.status {spec.run_dir}  (log: {Path(spec.run_dir) / LOGS_DIR / 'chain.log'})"
            )
            return 0
        # opened before part 1 starts: every line of this run, none of an earlier one
        train_log = LogTail(Path(spec.run_dir) / TRAIN_LOG) if runs_here and not detached else None
        spec, ids = submit_first(spec)
    except BaseException:
        lock.release(spec.run_dir, str(os.getpid()))
        for path in created:  # a refused first submission leaves no folder it made
            shutil.rmtree(path, ignore_errors=True)
        raise
    if not runs_here:
        print(scheduler(spec.executor).announce(spec, ids), flush=True)
        return 0
    print(
        f"[facefill] training locally in {spec.run_dir}; log: {Path(spec.run_dir) / TRAIN_LOG}; parts of at most {spec.walltime}",
        flush=True,
    )
    from jobs.follow import follow
    from jobs.status import summarize_outputs

    final = follow(spec.run_dir, sys.stdout, chain=spec.chain_id or None, log=train_log)
    print(f"[facefill] chain {final.state.value}: {final.reason}")
    print(summarize_outputs(spec.run_dir))
    return 0 if final.state.finished else 1


if __name__ == "__main__":
    run_cli(main)
