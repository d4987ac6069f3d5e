"""Loss bookkeeping: running sums kept on the device (no per-step host sync on a GPU) and
their averages appended to ``metrics.jsonl`` one JSON object per line."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from inpaint.core.atomic import write_text
from inpaint.core.contract import METRICS_FILE


class RunningLosses:
    """Sums of detached loss tensors since the last :meth:`pop`; also notices non-finite values."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0

    def add(self, losses: Mapping[str, torch.Tensor]) -> None:
        for name, value in losses.items():
            v = value.detach().float()
            self._sums[name] = self._sums[name] + v if name in self._sums else v.clone()
        self._count += 1

    def peek(self) -> dict[str, float]:
        """Means since the last :meth:`pop` (one host sync), without resetting."""
        if not self._count:
            return {}
        names = list(self._sums)
        values = torch.stack([self._sums[n] for n in names]).cpu().tolist()
        return {n: v / self._count for n, v in zip(names, values)}

    def pop(self) -> dict[str, float]:
        """Means since the last call, then reset."""
        out = self.peek()
        self._sums, self._count = {}, 0
        return out


def all_finite(values: Mapping[str, float]) -> bool:
    return all(math.isfinite(v) for v in values.values())


def append_metrics(run_dir: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """One line per call, flushed at once so a killed job keeps everything logged so far."""
    path = Path(run_dir) / METRICS_FILE
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(dict(record), allow_nan=True) + "\n")
        f.flush()


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a run; a torn last line (job killed mid-write) is ignored."""
    path = Path(run_dir) / METRICS_FILE
    records = []
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def truncate_metrics_after(run_dir: str | os.PathLike, step: int) -> None:
    """Drop records newer than ``step`` (logged after the checkpoint we resume from), so a
    resumed run's curves do not show those steps twice."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return
    kept = [r for r in read_metrics(run_dir) if int(r.get("step", 0)) <= step]
    write_text(path, "".join(json.dumps(r, allow_nan=True) + "\n" for r in kept))
