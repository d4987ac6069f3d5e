"""Which model a photo command loads, and loading it: ``--weights`` (a file, or the name of shipped
weights), ``--run-dir``, or the shipped default.

Torch loads only inside :func:`build_inpainter`, once the command line is known to be good.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from inpaint.core.cli import warnings_as_lines
from inpaint.core.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from inpaint.inference.inpainter import Inpainter

# The default is the shipped model that beat the classical fill (Navier-Stokes) on our test pairs:
# a quarter-width Model 2 that corrects the OpenCV fill (card: weights/quarter-residual.json).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "quarter-residual.pt"


def resolve_source(weights: str | None, run_dir: str | None) -> Path:
    """The checkpoint, weights file or run dir to load: ``--weights`` (a path, or the name of
    shipped weights), ``--run-dir``, or the shipped default."""
    if weights and run_dir:
        raise ConfigError("give either --weights FILE or --run-dir DIR, not both")
    if weights or run_dir:
        path = Path(weights or run_dir).expanduser()  # type: ignore[arg-type]
        if weights and not path.exists() and path.name == weights and not path.suffix:  # a name, not a file
            from inpaint.io.registry import find_weights

            return find_weights(weights).path  # or the one-line error listing the shipped names
        return path
    if not DEFAULT_WEIGHTS.is_file():
        raise CheckpointError(f"no shipped weights at {DEFAULT_WEIGHTS} yet: pass --weights FILE (a weights .pt "
                              "with its .json, or a checkpoint) or --run-dir DIR (a training run)")
    return DEFAULT_WEIGHTS


def build_inpainter(args: argparse.Namespace) -> Inpainter:
    """The model of ``--weights``/``--run-dir`` (or the shipped one) ready for photos; a one-line
    warning on stderr when it is a smoke model, whose fills are noise."""
    from inpaint.device import resolve_device
    from inpaint.inference.inpainter import Inpainter
    from inpaint.inference.loading import smoke_warning
    from inpaint.io.weights import WeightsWarning

    if args.feather is not None and args.feather < 0:
        raise ConfigError(f"--feather must be 0 or more pixels, got {args.feather}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = resolve_device(args.device)
    source = resolve_source(args.weights, args.run_dir)
    with warnings_as_lines(WeightsWarning):
        inpainter = Inpainter.from_weights(source, device, face_detect=not args.no_face_detect, feather=args.feather)
    if args.no_face_detect:
        inpainter.no_faces_reason = "not searched (--no-face-detect)"
    warning = smoke_warning(inpainter.model, args.weights or args.run_dir or source)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return inpainter
