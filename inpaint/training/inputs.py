"""The data a training run reads: the train splits (checked against the config), the fixed
batch for the per-epoch pictures, and DataLoader worker set-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from inpaint.core.config import Config
from inpaint.core.errors import DataError
from inpaint.training.signals import STOP_SIGNALS

SAMPLE_COUNT = 8


def open_training_data(data_root: Path, cfg: Config, world_size: int) -> tuple[dict[str, Any], Dataset, Dataset]:
    """The train splits of the shard set, checked against the config; DataError when unusable."""
    from inpaint.io.shards import FaceShards, MaskShards, read_index  # the reader validates the shards

    index = read_index(data_root)
    size = cfg.data.size
    if int(index.get("size", size)) != size:
        raise DataError(
            f"shards in {data_root} are {index.get('size')} px but the config trains at data.size = {size}: "
            f"pack shards at {size} px or --set data.size={index.get('size')}"
        )
    faces, masks = FaceShards(data_root, "train"), MaskShards(data_root, "train")
    if len(faces) == 0:
        raise DataError(f"shards in {data_root} hold no training faces (split 'train' is empty): repack with faces in the train split")
    if len(masks) == 0:
        raise DataError(f"shards in {data_root} hold no training masks (split 'train' is empty): repack with masks in the train split")
    batch = cfg.train.batch_size
    if len(faces) < batch * world_size:
        raise DataError(
            f"shards in {data_root} hold {len(faces)} training faces, fewer than one batch "
            f"({batch} x {world_size} processes): lower train.batch_size or pack more faces"
        )
    return index, faces, masks


def sample_batch(data_root: Path, index: dict[str, Any], faces_train: Dataset, masks_train: Dataset) -> dict[str, torch.Tensor]:
    """A fixed batch for the per-epoch pictures: held-out test faces and masks when the shard set
    has them (spread over the mask buckets), training ones otherwise."""
    from inpaint.io.shards import FaceShards, MaskShards

    counts = index.get("counts", {})
    faces = FaceShards(data_root, "test") if counts.get("faces", {}).get("test", 0) else faces_train
    masks = MaskShards(data_root, "test") if counts.get("masks", {}).get("test", 0) else masks_train
    k = min(SAMPLE_COUNT, len(faces))
    face_ids = np.linspace(0, len(faces) - 1, k).round().astype(int)
    # Masks sorted by hole ratio, picked evenly: the grid shows small to large holes.
    order = np.argsort(np.asarray(masks.ratios), kind="stable")
    mask_ids = order[np.linspace(0, len(order) - 1, k).round().astype(int)]
    image = torch.stack([faces[int(i)]["image"] for i in face_ids])
    mask = torch.stack([masks[int(i)]["mask"] for i in mask_ids])
    return {"image": image, "mask": mask}


def seed_worker(worker_id: int) -> None:
    """numpy/random in each DataLoader worker seeded from torch's per-worker seed; the stop
    signals are ignored there, so a batch system signalling the whole process group does not kill
    the workers before the main process has written its checkpoint."""
    import random
    import signal

    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
