"""Where the job layer keeps its files inside a run dir (one place; the job script asks Python)."""

from __future__ import annotations

from pathlib import Path

JOBS_DIR = "jobs"  # everything below is the job layer's, never the trainer's
LEDGER = "jobs/ledger.jsonl"  # one event per line, merged into one record per part
OWNER = "jobs/owner.json"  # the live job (or local process) that owns the run dir
CHAIN_STATE = "jobs/chain.json"  # the chain's last decision: state, reason, part, exit code
SPEC = "jobs/spec.json"  # the resolved submission, for parts, status, cancel, logs
PART_LOCK = "jobs/part.lock"  # flock'ed while a part decides and records its end
DISK_RESERVE = "jobs/disk.reserve"  # room a part frees to record its stop on a full disk
PBS_SCRIPT = "jobs/facefill.pbs.sh"
SUBMITIT_DIR = "jobs/submitit"
LOGS_DIR = "logs"


def under(run_dir: Path | str, rel: str) -> Path:
    return Path(run_dir) / rel
