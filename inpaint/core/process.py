"""Is a local process still there? Shared by the packer's folder lock (``data_prep.journal``)
and the run-dir owner check (``jobs.lock``). Standard library only: no torch."""

from __future__ import annotations

import os
from pathlib import Path


def pid_exists(pid: int) -> bool:
    """True unless no process ``pid`` exists (one we may not signal still exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive(pid: int) -> bool:
    """Like :func:`pid_exists`, but a zombie (exited, not yet reaped by its parent) counts as
    gone; when ``/proc`` cannot tell, the process counts as alive."""
    if not pid_exists(pid):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True
