"""Walltimes as PBS writes them (``HH:MM:SS``, hours may exceed 24) and the trainer's time limit."""

from __future__ import annotations

from inpaint.core.errors import ConfigError

#: The shortest walltime of a part that waits in a PBS or SLURM queue: start-up (image, staging,
#: building the model) plus a few steps and a checkpoint. Shorter parts would stop before their
#: first checkpoint and the chain would stall.
MIN_QUEUED_WALLTIME_S = 300


def parse_walltime(text: str | int | float, what: str = "--walltime") -> int:
    """Seconds in ``[[H:]M:]S`` or a bare number of seconds; ConfigError otherwise."""
    if isinstance(text, (int, float)):
        seconds = int(text)
    else:
        parts = str(text).strip().split(":")
        try:
            if len(parts) > 3 or any(p == "" for p in parts):
                raise ValueError
            numbers = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"{what} {text!r} is not a walltime: write HH:MM:SS (e.g. 24:00:00)") from None
        seconds = 0
        for n in numbers:
            if n < 0:
                raise ConfigError(f"{what} {text!r} is negative: write HH:MM:SS (e.g. 24:00:00)")
            seconds = seconds * 60 + n
    if seconds <= 0:
        raise ConfigError(f"{what} {text!r} must be longer than zero: write HH:MM:SS (e.g. 24:00:00)")
    return seconds


def format_walltime(seconds: int) -> str:
    """``HH:MM:SS`` with as many hour digits as needed (PBS accepts 336:00:00)."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def part_time_limit(walltime_s: int, safety_margin_s: int) -> int:
    """The trainer's budget in one part: walltime minus the site's margin for the final checkpoint.

    The one place the budget is computed; a part turns it into the trainer's ``--deadline`` when
    it starts. PBS gives no warning before the walltime kill (and the kill itself may come up to
    ~2 min late), so the trainer must stop on its own. The margin never eats more than a tenth of
    a short walltime, so tests and short debug queues still get useful parts.
    """
    margin = min(int(safety_margin_s), walltime_s // 10)
    return max(1, walltime_s - margin)


# Evaluation of the reference protocol: 6 buckets x 500 pairs, measured per pair and scored column.
EVAL_PAIRS = 3000
EVAL_PAIR_S = {"gpu": 0.02, "cpu": 0.16}  # 3,000 pairs: ~1 min on a GPU, ~8 min on a CPU node
EVAL_STARTUP_S = 600  # image start, staging, LPIPS/dlib weights, the report
#: CPU seconds of a classical fill per 128-px pair on one core, on top of the column's metrics: it
#: runs on the CPU even on a GPU node (biharmonic ~40 ms, 2-5x Navier-Stokes).
CLASSICAL_FILL_PAIR_S = {"navier-stokes": 0.015, "telea": 0.015, "biharmonic": 0.04}


def evaluation_walltime(gpus: int, columns: int = 1, classical: tuple[str, ...] | list[str] = ()) -> int:
    """Walltime of the evaluation part: 3x the measured pair time per scored column (the model and
    each of the ``classical`` fills among ``columns``), plus each fill's own CPU time, plus start-up."""
    per_pair = EVAL_PAIR_S["gpu" if gpus else "cpu"] * max(1, columns)
    per_pair += sum(CLASSICAL_FILL_PAIR_S[method] for method in classical)
    return int(EVAL_STARTUP_S + 3 * EVAL_PAIRS * per_pair)
