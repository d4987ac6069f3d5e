"""Running a per-file function over many files with bounded memory.

Results come back in input order, and at most ``window`` chunks are in flight, so however large
the data set, only a few hundred decoded images per worker exist at once (the packer's memory bound).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, TypeVar

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
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


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
