"""The comparison figure: rows = samples across hole-ratio buckets, columns = masked input, each
model's composite, ground truth — what a reader looks at before trusting any table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from inpaint.core.buckets import BUCKET_LABELS
from inpaint.render.visual import save_image, to_uint8

HOLE_COLOUR = (255, 255, 255)


def grid_positions(pair_buckets: Sequence[int], per_bucket: int = 1) -> list[int]:
    """Positions (in the flat pair list) of the first ``per_bucket`` pairs of every bucket."""
    chosen: list[int] = []
    taken: dict[int, int] = {}
    for pos, b in enumerate(pair_buckets):
        if taken.get(b, 0) < per_bucket:
            taken[b] = taken.get(b, 0) + 1
            chosen.append(pos)
    return sorted(chosen, key=lambda p: (pair_buckets[p], p))


def masked_for_display(masked: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Masked input with the hole painted white (the zeros the generator sees look grey)."""
    images = to_uint8(masked)
    holes = mask[:, 0].numpy() > 0.5
    images[holes] = HOLE_COLOUR
    return images


class GridCollector:
    """Keeps the few images the grid needs while a model is being scored (a runner hook)."""

    def __init__(self, positions: Sequence[int]) -> None:
        self.wanted = set(int(p) for p in positions)
        self.inputs: dict[int, np.ndarray] = {}
        self.truth: dict[int, np.ndarray] = {}
        self.composites: dict[str, dict[int, np.ndarray]] = {}
        self.model = ""

    def for_model(self, name: str) -> "GridCollector":
        self.model = name
        self.composites.setdefault(name, {})
        return self

    def __call__(self, positions: np.ndarray, masked: torch.Tensor, mask: torch.Tensor, comp: torch.Tensor,
                 truth: torch.Tensor) -> None:
        rows = [j for j, p in enumerate(positions) if int(p) in self.wanted]
        if not rows:
            return
        shown = masked_for_display(masked[rows], mask[rows])
        comps = to_uint8(comp[rows])
        gts = to_uint8(truth[rows])
        for k, j in enumerate(rows):
            pos = int(positions[j])
            self.inputs.setdefault(pos, shown[k])
            self.truth.setdefault(pos, gts[k])
            self.composites[self.model][pos] = comps[k]


def render_grid(collector: GridCollector, pair_buckets: Sequence[int], scale: int = 1) -> Image.Image:
    """Compose the figure with a header row of column names and a left column of bucket labels."""
    positions = sorted(collector.inputs, key=lambda p: (pair_buckets[p], p))
    if not positions:
        raise ValueError("no samples were collected for the grid")
    return render_rows(collector, positions, [[BUCKET_LABELS[pair_buckets[p]]] for p in positions], scale)


def render_rows(collector: GridCollector, positions: Sequence[int], row_labels: Sequence[Sequence[str]],
                scale: int = 1, label_w: int = 64) -> Image.Image:
    """Rows = ``positions`` (pairs), each with its lines of ``row_labels`` on the left (one line is
    centred); columns = masked input, every collected column's composite, ground truth."""
    models = list(collector.composites)
    columns = ["masked input", *models, "ground truth"]
    h, w = collector.inputs[positions[0]].shape[:2]
    cell_h, cell_w = h * scale, w * scale
    font = ImageFont.load_default()
    header_h, pad = 16, 2
    max_chars = max(4, (cell_w + pad) // 6)
    width = label_w + len(columns) * (cell_w + pad)
    height = header_h + len(positions) * (cell_h + pad)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(columns):
        draw.text((label_w + c * (cell_w + pad) + 2, 2), title[:max_chars], fill=(0, 0, 0), font=font)
    for r, pos in enumerate(positions):
        y = header_h + r * (cell_h + pad)
        labels = list(row_labels[r])
        top = y + cell_h // 2 - 5 if len(labels) == 1 else y + 2
        for k, text in enumerate(labels):
            draw.text((2, top + 12 * k), text, fill=(0, 0, 0), font=font)
        row = [collector.inputs[pos], *(collector.composites[m].get(pos) for m in models), collector.truth[pos]]
        for c, arr in enumerate(row):
            if arr is None:
                continue
            tile = Image.fromarray(arr)
            if scale != 1:
                tile = tile.resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (label_w + c * (cell_w + pad), y))
    return canvas


def write_grid(collector: GridCollector, pair_buckets: Sequence[int], path: str | os.PathLike) -> Path:
    """Render and save atomically; small images (64 px) are enlarged 2× so labels fit."""
    first = next(iter(collector.inputs.values()))
    scale = 2 if first.shape[0] < 96 else 1
    return save_image(render_grid(collector, pair_buckets, scale), path)
