"""TensorBoard event files in ``RUN/tensorboard/`` when ``tensorboard`` is installed (NGC PyTorch
images ship it): the same scalars as ``metrics.jsonl`` and the per-epoch sample sheets.

Optional on purpose: ``metrics.jsonl`` and ``samples/*.png`` stay the record, so a run without
tensorboard loses nothing, and a failing event writer (full disk) never fails a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from inpaint.core.contract import TENSORBOARD_DIR


class TensorBoardLog:
    """A ``SummaryWriter`` that drops what it cannot write; :meth:`open` gives None without tensorboard."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    @classmethod
    def open(cls, run_dir: Path, resumed_step: int) -> "TensorBoardLog | None":
        """Events after ``resumed_step`` (logged after the checkpoint we resume from) are purged,
        as in metrics.jsonl, so a resumed run's curves show each step once."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed
            return None
        try:
            return cls(SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR), purge_step=resumed_step + 1 if resumed_step else None))
        except OSError:
            return None

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        try:
            for name, value in values.items():
                self._writer.add_scalar(name, value, step)
            self._writer.flush()
        except OSError:
            pass

    def picture(self, tag: str, step: int, picture: Any) -> None:
        """A PIL image (the sample sheet) as an HWC uint8 image."""
        try:
            self._writer.add_image(tag, np.asarray(picture.convert("RGB")), step, dataformats="HWC")
            self._writer.flush()
        except OSError:
            pass

    def close(self) -> None:
        try:
            self._writer.close()
        except OSError:
            pass
