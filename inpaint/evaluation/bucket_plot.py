"""``bucket_plot.png``: PSNR and LPIPS per hole-ratio bucket, one line per method.

The per-bucket tables hold the numbers; what a reader wants first is their shape: which method
leads at which hole size, and where the curves cross (a learned model typically trails the best
classical fill in PSNR on small holes and leads in LPIPS on large ones). Drawn with Pillow
(:mod:`inpaint.render.chart`): matplotlib is not a dependency.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image

from inpaint.core.atomic import atomic_open
from inpaint.core.buckets import BUCKET_LABELS
from inpaint.render.chart import draw_panel, sheet

PLOT_NAME = "bucket_plot.png"
#: (metric key, panel title): standard convention, the composite a user sees.
PANELS = (("std_psnr", "PSNR std (dB, composite in [0, 1]), higher is better"),
          ("std_lpips", "LPIPS (composite, AlexNet), lower is better"))


def bucket_picture(columns: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]]) -> Image.Image | None:
    """The picture for ``columns`` ((method name, bucket table) in report order); None when no
    panel has a value (nothing scored)."""
    labels = {float(i): label for i, label in enumerate(BUCKET_LABELS)}
    panels = []
    for key, title in PANELS:
        series = []
        for name, buckets in columns:
            points = [(float(i), float(buckets[label][key])) for i, label in enumerate(BUCKET_LABELS)
                      if isinstance((buckets.get(label) or {}).get(key), (int, float))]
            series.append((name, points))
        if any(points for _, points in series):
            panels.append(draw_panel(title, series, x_title="hole ratio", x_labels=labels, legend_outside=True,
                                     markers=True))
    return sheet(panels, cols=2) if panels else None


def write_bucket_plot(columns: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]],
                      out_dir: str | os.PathLike) -> Path | None:
    """Write ``out_dir/bucket_plot.png`` atomically; None (and nothing written) when nothing was scored."""
    picture = bucket_picture(columns)
    if picture is None:
        return None
    path = Path(out_dir) / PLOT_NAME
    with atomic_open(path, "wb") as f:
        picture.save(f, format="PNG")
    return path
