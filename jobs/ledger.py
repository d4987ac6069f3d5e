"""The run dir's record of every part of every chain: who ran it, when, and how it ended.

Events are appended as single JSON lines (one ``write`` on an ``O_APPEND`` descriptor, so lines
from a job and its successor never interleave); :func:`read_parts` folds them into one record
per part. Every executor writes them through ``jobs.part`` (the PBS script calls it with the
node's ``python3``).

A run dir outlives its chains: "submit again to continue" starts a new chain at part 1 in the same
ledger. Each submission therefore gets a chain id (:func:`new_chain_id`), every event carries it,
and parts are keyed by (chain, part): part 1 of the second chain is never merged with part 1 of
the first. Ledgers written before chain ids existed are still read: their events are split into
chains where a part number is submitted a second time.

A line that is not a valid event (cut by a SIGKILL, edited by hand, not UTF-8) is skipped and
reported, never fatal: the ledger is what decides the successor, so one bad line must not stop
a chain.
"""

from __future__ import annotations

import calendar
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from jobs.paths import LEDGER, under
from jobs.records import PartRecord

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # every event's "time": UTC, to the second
EVENTS = ("submit", "start", "end")
LEGACY_CHAIN = "legacy-{n}"  # the chains of a ledger written before chain ids
# The type each known field must have; a line with another type is skipped (and reported).
_INT = (int,)
_OPT_INT = (int, type(None))
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "event": (str,),
    "part": _INT,
    "time": (str,),
    "chain": (str,),
    "job_id": (str, int),
    "executor": _OPT_STR,
    "kind": _OPT_STR,
    "host": _OPT_STR,
    "pid": _OPT_INT,
    "start_step": _OPT_INT,
    "deadline": _OPT_NUM,
    "exit_code": _OPT_INT,
    "step": _OPT_INT,
    "action": _OPT_STR,
    "reason": _OPT_STR,
    "status_line": _OPT_STR,
    "interrupted": _OPT_STR,
}


def now_iso() -> str:
    return time.strftime(TIME_FORMAT, time.gmtime())


def iso_seconds(stamp: str) -> float:
    """Seconds since the epoch of a ledger time (UTC), to measure how long a part took."""
    return calendar.timegm(time.strptime(stamp, TIME_FORMAT))


def new_chain_id() -> str:
    """A fresh id for one submission's chain: sortable by time, unique by its random tail, and
    plain enough for ``qsub -v`` (no comma, quote or space)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def append_event(run_dir: Path | str, event: str, part: int, chain: str | None = None, **fields: Any) -> None:
    """Add one event (``submit``, ``start``, ``end``) for ``part`` of ``chain`` to the ledger."""
    path = under(run_dir, LEDGER)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"event": event, "part": int(part), "time": now_iso(), **({"chain": chain} if chain else {}), **fields}
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _problem(raw: bytes) -> tuple[dict | None, str | None]:
    """(the event, None) or (None, why the line is not one)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8"
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        return None, "not JSON (cut short?)"
    if not isinstance(event, dict):
        return None, f"a JSON {type(event).__name__}, not an object"
    for key in ("event", "part"):
        if key not in event:
            return None, f"no {key!r}"
    for key, types in FIELD_TYPES.items():
        value = event.get(key)
        if key in event and (not isinstance(value, types) or isinstance(value, bool)):
            return None, f"{key!r} is {json.dumps(value)[:40]}, not {' or '.join(t.__name__ for t in types)}"
    if event["part"] < 0:
        return None, f"'part' is {event['part']}"
    if "job_id" in event:
        event["job_id"] = str(event["job_id"])
    return event, None


def read_events(run_dir: Path | str, problems: list[str] | None = None) -> list[dict]:
    """Every valid event, in order. A line that is not one is skipped; ``problems`` (when given)
    gets one line per skipped line, naming the file and line number."""
    path = under(run_dir, LEDGER)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    events = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        event, why = _problem(raw.strip())
        if event is None:
            if problems is not None:
                problems.append(f"{path} line {number} skipped: {why}")
            continue
        events.append(event)
    return events


def _chain_keys(events: list[dict]) -> list[str]:
    """The chain of each event: its own id, or for events written before chain ids, a
    ``legacy-N`` chain that starts again wherever a part number is submitted a second time."""
    keys: list[str] = []
    submitted: set[int] = set()
    legacy = 1
    for ev in events:
        if ev.get("chain"):
            keys.append(ev["chain"])
            continue
        if ev.get("event") == "submit":
            if ev["part"] in submitted:
                legacy, submitted = legacy + 1, set()
            submitted.add(ev["part"])
        keys.append(LEGACY_CHAIN.format(n=legacy))
    return keys


# What one run of a part records; a part run again (a requeued job) keeps its earlier runs apart.
ATTEMPT_FIELDS = (
    "job_id",
    "host",
    "pid",
    "start_step",
    "deadline",
    "start_time",
    "end_time",
    "exit_code",
    "step",
    "action",
    "reason",
    "interrupted",
    "status_line",
)


def read_parts(run_dir: Path | str, problems: list[str] | None = None) -> list[PartRecord]:
    """One record per part of every chain, in chain order (as first seen) then part number: chain,
    job id, executor, submit/start/end time, exit code, steps, action.

    A part that started more than once (requeued by the scheduler, or started again after an
    interruption) describes its latest run; the earlier ones are in ``attempts``, oldest first."""
    events = read_events(run_dir, problems)
    parts: dict[tuple[str, int], dict] = {}
    order: dict[str, int] = {}
    for ev, chain in zip(events, _chain_keys(events), strict=True):
        order.setdefault(chain, len(order))
        rec = parts.setdefault((chain, ev["part"]), {"part": ev["part"], "chain": chain})
        kind = ev.get("event")
        if kind == "start" and "start_time" in rec:
            rec.setdefault("attempts", []).append({k: rec.pop(k) for k in ATTEMPT_FIELDS if k in rec})
        fields = {k: v for k, v in ev.items() if k not in ("event", "part", "time", "chain")}
        if kind in EVENTS:
            rec[f"{kind}_time"] = ev.get("time")
        for key, value in fields.items():
            if kind == "submit" and key == "job_id" and "job_id" in rec:
                continue  # the start event's own id wins over the id the submitter saw
            rec[key] = value
    return [PartRecord.from_dict(parts[k]) for k in sorted(parts, key=lambda k: (order[k[0]], k[1]))]


def chains(parts: list[PartRecord]) -> list[str]:
    """The chain ids of ``parts``, oldest first."""
    return list(dict.fromkeys(p.chain for p in parts))


def current_chain(parts: list[PartRecord], recorded: str | None = None) -> str | None:
    """The chain the run dir carries now: the one ``chain.json`` names, else the newest in the ledger."""
    if recorded:
        return recorded
    return parts[-1].chain if parts else None


def parts_of(parts: list[PartRecord], chain: str | None) -> list[PartRecord]:
    return [p for p in parts if p.chain == chain]
