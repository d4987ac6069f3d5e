"""``python -m inpaint.plot RUN_DIR``: loss curves of a run as a PNG, drawn with Pillow alone
(:mod:`inpaint.render.chart`: plotting libraries are not installed on most grid nodes, and the picture
needs no more)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Sequence

from inpaint.render.chart import draw_panel, sheet
from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.contract import METRICS_FILE
from inpaint.core.errors import DataError
from inpaint.training.metrics_log import read_metrics
from inpaint.render.visual import save_image

# (panel title, [(metrics key, legend)]); panels whose keys never occur are left out.
PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("generator loss", (("g_total", "G total"),)),
    ("reconstruction L1", (("global_l1", "global L1"), ("hole_l1", "hole L1"))),
    ("adversarial", (("adversarial", "G adversarial"), ("d_loss", "D loss"))),
    ("perceptual", (("perceptual", "perceptual"),)),
    ("throughput (img/s)", (("img_per_s", "img/s"),)),
)


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
    return save_image(sheet(panels, cols=2), Path(out) if out else run_dir / "loss_curves.png", fmt="PNG")  # PNG whatever --out says


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m inpaint.plot", description="Draw a run's loss curves to a PNG.")
    p.add_argument("run_dir", type=Path, help="run dir holding metrics.jsonl")
    p.add_argument("--out", type=Path, help="PNG to write (default RUN_DIR/loss_curves.png)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = plot_run(args.run_dir, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
