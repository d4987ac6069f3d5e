"""The pack's resume journal and folder lock: what an interrupted pack already finished.

A small journal (``.pack-journal.json``, rewritten atomically after every shard) maps each
finished shard to the plan it was built from and its SHA-256, so a re-run skips shards that
still verify; a shard is reused only when both still match. A locked file keeps two packers out
of one folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from inpaint.core.atomic import TMP_MARK, write_json
from inpaint.core.disk import is_disk_full
from inpaint.core.errors import DataError
from inpaint.core.shard_format import sha256_file
from inpaint.core.file_lock import FileLock

from .shards import open_shard

JOURNAL_NAME = ".pack-journal.json"
LOCK_NAME = ".pack.lock"


class PackLock:
    """Exclusive ownership of an output folder for one packer: an ``flock`` on ``.pack.lock``
    (the trainer's run-dir lock, :class:`inpaint.core.file_lock.FileLock`), so two packers
    started at once cannot both proceed, and a killed packer's lock is free again at once. The
    file is removed when the pack ends, so a finished folder holds only shards and the index."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_NAME
        self._held: FileLock | None = None

    def __enter__(self) -> "PackLock":
        def busy(holder: str) -> DataError:
            return DataError(f"{self.path}: another pack ({holder}) is writing this folder; wait for it to "
                             "finish or stop it, or pass another --out")

        try:
            self._held = FileLock.acquire(self.path, busy)
        except OSError as exc:
            if is_disk_full(exc):
                raise  # the packer reports a full disk with what the pack needs
            raise DataError(f"{self.path}: cannot create the pack lock ({exc.strerror or exc}); "
                            "pass a writable --out") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._held is not None:
            self._held.release(remove=True)
            self._held = None


def remove_stale_temporaries(out: Path) -> list[str]:
    """Delete ``*.tmp-<pid>`` files of killed runs (safe: we hold the folder's lock)."""
    removed = []
    for p in out.iterdir():
        if TMP_MARK in p.name and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


class ResumeJournal:
    """Finished shards of this folder's pack (by plan digest and SHA-256), kept across kills."""

    def __init__(self, out: Path, fingerprint: str) -> None:
        self.path = out / JOURNAL_NAME
        self.out = out
        self.fingerprint = fingerprint
        self.entries: dict[str, dict] = {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("fingerprint") == fingerprint:
                self.entries = dict(data.get("shards", {}))
        except (OSError, ValueError, AttributeError):
            pass

    def reusable(self, file: str, plan_digest: str) -> dict | None:
        """The record of ``file`` if it was built from this plan and is intact, else None.

        A shard carries its plan digest and skip list as attributes and only gets its final name
        once complete, so a shard finished just before a kill (renamed, not yet journalled) is
        reused too; a journalled one must also still match its SHA-256.
        """
        path = self.out / file
        if not path.is_file():
            return None
        try:
            with open_shard(path) as f:
                attrs = dict(f.attrs)
                lengths = {f[name].shape[0] for name in f}
        except OSError:
            return None
        count = int(attrs.get("count", -1))
        if attrs.get("plan_digest") != plan_digest or lengths != {count}:
            return None
        digest = sha256_file(path)
        entry = self.entries.get(file)
        if entry is not None and entry.get("sha256") != digest:
            return None
        return {"plan_digest": plan_digest, "sha256": digest, "count": count, "split": str(attrs["split"]),
                "kind": str(attrs["kind"]), "skipped": json.loads(attrs.get("skipped", "[]"))}

    def record(self, file: str, entry: dict) -> None:
        self.entries[file] = entry
        write_json(self.path, {"fingerprint": self.fingerprint, "shards": self.entries}, indent=1)

    def forget(self, file: str) -> None:
        if self.entries.pop(file, None) is not None:
            write_json(self.path, {"fingerprint": self.fingerprint, "shards": self.entries}, indent=1)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
