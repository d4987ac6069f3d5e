"""facefill: face inpainting with gated-convolution U-Nets (models, training, evaluation, inference).

Kept import-light on purpose: ``data_prep`` and ``jobs`` import small helpers from here
without paying for torch. The Python API, ``from inpaint import Inpainter``, is loaded on first
use for the same reason::

    from inpaint import Inpainter
    inpainter = Inpainter.from_pretrained("quarter-residual")
    repaired = inpainter.repair(photo, mask)   # PIL images or numpy arrays; white (True) = hole
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Inpainter", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Inpainter":  # imports torch: only when asked for
        from inpaint.inference.inpainter import Inpainter

        return Inpainter
    raise AttributeError(f"module 'inpaint' has no attribute {name!r}")
