"""Turn the batch system's warning signals into a "checkpoint at the next step boundary" request.

PBS sends SIGTERM before killing a job, SLURM ``--signal`` sends SIGUSR1/SIGUSR2 a chosen time
before the limit. Checkpointing inside the handler could interrupt a half-finished optimizer
step, so the handler only sets a flag that the loop polls between steps.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


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
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        return self.signal_name is not None
