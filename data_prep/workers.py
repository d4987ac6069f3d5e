"""Running a per-file function over many files with bounded memory.

Results come back in input order, and at most ``window`` chunks are in flight, so however large
the data set, only a few hundred decoded images per worker exist at once (the packer's memory bound).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, TypeVar

from inpaint.core.process import pid_alive

T = TypeVar("T")
R = TypeVar("R")


def make_executor(workers: int) -> Executor | None:
    """A process pool for ``workers`` > 1, else ``None`` (run in-process: no pickling cost).

    ``forkserver`` children never inherit the packer's open HDF5 handles; preloading the
    decoders in the server lets each worker start in milliseconds instead of re-importing
    numpy and Pillow.
    """
    if workers <= 1:
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["data_prep.faces", "data_prep.masks", "data_prep.mask_gen"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with,
                               initargs=(os.getpid(),))


def die_with(packer_pid: int) -> None:
    """Worker initializer: exit as soon as the packer process ``packer_pid`` ends, however it ends.

    A killed packer never shuts its pool down, and nothing else would: a worker's parent is the
    forkserver, not the packer (so ``PR_SET_PDEATHSIG`` would not fire), each worker keeps the
    forkserver alive, and both keep the resource tracker alive. Once the workers go, the
    forkserver and the tracker see their pipes close and exit too. Workers also ignore SIGINT and
    SIGTERM sent to the whole process group: the packer decides when the pool stops.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_when_gone, args=(packer_pid,), name="die-with-packer", daemon=True).start()


def _exit_when_gone(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)  # Linux >= 5.3: readable the moment the process exits
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd here: look twice a second
        while pid_alive(pid):
            time.sleep(0.5)
        os._exit(1)
    select.select([fd], [], [])
    os._exit(1)


def _apply_chunk(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    return [fn(item) for item in items]


def ordered_map(executor: Executor | None, fn: Callable[[T], R], items: Iterable[T],
                chunk: int = 16, window: int = 8) -> Iterator[R]:
    """``map(fn, items)`` in order, on ``executor`` with at most ``window`` chunks pending."""
    if executor is None:
        for item in items:
            yield fn(item)
        return
    pending: deque = deque()
    batch: list[T] = []

    def submit(b: list[T]) -> None:
        pending.append(executor.submit(_apply_chunk, fn, b))

    for item in items:
        batch.append(item)
        if len(batch) == chunk:
            submit(batch)
            batch = []
            while len(pending) >= window:
                yield from pending.popleft().result()
    if batch:
        submit(batch)
    while pending:
        yield from pending.popleft().result()
