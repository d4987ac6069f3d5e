"""A one-line progress indicator for long loops (evaluation pairs, photos to repair) that also
behaves in batch-job logs.

On a terminal the line is rewritten in place; in a log file (PBS/SLURM output) it prints a new
line only every ~10 % so the log stays readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressLine:
    """``update(done)`` → "label 120/3000 (4 %) 12.3 items/s, eta 3m55s"."""

    def __init__(self, label: str, total: int, unit: str = "items", stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label, self.total, self.unit = label, max(total, 0), unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._last_step = -1
        self._last_len = 0

    def line(self, done: int) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = done / elapsed
        pct = 100.0 * done / self.total if self.total else 100.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_text = f", eta {int(eta // 60)}m{int(eta % 60):02d}s" if done < self.total and rate > 0 else f", {elapsed:.1f}s"
        return f"{self.label} {done}/{self.total} ({pct:.0f} %) {rate:.1f} {self.unit}/s{eta_text}"

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self.tty:
            text = self.line(done)
            self.stream.write("\r" + text + " " * max(0, self._last_len - len(text)))
            self._last_len = len(text)
            if done >= self.total:
                self.stream.write("\n")
            self.stream.flush()
            return
        step = int(10 * done / self.total) if self.total else 10
        if step != self._last_step or done >= self.total:
            if step == self._last_step and done >= self.total and self._last_step == 10:
                return
            self._last_step = step
            self.stream.write(self.line(done) + "\n")
            self.stream.flush()
