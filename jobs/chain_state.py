"""The chain's latest decision (``run_dir/jobs/chain.json``), written by whichever part decided.

States: submitted, running, evaluating, done, evaluated, stopped, cancelled. While a part runs
(running, evaluating) the record names the job carrying the chain on (``next_job_id``), so a
reader can ask the scheduler whether it ended without writing its own end. ``chain`` names the
submission the record belongs to: a part of an older chain of the same run dir (still ending
after a resubmission) must neither overwrite it nor hand on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inpaint.core.atomic import write_json
from jobs.ledger import now_iso
from jobs.paths import CHAIN_STATE, under

ENDED = ("done", "evaluated", "stopped", "cancelled")


def write_chain_state(run_dir: Path | str, state: str, reason: str, part: int = 0,
                      exit_code: int | None = None, job_id: str | None = None,
                      executor: str | None = None, chain: str | None = None, **extra: Any) -> None:
    record = {"state": state, "reason": reason, "part": part, "exit_code": exit_code, "job_id": job_id,
              "executor": executor, **({"chain": chain} if chain else {}), **extra, "time": now_iso()}
    write_json(under(run_dir, CHAIN_STATE), record)


def read_chain_state(run_dir: Path | str) -> dict:
    try:
        data = json.loads(under(run_dir, CHAIN_STATE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
