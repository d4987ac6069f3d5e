"""Where the job layer keeps its files inside a run dir (one place, shared by Python and bash)."""

from __future__ import annotations

from pathlib import Path

JOBS_DIR = "jobs"
LEDGER = "jobs/ledger.jsonl"     # one event per line, merged into one record per part
OWNER = "jobs/owner.json"        # the live job (or local process) that owns the run dir
CHAIN_STATE = "jobs/chain.json"  # the chain's last decision: state, reason, part, exit code
SPEC = "jobs/spec.json"          # the resolved submission, for status/cancel/logs/resubmits
PBS_SCRIPT = "jobs/facefill.pbs.sh"
SUBMITIT_DIR = "jobs/submitit"
LOGS_DIR = "logs"


def under(run_dir: Path | str, rel: str) -> Path:
    return Path(run_dir) / rel
