"""Multi-process training as launched by ``torchrun``: process group set-up and the few
collective decisions the loop needs (stop together, agree on the checkpoint to resume from).

Without torchrun's environment the run is a plain single process and every helper is a no-op,
so the loop has one code path.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU) if ``WORLD_SIZE`` > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        # Long timeout: rank 0 may spend minutes writing a checkpoint while the others wait.
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world)


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any: all ranks must stop at the same step."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sum_over_ranks(value: float, info: DistInfo, device: torch.device) -> float:
    """The sum of ``value`` over all ranks (on every rank)."""
    if not info.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def broadcast_from_main(obj: Any, info: DistInfo) -> Any:
    """Rank 0's value of ``obj`` on every rank (a picklable Python object)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
