"""When to stop so that the last checkpoint is written before the batch system kills the job.

The decision uses what this process has measured (recent step times, checkpoint write times)
instead of a fixed guess: on a slow shared filesystem a checkpoint can take longer than many
steps, and the first steps after start-up (cuDNN autotuning, compilation) are much slower than
the rest.
"""

from __future__ import annotations

import time
from collections import deque

import torch


def reserve_seconds(budget_s: float) -> float:
    """Seconds kept in reserve before the end on top of the measured step and checkpoint costs
    (for process exit, log flushing, timing noise): 1 % of the budget, at least 2 s, at most 2 min."""
    return min(120.0, max(2.0, 0.01 * budget_s))


def estimated_checkpoint_seconds(*models: torch.nn.Module, bytes_per_s: float = 50e6) -> float:
    """A pessimistic guess (weights + two Adam moments at 50 MB/s, plus 0.5 s) used until the
    first checkpoint has been timed: slow network filesystems on grids are common."""
    nbytes = sum(p.numel() * p.element_size() for m in models for p in m.parameters())
    return 0.5 + 3 * nbytes / bytes_per_s


class Deadline:
    """Tracks a wall-clock end time and the measured cost of a step and of a checkpoint.

    ``end`` is a ``time.time()`` value or None for "no limit". The step estimate is the slowest
    of the recent steps (a deliberate overestimate: stopping one step early costs one step,
    stopping one step late costs everything since the last checkpoint).
    """

    def __init__(self, end: float | None, start: float | None = None, window: int = 50,
                 step_s: float | None = None, checkpoint_s: float | None = None) -> None:
        self.start = time.time() if start is None else start
        self.end = end
        self.reserve_s = reserve_seconds(end - self.start) if end is not None else 0.0
        self._steps: deque[float] = deque(maxlen=window)
        if step_s:
            self._steps.append(step_s)
        self._checkpoint_s = checkpoint_s or 0.0
        self._checkpoint_measured = False

    @classmethod
    def from_args(cls, time_limit: float | None, deadline: float | None, start: float) -> "Deadline":
        """The earlier of ``start + time_limit`` and the absolute ``deadline``."""
        ends = [e for e in ((start + time_limit) if time_limit is not None else None, deadline) if e is not None]
        return cls(min(ends) if ends else None, start=start)

    def record_step(self, seconds: float) -> None:
        self._steps.append(seconds)

    def record_checkpoint(self, seconds: float) -> None:
        # Keep the worst seen: filesystem latency on a grid varies a lot between writes.
        self._checkpoint_s = seconds if not self._checkpoint_measured else max(self._checkpoint_s, seconds)
        self._checkpoint_measured = True

    def seed_estimates(self, step_s: float | None, checkpoint_s: float | None) -> None:
        """Estimates remembered from a previous job, used until this one has measured its own."""
        if step_s and not self._steps:
            self._steps.append(step_s)
        if checkpoint_s and not self._checkpoint_measured:
            self._checkpoint_s = max(self._checkpoint_s, checkpoint_s)

    @property
    def step_estimate(self) -> float:
        return max(self._steps) if self._steps else 0.0

    @property
    def checkpoint_estimate(self) -> float:
        return self._checkpoint_s

    def remaining(self, now: float | None = None) -> float:
        if self.end is None:
            return float("inf")
        return self.end - (time.time() if now is None else now)

    def must_stop(self, now: float | None = None) -> bool:
        """True when one more step plus a checkpoint might not fit before the end."""
        if self.end is None:
            return False
        return self.remaining(now) < self.step_estimate + self.checkpoint_estimate + self.reserve_s

    def summary(self) -> dict[str, float]:
        return {"step_s": self.step_estimate, "checkpoint_s": self.checkpoint_estimate}
