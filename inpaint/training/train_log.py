"""The train log: progress lines on stdout and appended to ``run_dir/train.log`` through one logger.

A full disk must not turn every later log line into a "--- Logging error ---" traceback on
stderr (the one-line failure must stay the one line), so the file handler stays quiet when a
write fails: stdout still carries every line and the status line says what went wrong.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from inpaint.core.contract import TRAIN_LOG

log = logging.getLogger("facefill.train")


class QuietFileHandler(logging.FileHandler):
    """A FileHandler whose failed writes (ENOSPC, a vanished file system) are dropped silently."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass

    def flush(self) -> None:
        try:
            super().flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            super().close()
        except (OSError, ValueError):
            self.stream = None

    def write_line(self, text: str) -> None:
        """Append ``text`` and a newline outside the formatter (the final status line)."""
        try:
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(text + "\n")
            self.flush()
        except (OSError, ValueError):
            pass


def setup_logging(run_dir: Path, is_main: bool) -> QuietFileHandler | None:
    """Progress on stdout and appended to ``run_dir/train.log``; non-main ranks log warnings only."""
    log.setLevel(logging.INFO if is_main else logging.WARNING)
    log.propagate = False
    close_logging()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(fmt)
    log.addHandler(out)
    if not is_main:
        return None
    file_handler = QuietFileHandler(run_dir / TRAIN_LOG, encoding="utf-8", delay=True)
    file_handler.setFormatter(fmt)
    log.addHandler(file_handler)
    return file_handler


def close_logging() -> None:
    """Remove (and close) every handler, so in-process callers that train again get no stale ones."""
    for h in list(log.handlers):
        log.removeHandler(h)
        h.flush()
        if isinstance(h, logging.FileHandler):
            h.close()


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"
