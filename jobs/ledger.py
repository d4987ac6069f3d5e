"""The run dir's record of every part of a chain: who ran it, when, and how it ended.

Events are appended as single JSON lines (one ``write`` on an ``O_APPEND`` descriptor, so lines
from a job and its successor never interleave); :func:`read_parts` folds them into one record
per part. Every executor writes them through ``jobs.part`` (the PBS script calls it with the
node's ``python3``).
"""

from __future__ import annotations

import calendar
import json
import os
import time
from pathlib import Path
from typing import Any

from jobs.paths import LEDGER, under


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # every event's "time": UTC, to the second


def now_iso() -> str:
    return time.strftime(TIME_FORMAT, time.gmtime())


def iso_seconds(stamp: str) -> float:
    """Seconds since the epoch of a ledger time (UTC), to measure how long a part took."""
    return calendar.timegm(time.strptime(stamp, TIME_FORMAT))


def append_event(run_dir: Path | str, event: str, part: int, **fields: Any) -> None:
    """Add one event (``submit``, ``start``, ``end``) for ``part`` to the ledger."""
    path = under(run_dir, LEDGER)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"event": event, "part": int(part), "time": now_iso(), **fields}
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_events(run_dir: Path | str) -> list[dict]:
    path = under(run_dir, LEDGER)
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a SIGKILL mid-write; the next part's events still count
    return events


def read_parts(run_dir: Path | str) -> list[dict]:
    """One record per part: job id, executor, submit/start/end time, exit code, steps, action."""
    parts: dict[int, dict] = {}
    for ev in read_events(run_dir):
        rec = parts.setdefault(int(ev.get("part", 0)), {"part": int(ev.get("part", 0))})
        kind = ev.get("event")
        fields = {k: v for k, v in ev.items() if k not in ("event", "part", "time")}
        if kind in ("submit", "start", "end"):
            rec[f"{kind}_time"] = ev.get("time")
        for key, value in fields.items():
            if kind == "submit" and key == "job_id" and "job_id" in rec:
                continue  # the start event's own id wins over the id the submitter saw
            rec[key] = value
    return [parts[k] for k in sorted(parts)]
