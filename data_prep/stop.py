"""SIGTERM for the packer: a clean, resumable stop (exit 75) instead of death on the spot."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inpaint.core.contract import EXIT_STOPPED
from inpaint.core.errors import FacefillError


class PackStopped(FacefillError):
    """SIGTERM (a grid's walltime, ``kill``): the pool was stopped cleanly, the shards finished
    so far are kept and the same command resumes from them."""

    exit_code = EXIT_STOPPED


class StopRequest:
    """SIGTERM as a flag as well as an exception.

    The handler raises :class:`PackStopped` so the ``finally`` blocks shut the pool down at
    once, but Python drops an exception raised while a ``__del__`` or weakref callback runs
    ("Exception ignored in ..."); the flag stays set, and the pack calls :meth:`check` at every
    item and before it writes ``index.json``, so a stopped pack never reports itself finished.
    Such a dropped stop prints nothing (:meth:`_unraisable`): its one line comes from the check.
    """

    def __init__(self, out: Path) -> None:
        self.requested = False
        self._previous_hook = sys.unraisablehook
        self.message = (f"{out}: stopped by SIGTERM; the finished shards are kept: re-run the same "
                        "python -m data_prep.pack command to resume")

    def check(self) -> None:
        if self.requested:
            raise PackStopped(self.message)

    def _unraisable(self, unraisable: "sys.UnraisableHookArgs") -> None:
        if not isinstance(unraisable.exc_value, PackStopped):
            self._previous_hook(unraisable)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        self.requested = True
        raise PackStopped(self.message)


@contextmanager
def stop_on_sigterm(out: Path) -> Iterator[StopRequest]:
    """Install the handler for the ``with`` block (only the main thread may; elsewhere the
    request is never set and SIGTERM keeps its default action)."""
    stop = StopRequest(out)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, stop._on_sigterm)
    sys.unraisablehook = stop._unraisable
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = stop._previous_hook
