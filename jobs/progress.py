"""Where a training run stands: step, total, epoch and speed, from what the trainer publishes.

Two files of the trainer's contract (``inpaint.core.contract``) say it: ``status.json``, rewritten
when a trainer process ends (and wherever the trainer rewrites it while running), and
``metrics.jsonl``, one record per progress line of ``train.log``. A running part is where the
newer of the two says. Epochs are numbered as train.log numbers them ("epoch E/90", the epoch the
step belongs to, from 1), whereas status.json's ``epoch`` counts the epochs completed: one place
turns one into the other.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from inpaint.core.contract import METRICS_FILE, STATUS_FILE, read_status

TAIL_BYTES = 64 * 1024  # the newest metrics record is in the file's last lines; it grows for weeks


@dataclass(frozen=True)
class Position:
    """Where the trainer is (or stopped), with the time that was written, for people and --json."""

    step: int | None
    total_steps: int | None
    epoch: int | None  # as train.log numbers it: 1 during the first epoch
    images_per_s: float | None
    time: float | None
    source: str  # the file it was read from

    def describe(self) -> str:
        """``step 412/3000, epoch 2, 3.1 img/s``."""
        words = [f"step {self.step}" + (f"/{self.total_steps}" if self.total_steps is not None else "")]
        if self.epoch is not None:
            words.append(f"epoch {self.epoch}")
        if self.images_per_s:
            words.append(f"{self.images_per_s:.1f} img/s")
        return ", ".join(words)


def last_metrics(run_dir: Path | str) -> dict:
    """The newest record of ``metrics.jsonl`` (step, 1-based epoch, time, img_per_s), or {}."""
    path = Path(run_dir) / METRICS_FILE
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - TAIL_BYTES))
            lines = fh.read().split(b"\n")
    except OSError:
        return {}
    for raw in reversed(lines):
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # a line cut short (being written, or the tail's first line)
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            return record
    return {}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def status_epoch(status: dict, record: dict) -> int | None:
    """The epoch of status.json's step as train.log numbers it. The progress record of that same
    step says it exactly; otherwise the trainer stopped within an epoch (completed + 1), or
    finished at the end of its last one."""
    epoch = status.get("epoch")
    if not isinstance(epoch, int):
        return None
    if record.get("step") == status.get("step") and isinstance(record.get("epoch"), int):
        return record["epoch"]
    return max(epoch, 1) if status.get("state") == "finished" else epoch + 1


def position(run_dir: Path | str) -> Position | None:
    """Where the run is now: the newer of status.json and the newest metrics record; None before
    the trainer published anything."""
    status, record = read_status(run_dir), last_metrics(run_dir)
    status_time, record_time = _number(status.get("time")), _number(record.get("time"))
    total = status.get("total_steps") if isinstance(status.get("total_steps"), int) else None
    if record and (status_time is None or (record_time or 0) > status_time):
        return Position(
            record["step"],
            total,
            record.get("epoch") if isinstance(record.get("epoch"), int) else None,
            _number(record.get("img_per_s")),
            record_time,
            METRICS_FILE,
        )
    if isinstance(status.get("step"), int):
        return Position(
            status["step"], total, status_epoch(status, record), _number(status.get("images_per_s")), status_time, STATUS_FILE
        )
    return None
