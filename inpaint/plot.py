"""``python -m inpaint.plot RUN_DIR``: loss curves of a run as a PNG, drawn with Pillow alone
(plotting libraries are not installed on most grid nodes, and the picture needs no more)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from inpaint.cli import run_cli
from inpaint.contract import METRICS_FILE
from inpaint.errors import DataError
from inpaint.training.metrics_log import read_metrics
from inpaint.visual import save_image

# (panel title, [(metrics key, legend)]); panels whose keys never occur are left out.
PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("generator loss", (("g_total", "G total"),)),
    ("reconstruction L1", (("global_l1", "global L1"), ("hole_l1", "hole L1"))),
    ("adversarial", (("adversarial", "G adversarial"), ("d_loss", "D loss"))),
    ("perceptual", (("perceptual", "perceptual"),)),
    ("throughput (img/s)", (("img_per_s", "img/s"),)),
)
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))
PANEL_W, PANEL_H = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36


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


def draw_panel(title: str, series: Sequence[tuple[str, list[tuple[float, float]]]]) -> Image.Image:
    """One chart: lines (step, value) with axes, ticks and a legend."""
    img = Image.new("RGB", (PANEL_W, PANEL_H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.text((LEFT, 6), title, fill="black", font=font)
    points = [p for _, pts in series for p in pts if math.isfinite(p[1])]
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if x1 == x0:
        x1 = x0 + 1
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
    for t in _ticks(x0, x1):
        px, _ = xy(t, y0)
        d.line([px, TOP + h, px, TOP + h + 4], fill=(120, 120, 120))
        d.text((px - 10, TOP + h + 6), f"{t:.0f}", fill="black", font=font)
    d.text((LEFT + w // 2 - 12, PANEL_H - 14), "step", fill="black", font=font)
    for i, (label, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        line = [xy(x, y) for x, y in pts if math.isfinite(y)]
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        elif line:
            cx, cy = line[0]
            d.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
        lx = LEFT + w - 110
        ly = TOP + 6 + 12 * i
        d.line([lx, ly + 6, lx + 16, ly + 6], fill=colour, width=2)
        d.text((lx + 20, ly), label, fill="black", font=font)
    return img


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw every panel that has data into one PNG (default ``RUN_DIR/loss_curves.png``)."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    if not records:
        raise DataError(f"{run_dir / METRICS_FILE} is missing or empty: train first (python -m inpaint.train …) or give the run dir")
    panels = []
    for title, keys in PANELS:
        series = [(legend, [(float(r["step"]), float(r[key])) for r in records if key in r and r[key] is not None])
                  for key, legend in keys]
        series = [s for s in series if any(math.isfinite(y) for _, y in s[1])]
        if series:
            panels.append(draw_panel(title, series))
    cols = 2
    rows = math.ceil(len(panels) / cols)
    sheet = Image.new("RGB", (cols * PANEL_W, rows * PANEL_H), "white")
    for i, panel in enumerate(panels):
        sheet.paste(panel, ((i % cols) * PANEL_W, (i // cols) * PANEL_H))
    return save_image(sheet, Path(out) if out else run_dir / "loss_curves.png", fmt="PNG")  # PNG whatever --out says


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m inpaint.plot", description="Draw a run's loss curves to a PNG.")
    p.add_argument("run_dir", type=Path, help="run dir holding metrics.jsonl")
    p.add_argument("--out", type=Path, help="PNG to write (default RUN_DIR/loss_curves.png)")
    args = p.parse_args(argv)
    path = plot_run(args.run_dir, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
