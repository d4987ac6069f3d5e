"""Training pairs (face, random training mask, random mask flip) and the order they come in.

Every random choice is a pure function of ``(seed, epoch, index)``: the batch sampler hands the
DataLoader ``(epoch, face_index)`` keys and :class:`TrainingPairs` derives the mask and flip from
the key alone. A resumed run therefore sees exactly the batches an uninterrupted run would,
independent of worker count, worker restarts or which rank of a DDP job reads the item.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

# Distinct streams so the epoch order and the per-item choices never share random numbers.
_ORDER_STREAM = 0x5EED_0001
_PAIR_STREAM = 0x5EED_0002


def epoch_order(num_items: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled face order of one epoch (a new permutation every epoch)."""
    rng = np.random.default_rng([_ORDER_STREAM, seed, epoch])
    return rng.permutation(num_items)


def pair_choice(seed: int, epoch: int, index: int, num_masks: int, flip_p: float) -> tuple[int, bool]:
    """Which training mask face ``index`` gets in ``epoch``, and whether it is mirrored."""
    rng = np.random.default_rng([_PAIR_STREAM, seed, epoch, index])
    return int(rng.integers(num_masks)), bool(rng.random() < flip_p)


class TrainingPairs(Dataset):
    """Items keyed by ``(epoch, face_index)`` → ``{"image", "mask", "index"}``; masks are
    1 = hole and mirrored left–right with probability ``flip_p``."""

    def __init__(self, faces: Dataset, masks: Dataset, seed: int, flip_p: float) -> None:
        self.faces, self.masks, self.seed, self.flip_p = faces, masks, seed, flip_p
        self.num_masks = len(masks)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        mask_index, flip = pair_choice(self.seed, epoch, index, self.num_masks, self.flip_p)
        mask = self.masks[mask_index]["mask"]
        if flip:
            mask = torch.flip(mask, dims=(-1,))
        return {"image": self.faces[index]["image"], "mask": mask, "index": index}


class EpochBatches(Sampler):
    """Batches of ``(epoch, face_index)`` keys for one rank, one epoch at a time.

    Like ``DistributedSampler`` + ``BatchSampler`` with ``drop_last``: each epoch's permutation
    is cut to a whole number of global batches and dealt out round-robin, so every rank makes the
    same number of steps. :meth:`set_epoch` also takes the batch to start at, which is how a
    resumed run skips the part of the epoch it already trained on. It lives in the main process,
    so persistent DataLoader workers pick up the change.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return self.num_items // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= self.steps_per_epoch:
            raise ValueError(f"start_batch {start_batch} outside 0..{self.steps_per_epoch}")
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.num_items, self.seed, self.epoch)
        used = order[: self.steps_per_epoch * self.batch_size * self.world_size]
        mine = used[self.rank:: self.world_size]
        for b in range(self.start_batch, self.steps_per_epoch):
            chunk = mine[b * self.batch_size: (b + 1) * self.batch_size]
            yield [(self.epoch, int(i)) for i in chunk]
