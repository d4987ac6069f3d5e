"""Finding pretrained weight files (VGG16 for the perceptual loss, AlexNet + LPIPS layers).

Grid nodes and this project's CI cannot download at run time, so weights are looked up in a
fixed order of local places and a missing file is a clear error naming what to provide —
never a silent fallback to random weights.
"""

from __future__ import annotations

import os
from pathlib import Path

from inpaint.core.errors import CheckpointError

REPO_ROOT = Path(__file__).resolve().parents[2]


def search_dirs() -> list[Path]:
    """Where weights are looked for, in order: ``$FACEFILL_WEIGHTS``, ``../shared/weights`` beside
    the checkout, the torch hub cache (``$TORCH_HOME/hub/checkpoints``)."""
    dirs: list[Path] = []
    env = os.environ.get("FACEFILL_WEIGHTS")
    if env:
        dirs.append(Path(env))
    dirs.append(REPO_ROOT.parent / "shared" / "weights")
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    dirs.append(torch_home / "hub" / "checkpoints")
    return dirs


def find_pretrained(filename: str, explicit: str | os.PathLike | None = None, purpose: str = "") -> Path:
    """Path of a weights file: ``explicit`` if given (must exist), else the first of
    :func:`search_dirs` that holds ``filename``."""
    what = f" ({purpose})" if purpose else ""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise CheckpointError(f"weights file {path}{what} does not exist: fix the path or remove it to search the default places")
        return path
    for d in search_dirs():
        candidate = d / filename
        if candidate.is_file():
            return candidate
    places = ", ".join(str(d) for d in search_dirs())
    raise CheckpointError(
        f"weights file {filename}{what} not found in {places}: copy it into one of them or set FACEFILL_WEIGHTS to its folder"
    )
