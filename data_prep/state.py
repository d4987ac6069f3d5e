"""The bookkeeping one pack run shares between its face and mask stages.

Skips, content hashes seen (for de-duplication), finished shards and the resume journal live
here so each stage only decides *what* to store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpaint.errors import DataError

from .plan import Plan
from .progress import Progress
from .shards import ShardRecord, ShardWriter
from .workers import ordered_map

FILES_PER_TASK = 16
TASKS_IN_FLIGHT_PER_WORKER = 4


@dataclass
class RunState:
    plan: Plan
    executor: Executor | None
    progress: Progress
    strict: bool
    workers: int
    skipped: list[dict] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # content sha256 -> first path stored
    shards: list[ShardRecord] = field(default_factory=list)
    reused: int = 0

    def skip(self, kind: str, root: Path, path: str, reason: str) -> dict:
        """Record an unusable input; with ``--strict`` it is an error instead."""
        if self.strict:
            raise DataError(f"{root / path}: {reason}; fix or remove the file, or re-run without --strict")
        record = {"path": path, "reason": reason, "kind": kind}
        self.skipped.append(record)
        return record

    def ordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        return ordered_map(self.executor, fn, items, chunk=FILES_PER_TASK,
                           window=TASKS_IN_FLIGHT_PER_WORKER * self.workers)

    def reuse(self, name: str, digest: str) -> dict | None:
        """A finished shard of an earlier run with this plan, counted as part of this run."""
        entry = self.progress.reusable(name, digest)
        if entry is not None:
            self.shards.append(ShardRecord(name, entry["kind"], entry["split"], entry["count"], entry["sha256"]))
            self.skipped.extend(entry.get("skipped", []))
            self.reused += 1
        return entry

    def finish(self, writer: ShardWriter, digest: str, skipped: list[dict]) -> ShardRecord | None:
        """Commit a shard (none at all when every planned file was skipped) and journal it."""
        if writer.count == 0:
            writer.abort()
            self.progress.forget(writer.final.name)
            return None
        record = writer.finish(skipped)
        self.shards.append(record)
        self.progress.record(record.file, {"plan_digest": digest, "sha256": record.sha256, "count": record.count,
                                           "split": record.split, "kind": record.kind})
        return record
