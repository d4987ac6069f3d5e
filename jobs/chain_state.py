"""The chain's latest decision (``run_dir/jobs/chain.json``), written by whichever part decided.

States (:class:`jobs.records.ChainState`): submitted, running, evaluating, done, evaluated,
stopped, cancelled. While a part runs (running, evaluating) the record names the job carrying the
chain on (``next_job_id``), so a reader can ask the scheduler whether it ended without writing its
own end. ``chain`` names the submission the record belongs to: a part of an older chain of the
same run dir (still ending after a resubmission) must neither overwrite it nor hand on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inpaint.core.atomic import write_json
from jobs.ledger import now_iso
from jobs.paths import CHAIN_STATE, under
from jobs.records import ENDED, ChainRecord, ChainState

__all__ = ["ENDED", "ChainRecord", "ChainState", "read_chain_state", "write_chain_state"]


def write_chain_state(
    run_dir: Path | str,
    state: ChainState | str,
    reason: str,
    part: int = 0,
    exit_code: int | None = None,
    job_id: str | None = None,
    executor: str | None = None,
    chain: str | None = None,
    **extra: Any,
) -> None:
    record = ChainRecord(ChainState(state), reason, part, exit_code, job_id, executor, chain or None, now_iso(), extra)
    write_json(under(run_dir, CHAIN_STATE), record.to_dict())


def read_chain_state(run_dir: Path | str) -> ChainRecord | None:
    """The run dir's chain record; None when there is none (or it cannot be read as one)."""
    try:
        data = json.loads(under(run_dir, CHAIN_STATE).read_text())
        return ChainRecord.from_dict(data) if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
