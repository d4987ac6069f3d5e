"""The run dir as one training process holds it: locked, logged to, and always left with a
``status.json`` and a one-line status that say how the process ended.

It exists before the trainer is built and outlives it, so a failure while the trainer is being
built (bad shards, a refused resume, a full disk) is reported like any other: with the newest
valid checkpoint's position, not a zero.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from inpaint.io.checkpoint import remove_stale_temporaries
from inpaint.core.contract import EXIT_FAILED, STATUS_FILE, Outcome, write_status
from inpaint.core.disk import is_disk_full
from inpaint.core.errors import FacefillError
from inpaint.training.distributed import DistInfo
from inpaint.core.file_lock import FileLock, lock_run_dir
from inpaint.training.train_log import QuietFileHandler, close_logging, log, setup_logging


class RunDirUnwritable(FacefillError):
    """The run dir cannot be created or written (a path through a file, no permission, a
    read-only file system): bad input, fix --run-dir and run again."""


class RunDirDiskFull(RunDirUnwritable):
    """No room to create the run dir: a failure of the machine, not of the input (exit 1)."""

    exit_code = EXIT_FAILED


def unwritable(path: Path, exc: OSError) -> RunDirUnwritable:
    """One line for a run dir the trainer cannot take, naming the path and the fix."""
    if is_disk_full(exc):
        return RunDirDiskFull(f"--run-dir {path}: cannot write there: the disk is full; free space there or "
                              "use a --run-dir on a larger file system")
    where = f" ({exc.filename})" if exc.filename and Path(exc.filename) != path else ""
    return RunDirUnwritable(f"--run-dir {path}: cannot write there{where}: {exc.strerror or exc}; pass a writable "
                            "--run-dir")


@dataclass(frozen=True)
class CheckpointMark:
    """A checkpoint known to be valid (read back, or just written) and where training was."""

    path: Path
    epoch: int
    step: int


class RunDir:
    """Lock, train log and status of one run dir; :meth:`open` takes it, :meth:`close` lets go."""

    def __init__(self, path: Path, dist: DistInfo, lock: FileLock | None, log_file: QuietFileHandler | None) -> None:
        self.path, self.dist, self.lock, self.log_file = path, dist, lock, log_file
        self.checkpoint: CheckpointMark | None = None
        self.total_steps: int | None = None  # once the trainer knows it (shards opened)

    @classmethod
    def open(cls, path: str | os.PathLike, dist: DistInfo) -> "RunDir":
        """Create and lock the run dir (rank 0; RunDirBusy if another trainer has it), start the
        train log and sweep temporaries of killed checkpoint writers."""
        path = Path(path)
        lock = None
        if dist.is_main:
            try:
                path.mkdir(parents=True, exist_ok=True)
                lock = lock_run_dir(path)
            except OSError as exc:
                raise unwritable(path, exc) from None
        try:
            log_file = setup_logging(path, dist.is_main)
            run = cls(path, dist, lock, log_file)
            if dist.is_main:
                for stale in remove_stale_temporaries(path):
                    log.info("removed %s, left by a checkpoint writer that is gone", stale)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return run

    def mark_checkpoint(self, path: Path, epoch: int, step: int) -> None:
        self.checkpoint = CheckpointMark(Path(path), int(epoch), int(step))

    def outcome(self, code: int, message: str, epoch: int | None = None, step: int | None = None,
                total_steps: int | None = None, images_per_s: float | None = None,
                cpu_seconds: float | None = None) -> Outcome:
        """An Outcome naming the newest valid checkpoint; without a position of its own (the
        trainer was never built) it reports that checkpoint's."""
        mark = self.checkpoint
        if step is None and mark is not None:
            epoch, step = mark.epoch, mark.step
        relative = os.path.relpath(mark.path, self.path) if mark is not None else None  # both built from self.path
        return Outcome(code, message, epoch=epoch, step=step, total_steps=self.total_steps if total_steps is None else total_steps,
                       images_per_s=None if images_per_s is None else round(images_per_s, 3), checkpoint=relative,
                       cpu_seconds=None if cpu_seconds is None else round(cpu_seconds, 1),
                       world_size=self.dist.world_size)

    def finish(self, outcome: Outcome, to_stderr: bool = False) -> Outcome:
        """status.json and the one-line status (rank 0; stdout's last line). ``to_stderr``: the
        failure is also the one ``error:`` line on stderr. When status.json cannot be written
        (a full disk) that line says so too, instead of a traceback."""
        if not self.dist.is_main:
            return outcome
        line = outcome.line()
        unwritten = ""
        try:
            write_status(self.path, outcome)
        except OSError as exc:
            why = "the disk is full" if is_disk_full(exc) else exc.strerror or type(exc).__name__
            unwritten = f" ({self.path / STATUS_FILE} not written: {why})"
        if to_stderr or unwritten:
            print(f"error: {outcome.message if to_stderr else line}{unwritten}", file=sys.stderr, flush=True)
        for h in log.handlers:
            h.flush()
        if self.log_file is not None:
            self.log_file.write_line(line)
        print(line, flush=True)
        return outcome

    def close(self) -> None:
        close_logging()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
