"""Checkpoints of a training run: atomic writes, keep-last-K, and loading that survives damage.

Batch jobs on a shared grid are killed at arbitrary moments (wall-time limit, pre-emption, node
failure), so a checkpoint is only ever visible under its final name once it is complete, and a
damaged newest checkpoint (a truncated copy, a full disk during an rsync) costs one checkpoint
interval, not the run: loading falls back to the previous one with a warning, and the trainer
sets the damaged one aside (``*.corrupt``) so it never takes a keep slot from a good one.

Everything stored is plain Python / tensors so files load with ``torch.load(weights_only=True)``:
no pickled code runs when evaluating someone else's run dir.

What a checkpoint holds (and which entries it must have) is :mod:`inpaint.training.state`'s;
shipped weights (export, ``load_generator``) live in :mod:`inpaint.io.weights`.
"""

from __future__ import annotations

import errno
import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from inpaint.core.atomic import TMP_MARK, atomic_open
from inpaint.core.contract import CHECKPOINT_DIR, CHECKPOINT_NAME, CORRUPT_SUFFIX, find_checkpoints
from inpaint.core.disk import disk_full_message, free_bytes, is_disk_full
from inpaint.core.errors import CheckpointError
from inpaint.core.process import pid_alive
from inpaint.training.state import CHECKPOINT_FORMAT, missing_keys

_TEMPORARY = re.compile(r"^step-\d{9}\.pt" + re.escape(TMP_MARK) + r"(\d+)$")


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it could not be read; an older one is used instead."""


RUN_DIR_FIX = "free space there or move the run dir to a larger file system"


class DiskFullError(OSError):
    """A file did not fit on its file system. The message is one line: the file, that the disk
    is full, how much was free and roughly how much was needed (an ``OSError`` with ``ENOSPC``,
    so callers that handle a full disk in general handle this one too)."""

    def __init__(self, path: Path, needed: int | None, free: int | None) -> None:
        super().__init__(errno.ENOSPC, disk_full_message(path, free, needed, fix=RUN_DIR_FIX))
        self.filename = str(path)

    def __str__(self) -> str:
        return self.strerror


def tensor_bytes(obj: Any) -> int:
    """Bytes of tensor data in a nested structure: about what ``torch.save`` writes."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint after ``step`` optimizer steps lives (the name sorts by step)."""
    return Path(run_dir) / CHECKPOINT_DIR / CHECKPOINT_NAME.format(step=step)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``<name>.tmp-<pid>``, fsync, rename: a reader never sees half a file.
    A full disk is a :class:`DiskFullError` (the temporary is removed), not torch's zip error."""
    path = Path(path)
    try:
        with atomic_open(path, "wb") as f:
            torch.save(obj, f)
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError(path, tensor_bytes(obj), free_bytes(path.parent)) from None
        raise
    return path


def save_checkpoint(run_dir: str | os.PathLike, state: Mapping[str, Any], keep: int = 3) -> Path:
    """Write ``state`` (the contract's checkpoint dict) atomically, then delete all but the newest
    ``keep`` checkpoints. Older ones are pruned only after the new one is safely in place."""
    missing = missing_keys(state)
    if missing:
        raise ValueError(f"checkpoint state lacks {', '.join(missing)}")
    if keep < 1:
        raise ValueError("keep must be >= 1")
    path = atomic_torch_save(dict(state), checkpoint_path(run_dir, int(state["step"])))
    for old in find_checkpoints(run_dir)[keep:]:
        try:
            old.unlink()
        except FileNotFoundError:  # another process pruned it first
            pass
    return path


def remove_stale_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Delete ``step-*.pt.tmp-PID`` files whose writer is gone (killed mid-write); returns them.

    Only the run dir's owner calls this, under the trainer's run-dir lock, so no live writer of
    another host can own such a file; a live local PID (ours included) is left alone anyway.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        match = _TEMPORARY.match(p.name)
        if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def set_aside(path: Path) -> Path:
    """Rename an unreadable checkpoint to ``<name>.corrupt``: kept for inspection, but no longer
    a checkpoint, so it neither takes a keep slot nor is tried again."""
    target = path.with_name(path.name + CORRUPT_SUFFIX)
    os.replace(path, target)
    return target


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """One checkpoint file, checked for the contract's keys; CheckpointError when unusable."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist: check the path") from None
    except Exception as exc:  # truncated zip, bad pickle, wrong file type: all mean "damaged"
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
            "it is damaged or not a facefill checkpoint; delete it to resume from an older one"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a checkpoint dict: delete it or point at a facefill checkpoint")
    missing = missing_keys(state)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}: it is not a complete facefill checkpoint; delete it")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}, this facefill reads format {CHECKPOINT_FORMAT}: use a matching facefill version")
    return state


def load_latest(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu",
                set_aside_unreadable: bool = False) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint of ``run_dir`` and its path, or None when there is none.

    Unreadable newer checkpoints are skipped with a :class:`CheckpointWarning`; the run dir's
    owner (the trainer) passes ``set_aside_unreadable`` to rename them ``*.corrupt`` once a
    readable one is found. If every one is unreadable that is a CheckpointError and nothing is
    renamed, since silently restarting from scratch would overwrite days of work with a fresh run.
    """
    paths = find_checkpoints(run_dir)
    problems: list[str] = []
    for number, path in enumerate(paths):
        try:
            state = read_checkpoint(path, map_location)
        except CheckpointError as exc:
            problems.append(str(exc))
            aside = f"; set aside as {path.name}{CORRUPT_SUFFIX}" if set_aside_unreadable else ""
            warnings.warn(f"skipping checkpoint {path}{aside}: {exc}", CheckpointWarning, stacklevel=2)
            continue
        if set_aside_unreadable:
            for bad in paths[:number]:
                set_aside(bad)
        return state, path
    if paths:
        raise CheckpointError(
            f"none of the {len(paths)} checkpoints in {Path(run_dir) / CHECKPOINT_DIR} can be read "
            f"(newest: {problems[0]}); remove them to start afresh or restore them from a backup"
        )
    return None
