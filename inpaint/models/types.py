"""What the rest of facefill knows of a generator: ``G(masked_image, mask) -> image``.

Trained networks (any of :mod:`inpaint.models`), the classical baselines and the wrappers that
evaluation and inference put around them all have this one type."""

from __future__ import annotations

from typing import Callable

import torch

#: ``(masked image, mask) -> image``: images in [-1, 1], N×3×H×W; masks N×1×H×W, 1 in the holes.
Generator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
