"""The DataLoader of a training run: built from the deterministic pairs and batch order, and
stopped explicitly so a failing run cannot hang on its own workers.

Why stop it by hand: the workers ignore SIGTERM (a batch system signals the whole process group
and the main process must first write its checkpoint, see ``inputs.seed_worker``). When the main
process exits with the loader still referenced (an exception's traceback holds the iterator),
PyTorch skips its own shutdown at interpreter exit and ``multiprocessing`` then terminates the
workers with SIGTERM and joins them: forever. So the trainer always calls :func:`stop_workers`
before it returns, and anything still alive after a polite shutdown is killed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from inpaint.core.errors import FacefillError
from inpaint.training.inputs import seed_worker
from inpaint.training.pairs import EpochBatches


def make_loader(pairs: Dataset, sampler: EpochBatches, workers: int, seed: int, pin_memory: bool) -> DataLoader:
    """Persistent workers (the sampler's epoch lives in the main process, so they follow it);
    the loader's own generator only seeds the workers, every random choice is in the pairs."""
    loader_seed = torch.Generator()
    loader_seed.manual_seed(seed)
    return DataLoader(
        pairs, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=seed_worker, generator=loader_seed,
    )


def stop_workers(loader: DataLoader | None) -> None:
    """End the loader's worker processes now (a no-op without workers or when already ended)."""
    iterator: Any = getattr(loader, "_iterator", None)
    if iterator is None or not hasattr(iterator, "_shutdown_workers"):
        return
    workers = list(getattr(iterator, "_workers", []))
    iterator._shutdown_workers()  # sends each worker its end marker, joins, closes the queues
    for w in workers:
        if w.is_alive():  # SIGTERM is ignored there: terminate() would not do
            w.kill()
            w.join(timeout=5)
    loader._iterator = None


def worker_error(exc: FacefillError) -> FacefillError:
    """A user error raised in a worker, as the one line it was: the DataLoader re-raises it in the
    main process as "Caught DataError in DataLoader worker process 0. Original Traceback …"."""
    text = str(exc)
    if "DataLoader worker process" not in text:
        return exc
    last = [line for line in text.splitlines() if line.strip()][-1]
    prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
    return type(exc)(last[len(prefix):] if last.startswith(prefix) else last)
