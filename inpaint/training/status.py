"""How a training process ended, in the form the job layer reads: exit code, ``status.json``
and a one-line summary as the last line on stdout."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from inpaint.atomic import write_json

STATUS_FILE = "status.json"

EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_STOPPED = 75  # EX_TEMPFAIL: "try again later" — resubmit to continue

STATE_OF_EXIT = {EXIT_FINISHED: "finished", EXIT_STOPPED: "stopped"}


@dataclass
class Outcome:
    exit_code: int
    message: str
    epoch: int | None = None
    step: int | None = None
    total_steps: int | None = None

    @property
    def state(self) -> str:
        return STATE_OF_EXIT.get(self.exit_code, "failed")

    def line(self) -> str:
        """The last stdout line: state, position and why, e.g. ``stopped: step 40/300 …``."""
        where = f" step {self.step}/{self.total_steps}" if self.step is not None else ""
        return f"{self.state} (exit {self.exit_code}){where}: {self.message}"


def write_status(run_dir: str | os.PathLike, outcome: Outcome) -> Path:
    """Rewrite ``run_dir/status.json`` atomically."""
    path = Path(run_dir) / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"state": outcome.state, **asdict(outcome), "time": time.time()}
    record = {k: record[k] for k in ("state", "exit_code", "epoch", "step", "total_steps", "message", "time")}
    write_json(path, record, indent=2)
    return path


def read_status(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
