"""Walltimes as PBS writes them (``HH:MM:SS``, hours may exceed 24) and the trainer's time limit."""

from __future__ import annotations

from inpaint.errors import ConfigError


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


def trainer_time_limit(walltime_s: int, safety_margin_s: int) -> int:
    """The trainer's ``--time-limit``: walltime minus a margin for the final checkpoint.

    PBS gives no warning before the walltime kill (SIGTERM, SIGKILL 10 s later), so the trainer
    must stop on its own. The margin never eats more than a tenth of a short walltime, so tests
    and short debug queues still get useful parts.
    """
    margin = min(int(safety_margin_s), walltime_s // 10)
    return max(1, walltime_s - margin)
