"""The bookkeeping one pack run shares between its face and mask stages.

Skips, content hashes seen (for de-duplication), finished shards and the resume journal live
here so each stage only decides *what* to store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpaint.core.errors import DataError

from .plan import Plan
from .journal import ResumeJournal
from .progress import PackProgress
from .shards import ShardRecord, ShardWriter
from .workers import ordered_map

# Measured (benchmarks/RESULTS.md): 128-file tasks, two in flight per worker, beat 16 x 4 by ~8 %
# with two workers (fewer result messages for the main process, fewer idle gaps); in flight at
# once: 256 decoded images per worker (~12 MB at 128 px).
FILES_PER_TASK = 128
TASKS_IN_FLIGHT_PER_WORKER = 2
SHARDS_COMMITTING = 2  # sealed shards whose hash, fsync and rename may still be running


@dataclass
class RunState:
    plan: Plan
    executor: Executor | None
    journal: ResumeJournal
    strict: bool
    workers: int
    skipped: list[dict] = field(default_factory=list)
    seen: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)  # sha256 -> first (path, labels)
    shards: list[ShardRecord] = field(default_factory=list)
    reused: int = 0
    progress: PackProgress = field(default_factory=lambda: PackProgress(enabled=False))
    check_stop: Callable[[], None] = field(default=lambda: None, repr=False)  # raises once a stop was asked for
    _committer: ThreadPoolExecutor | None = field(default=None, repr=False)
    _committing: list[tuple[Future, ShardRecord, str, list[dict]]] = field(default_factory=list, repr=False)

    def skip(self, kind: str, root: Path, path: str, reason: str, **details: Any) -> dict:
        """Record an unusable input (``details``: extra manifest fields, e.g. a label conflict);
        with ``--strict`` it is an error instead."""
        if self.strict:
            raise DataError(f"{root / path}: {reason}; fix or remove the file, or re-run without --strict")
        record = {"path": path, "reason": reason, "kind": kind, **details}
        self.skipped.append(record)
        return record

    def ordered(self, fn: Callable[[Any], Any], items: Iterable[Any], stage: str | None = None) -> Iterator[Any]:
        """``fn`` over ``items`` on the pool, in order; ``stage`` names them on the progress line."""
        items = list(items)
        results = self._checked(ordered_map(self.executor, fn, items, chunk=FILES_PER_TASK,
                                            window=TASKS_IN_FLIGHT_PER_WORKER * self.workers))
        return results if stage is None else self.progress.track(stage, results, len(items))

    def _checked(self, results: Iterator[Any]) -> Iterator[Any]:
        for result in results:
            self.check_stop()
            yield result

    def reuse(self, name: str, digest: str) -> dict | None:
        """A finished shard of an earlier run with this plan, counted as part of this run."""
        return self.accept_reused(name, self.journal.reusable(name, digest))

    def accept_reused(self, name: str, entry: dict | None) -> dict | None:
        """Second half of :meth:`reuse`: count ``entry`` (from ``journal.reusable``) in this run."""
        if entry is not None:
            self.shards.append(ShardRecord(name, entry["kind"], entry["split"], entry["count"], entry["sha256"]))
            self.skipped.extend(entry.get("skipped", []))
            self.reused += 1
        return entry

    def finish(self, writer: ShardWriter, digest: str, skipped: list[dict]) -> ShardRecord | None:
        """Commit a shard (none at all when every planned file was skipped) and journal it.

        The shard is sealed here; its SHA-256, fsync and rename run on a background thread while
        the next shard is packed (hashlib and fsync release the GIL), and it is journalled and
        its record's ``sha256`` filled in once that is done: :meth:`drain` waits for all of it.
        """
        try:
            self.check_stop()  # before sealing: a stopped pack leaves this shard to the re-run
        except BaseException:
            writer.abort()
            raise
        if writer.count == 0:
            writer.abort()
            self.journal.forget(writer.final.name)
            return None
        writer.seal(skipped)
        record = ShardRecord(writer.final.name, writer.kind, writer.split, writer.count, "")
        if self._committer is None:
            self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-commit")
        while len(self._committing) >= SHARDS_COMMITTING:
            self._collect(self._committing.pop(0))
        self._committing.append((self._committer.submit(writer.commit), record, digest, skipped))
        return record

    def _collect(self, job: tuple[Future, ShardRecord, str, list[dict]]) -> None:
        future, record, digest, _ = job
        record.sha256 = future.result()
        self.shards.append(record)
        self.journal.record(record.file, {"plan_digest": digest, "sha256": record.sha256, "count": record.count,
                                           "split": record.split, "kind": record.kind})

    def drain(self) -> None:
        """Wait until every sealed shard has its final name and is journalled (raises its error)."""
        while self._committing:
            self._collect(self._committing.pop(0))

    def close(self) -> None:
        """Stop the commit thread after the shards in flight (on an error path: errors ignored,
        shards that did complete are journalled, so a re-run reuses them)."""
        try:
            while self._committing:
                job = self._committing.pop(0)
                try:
                    self._collect(job)
                except Exception:
                    pass
        finally:
            if self._committer is not None:
                self._committer.shutdown(wait=True)
                self._committer = None
