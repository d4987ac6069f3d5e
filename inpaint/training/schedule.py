"""The learning-rate schedule: a pure function of the step, so a resumed run follows exactly the
schedule an uninterrupted one would (nothing to save in the checkpoint)."""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, decay: str, start: float) -> float:
    """Multiplier of the configured learning rate for the update after ``step`` steps: 1 until
    ``start × total_steps``, then down to 0 at ``total_steps`` (linearly or along a half cosine)."""
    if decay == "none" or total_steps <= 0:
        return 1.0
    begin = start * total_steps
    if step <= begin:
        return 1.0
    progress = min(1.0, (step - begin) / max(total_steps - begin, 1e-9))
    if decay == "linear":
        return 1.0 - progress
    if decay == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate decay {decay!r}")
