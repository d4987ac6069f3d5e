"""Line charts drawn with Pillow alone: the loss curves of a run and the evaluation's per-bucket plot.

Plotting libraries are not installed on most grid nodes (and matplotlib is no dependency of
facefill); the pictures need axes, ticks, lines and a legend, no more. Torch-free.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

#: matplotlib's "tab10" colours, so the pictures read like the plots people know.
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
PANEL_W, PANEL_H = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36
LEGEND_W = 150  # the legend's column right of the plot, when it is drawn outside

Series = Sequence[tuple[str, Sequence[tuple[float, float]]]]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values spanning [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def draw_panel(title: str, series: Series, x_title: str = "step", x_labels: Mapping[float, str] | None = None,
               legend_outside: bool = False, markers: bool = False) -> Image.Image:
    """One chart: lines of (x, y) points with axes, ticks and a legend.

    ``x_labels``: categorical x axis (each x value → its label) instead of numeric ticks;
    ``legend_outside``: the legend gets its own column right of the plot, so it never covers a
    line; ``markers``: a dot on every point (few points per line).
    """
    width = PANEL_W + (LEGEND_W if legend_outside else 0)
    img = Image.new("RGB", (width, PANEL_H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.text((LEFT, 6), title, fill="black", font=font)
    points = [p for _, pts in series for p in pts if math.isfinite(p[1])]
    xs = [p[0] for p in points] + list(x_labels or ())
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if x1 == x0:
        x1 = x0 + 1
    if x_labels:  # half a category of room on each side
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        y0, y1 = y0 - 0.5 * (abs(y0) or 1), y1 + 0.5 * (abs(y1) or 1)
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad
    w, h = PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM

    def xy(x: float, y: float) -> tuple[float, float]:
        return LEFT + (x - x0) / (x1 - x0) * w, TOP + (1 - (y - y0) / (y1 - y0)) * h

    d.rectangle([LEFT, TOP, LEFT + w, TOP + h], outline=(120, 120, 120))
    for t in _ticks(y0, y1):
        _, py = xy(x0, t)
        d.line([LEFT, py, LEFT + w, py], fill=(232, 232, 232))
        d.text((4, py - 6), _fmt(t), fill="black", font=font)
    ticks = x_labels.items() if x_labels else ((t, f"{t:.0f}") for t in _ticks(x0, x1))
    for t, label in ticks:
        px, _ = xy(t, y0)
        d.line([px, TOP + h, px, TOP + h + 4], fill=(120, 120, 120))
        d.text((px - 3 * len(label), TOP + h + 6), label, fill="black", font=font)
    d.text((LEFT + w // 2 - 3 * len(x_title), PANEL_H - 14), x_title, fill="black", font=font)
    for i, (label, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        line = [xy(x, y) for x, y in pts if math.isfinite(y)]
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        for cx, cy in line if (markers or len(line) == 1) else ():
            d.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)
        lx = PANEL_W + 4 if legend_outside else LEFT + w - 110
        ly = TOP + 6 + 14 * i
        d.line([lx, ly + 6, lx + 16, ly + 6], fill=colour, width=3)
        d.text((lx + 20, ly), label, fill="black", font=font)
    return img


def sheet(panels: Sequence[Image.Image], cols: int = 2) -> Image.Image:
    """Panels side by side, ``cols`` to a row, on white."""
    cols = max(1, min(cols, len(panels)))
    rows = math.ceil(len(panels) / cols)
    cell_w, cell_h = max(p.width for p in panels), max(p.height for p in panels)
    out = Image.new("RGB", (cols * cell_w, rows * cell_h), "white")
    for i, panel in enumerate(panels):
        out.paste(panel, ((i % cols) * cell_w, (i // cols) * cell_h))
    return out
