"""The contract between the trainer and everything that drives it (the job layer, benchmarks).

One module, standard library only, so ``jobs`` can read what the trainer publishes on a grid
node's plain ``python3`` without torch: the exit codes, the run-dir layout and ``status.json``.
The trainer writes status through :func:`write_status`; every reader goes through
:func:`read_status`. Change a name here and both sides change together.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from inpaint.core.atomic import write_json

# Exit codes of ``python -m inpaint.train``.
EXIT_FINISHED = 0
EXIT_FAILED = 1  # training failure (NaN, crash, disk full): the last good checkpoint is kept
EXIT_BAD_INPUT = 2  # bad config, data or arguments: fix and run again
EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped early with a valid checkpoint, run again to continue

STATE_OF_EXIT = {EXIT_FINISHED: "finished", EXIT_STOPPED: "stopped"}

# Run-dir layout (relative to the run dir).
CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
TRAIN_LOG = "train.log"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"
CHECKPOINT_NAME = "step-{step:09d}.pt"
CHECKPOINT_PATTERN = re.compile(r"^step-(\d{9})\.pt$")
LOCK_FILE = "train.lock"  # flock'ed by the trainer for its whole run: one trainer per run dir
TENSORBOARD_DIR = "tensorboard"  # event files, when tensorboard is installed
EVAL_DIR = "eval"  # inpaint.evaluate --run-dir writes its report here by default
CORRUPT_SUFFIX = ".corrupt"  # an unreadable checkpoint set aside: step-….pt.corrupt


@dataclass
class Outcome:
    """How a training process ended, and what a driver needs to plan the next part."""

    exit_code: int
    message: str
    epoch: int | None = None
    step: int | None = None
    total_steps: int | None = None
    images_per_s: float | None = None  # measured training throughput of this process, if any step ran
    checkpoint: str | None = None  # newest valid checkpoint, relative to the run dir
    cpu_seconds: float | None = None  # user+sys of the whole run so far: every part, rank and loader worker
    world_size: int | None = None  # processes that trained together (torchrun's WORLD_SIZE; 1 alone)

    @property
    def state(self) -> str:
        return STATE_OF_EXIT.get(self.exit_code, "failed")

    def line(self) -> str:
        """The last stdout line: state, position and why, e.g. ``stopped (exit 75) step 40/300: …``
        (just ``step 40`` when the total is unknown: the trainer failed before opening the shards)."""
        where = ""
        if self.step is not None:
            where = f" step {self.step}" + (f"/{self.total_steps}" if self.total_steps is not None else "")
        return f"{self.state} (exit {self.exit_code}){where}: {self.message}"


STATUS_KEYS = ("state", *(f.name for f in fields(Outcome)), "time")


def write_status(run_dir: str | os.PathLike, outcome: Outcome) -> Path:
    """Rewrite ``run_dir/status.json`` atomically (the trainer's side of the contract)."""
    path = Path(run_dir) / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"state": outcome.state, **asdict(outcome), "time": time.time()}
    write_json(path, {k: record[k] for k in STATUS_KEYS}, indent=2)
    return path


def read_status(run_dir: str | os.PathLike) -> dict:
    """``status.json`` as a dict, or ``{}`` when absent or unreadable (a run not started yet)."""
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# How the trainer's exit-75 message names a stop asked for by a signal (``received SIGTERM``, from
# ``inpaint.training.loop``) rather than by its time budget (``time budget: …``): a driver tells a
# qdel, scancel or preemption from the walltime by it.
STOP_SIGNAL_RE = re.compile(r"\(received (SIG[A-Z0-9]+)\)")


def stop_signal(status: dict) -> str | None:
    """The signal that stopped the trainer (``"SIGTERM"``), when ``status`` says it stopped early
    because of one; None for a time-budget stop, a finish or a failure."""
    message = status.get("message")
    found = STOP_SIGNAL_RE.search(message) if status.get("exit_code") == EXIT_STOPPED and isinstance(message, str) else None
    return found.group(1) if found else None


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step a checkpoint file name stands for, or None for anything else (temporaries too)."""
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    return int(match.group(1)) if match else None


def find_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete-named checkpoints of a run, newest (highest step) first; temp files are ignored."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(step, p) for p in folder.iterdir() if (step := checkpoint_step(p)) is not None and p.is_file()]
    return [p for _, p in sorted(found, reverse=True)]


def resume_step(run_dir: str | os.PathLike) -> int | None:
    """The step a trainer started on ``run_dir`` resumes from: its newest checkpoint. status.json
    is rewritten only when a trainer exits, so after one was killed outright it names an older
    step; the later of the two is taken (a run without checkpoint files: status.json's)."""
    newest = find_checkpoints(run_dir)
    steps = [
        s
        for s in (checkpoint_step(newest[0]) if newest else None, read_status(run_dir).get("step"))
        if isinstance(s, int) and not isinstance(s, bool)
    ]
    return max(steps) if steps else None
