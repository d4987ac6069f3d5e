"""The packer's progress line: where a pack is, for a person watching a terminal.

Decoding 12,000 masks takes half a minute on a laptop, and a silent terminal reads as a hang. On a
terminal one line on stderr is rewritten in place (stage, files done of the stage's total, seconds
since the pack started) and cleared before the summary; in a batch job's log or a pipe nothing is
written, so logs stay what they were. At most ten updates a second: redrawing costs nothing next
to decoding.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")
MIN_INTERVAL_S = 0.1


class PackProgress:
    """``track(stage, items, total)`` passes ``items`` through and shows how many have gone by;
    ``begin``/``advance`` for loops that count otherwise."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)()) if enabled is None else enabled
        self.start = time.monotonic()
        self._last = 0.0
        self._width = 0
        self._stage, self._total, self._unit, self._done = "", 0, "files", 0

    def begin(self, stage: str, total: int, unit: str = "files") -> None:
        """A new stage: the line shows ``stage: 0/total unit``."""
        self._stage, self._total, self._unit, self._done = stage, total, unit, 0
        self._show(force=True)

    def advance(self, n: int = 1) -> None:
        self._done += n
        self._show(force=self._done >= self._total)

    def track(self, stage: str, items: Iterable[T], total: int, unit: str = "files") -> Iterator[T]:
        """Yield ``items`` unchanged, showing ``stage: done/total unit, N s`` as they go by."""
        if not self.enabled:
            yield from items
            return
        self.begin(stage, total, unit)
        for item in items:
            self.advance()
            yield item

    def _show(self, force: bool) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < MIN_INTERVAL_S:
            return
        self._last = now
        text = f"packing {self._stage}: {self._done}/{self._total} {self._unit}, {now - self.start:.0f} s"
        self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
        self._width = len(text)
        self.stream.flush()

    def clear(self) -> None:
        """Blank the line, so what is printed next starts on a clean one."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
