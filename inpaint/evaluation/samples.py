"""``--samples DIR``: every composite as a PNG, named so a file can be traced to its pair."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from inpaint.render.visual import save_image, to_uint8


def safe_name(name: str) -> str:
    """A model or group name usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "model"


class SampleWriter:
    """Runner hook writing ``<dir>/<model>/<group>/<pos>-face<F>-mask<M>.png``."""

    def __init__(self, folder: str | os.PathLike, model: str, groups: Sequence[str],
                 pairs: Sequence[tuple[int, int]]) -> None:
        self.folder = Path(folder) / safe_name(model)
        self.groups, self.pairs = list(groups), list(pairs)

    def __call__(self, positions: np.ndarray, masked: torch.Tensor, mask: torch.Tensor, comp: torch.Tensor,
                 truth: torch.Tensor) -> None:
        for pos, arr in zip(positions, to_uint8(comp)):
            face, mask_id = self.pairs[int(pos)]
            path = self.folder / safe_name(self.groups[int(pos)]) / f"{int(pos):05d}-face{face}-mask{mask_id}.png"
            save_image(Image.fromarray(arr), path)


def chain_hooks(*hooks):  # type: ignore[no-untyped-def]
    """One hook calling each of ``hooks`` that is not None."""
    active = [h for h in hooks if h is not None]
    if not active:
        return None

    def run(*args):  # type: ignore[no-untyped-def]
        for hook in active:
            hook(*args)

    return run
