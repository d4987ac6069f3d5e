"""Turn stop signals into a "checkpoint at the next step boundary" request.

PBS sends SIGTERM before killing a job, SLURM ``--signal`` sends SIGUSR1/SIGUSR2 a chosen time
before the limit, and a person at a terminal presses Ctrl-C (SIGINT). Checkpointing inside the
handler could interrupt a half-finished optimizer step, so the handler only sets a flag that the
loop polls between steps: every one of them ends the same way, with a checkpoint and exit 75.

Ctrl-C alone says so at once (a step can take seconds, and silence reads as a hang), and a second
Ctrl-C is the way out when waiting is not wanted: it raises KeyboardInterrupt like Python's default
handler, so the process aborts without a new checkpoint (exit 130).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)
FIRST_CTRL_C = ("\nCtrl-C: stopping at the end of this step with a checkpoint "
                "(Ctrl-C again to abort at once, without one)\n")


class StopRequest:
    """A flag set by the stop signals; install with :meth:`install`, undo with :meth:`restore`."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # signals only work there
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            # The next Ctrl-C gets Python's own handler: KeyboardInterrupt wherever the loop is.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:  # os.write: a buffered stream may be in the middle of a write of its own
                os.write(2, FIRST_CTRL_C.encode())
            except OSError:
                pass

    @property
    def requested(self) -> bool:
        return self.signal_name is not None
