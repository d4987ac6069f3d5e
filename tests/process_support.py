"""Starting the same command several times at once, for the one-holder-wins lock tests."""

from __future__ import annotations

import subprocess
from typing import Any


def run_at_once(cmd: list[str], copies: int, timeout: float, **popen: Any) -> tuple[list[subprocess.Popen], list[tuple[str, str]]]:
    """``copies`` processes of ``cmd`` started together; each one's (stdout, stderr) once all ended
    (any still running at ``timeout`` is killed, so a hang fails the test instead of blocking it)."""
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
             for _ in range(copies)]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return procs, outs
