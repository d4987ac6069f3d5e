"""Where progress goes: stdout and ``run_dir/train.log`` through one logger."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

log = logging.getLogger("facefill.train")


def setup_logging(run_dir: Path, is_main: bool) -> logging.Handler | None:
    """Progress on stdout and appended to ``run_dir/train.log``; non-main ranks log warnings only."""
    log.setLevel(logging.INFO if is_main else logging.WARNING)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(fmt)
    log.addHandler(out)
    if not is_main:
        return None
    file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    file_handler.setFormatter(fmt)
    log.addHandler(file_handler)
    return file_handler


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"
