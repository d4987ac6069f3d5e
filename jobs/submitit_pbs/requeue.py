"""The record of requeues: PBS cannot requeue a job under the same id, so each requeue submits a
new job and appends its id to ``<folder>/<original id>_requeued.txt``."""

from __future__ import annotations

from pathlib import Path

ORIGIN_ENV = "SUBMITIT_PBS_ORIGIN"  # set (qsub -v) in a requeued job: the id whose files it owns


def requeue_record(folder: Path, original_id: str) -> Path:
    return Path(folder) / f"{original_id}_requeued.txt"


def latest_id(folder: Path, original_id: str) -> str:
    """The job currently carrying ``original_id``'s work (itself when never requeued)."""
    path = requeue_record(folder, original_id)
    try:
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return original_id
    return ids[-1] if ids else original_id


def add_requeue(folder: Path, original_id: str, new_id: str) -> None:
    with open(requeue_record(folder, original_id), "a") as fh:
        fh.write(new_id + "\n")
