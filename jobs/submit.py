"""``python -m jobs.submit``: start (or continue) a training run as a chain of batch jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from inpaint.atomic import atomic_open
from inpaint.cli import run_cli
from jobs import ledger, lock
from jobs.chain_state import write_chain_state
from jobs.options import JobSpec, parse, resolve
from jobs.paths import CHAIN_STATE, LOGS_DIR, PBS_SCRIPT, under


def _write_script(spec: JobSpec, text: str) -> Path:
    path = under(spec.run_dir, PBS_SCRIPT)
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
        os.fchmod(f.fileno(), 0o755)
    return path


def submit_pbs(spec: JobSpec) -> list[str]:
    """qsub the first part (or the K parts of ``--chain K``); nothing stays queued on error."""
    from jobs import pbs_commands
    from jobs.pbs_script import render

    script = _write_script(spec, render(spec))
    (Path(spec.run_dir) / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    try:
        for part in range(1, max(spec.chain, 1) + 1):
            extra = ["-v", f"FACEFILL_PART={part},FACEFILL_MODE=train"]
            if ids:
                extra = ["-W", f"depend=afterany:{ids[-1]}", *extra]
            ids.append(pbs_commands.qsub(script, extra))
    except pbs_commands.QsubError:
        if ids:
            pbs_commands.qdel(list(reversed(ids)))
        raise
    for part, job_id in enumerate(ids, start=1):
        ledger.append_event(spec.run_dir, "submit", part, job_id=job_id, executor="pbs", kind="train")
    lock.write_owner(spec.run_dir, "pbs", ids[0])
    return ids


def _start_background(argv: Sequence[str], run_dir: str) -> int:
    """Re-run this command detached (local --no-wait): the chain outlives the terminal."""
    log = Path(run_dir) / LOGS_DIR / "chain.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [a for a in argv if a != "--no-wait"] + ["--foreground-after-fork"]
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "jobs.submit", *args], stdout=fh, stderr=fh,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return proc.pid


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    detached = "--foreground-after-fork" in argv
    args = parse([a for a in argv if a != "--foreground-after-fork"])
    spec = resolve(args)

    if args.estimate:
        from jobs.estimate import print_estimate
        return print_estimate(spec, args.img_per_s)
    if args.dry_run:
        if spec.executor == "pbs":
            from jobs.pbs_script import render
            print(render(spec), end="")
        else:
            print(f"# {spec.executor} executor, parts of {spec.walltime}, trainer --time-limit {spec.time_limit_s}s")
            print(" ".join(spec.trainer_command()))
        return 0

    lock.check_unlocked(spec.run_dir)
    if spec.executor == "local" and args.no_wait and not detached:
        Path(spec.run_dir).mkdir(parents=True, exist_ok=True)
        pid = _start_background(argv, spec.run_dir)
        print(f"chain running in the background (pid {pid}); follow it with: "
              f"python -m jobs.status {spec.run_dir}  (log: {Path(spec.run_dir) / LOGS_DIR / 'chain.log'})")
        return 0

    Path(spec.run_dir).mkdir(parents=True, exist_ok=True)
    spec.save()
    # A new chain must not inherit the end state of an old one (parts skip an ended chain).
    previous = under(spec.run_dir, CHAIN_STATE)
    previous_text = previous.read_text() if previous.is_file() else None
    write_chain_state(spec.run_dir, "submitted", "first part submitted", 0, None, None, spec.executor)
    try:
        if spec.executor == "pbs":
            ids = submit_pbs(spec)
        else:
            from jobs.submitit_chain import submit_part
            job_id = submit_part(spec, 1)
    except Exception:
        if previous_text is None:
            previous.unlink(missing_ok=True)
        else:
            previous.write_text(previous_text)
        raise
    if spec.executor == "pbs":
        print(f"submitted {ids[0]}" + (f" (+{len(ids) - 1} held: {' '.join(ids[1:])})" if len(ids) > 1 else ""))
        print(f"run dir: {spec.run_dir}   status: python -m jobs.status {spec.run_dir}")
        return 0

    print(f"[facefill] {spec.executor} chain for {spec.run_dir}: part 1 is job {job_id} "
          f"(parts of {spec.walltime}, trainer --time-limit {spec.time_limit_s}s, max {spec.max_resubmits} resubmits)",
          flush=True)
    if spec.executor == "slurm":
        print(f"status: python -m jobs.status {spec.run_dir}")
        return 0
    from jobs.follow import follow
    from jobs.status import summarize_outputs
    final = follow(spec.run_dir, sys.stdout)
    print(f"[facefill] chain {final.get('state')}: {final.get('reason')}")
    print(summarize_outputs(spec.run_dir))
    return 0 if final.get("state") in ("done", "evaluated") else 1


if __name__ == "__main__":
    run_cli(main)
