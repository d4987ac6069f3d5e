"""LPIPS (Zhang et al. 2018), AlexNet backbone with the v0.1 linear calibration.

Implemented here rather than through the ``lpips`` package because that package downloads the
AlexNet weights at first use, which grid nodes and CI cannot do. The weights come from local
files (see ``../shared/weights/README.md``) found by :func:`inpaint.io.pretrained.find_pretrained`;
there is deliberately no fallback to random or other weights, since an LPIPS computed with
anything else is not LPIPS and would silently make tables incomparable.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models import alexnet

from inpaint.core.errors import CheckpointError
from inpaint.io.pretrained import find_pretrained

ALEXNET_FILE = "alexnet_imagenet_features.pth"
LIN_FILE = "lpips_alex_v0.1_lin.pth"

#: Indices in ``torchvision.models.alexnet().features`` right after each of the five ReLUs.
TAP_INDICES = (1, 4, 7, 9, 11)
TAP_CHANNELS = (64, 192, 384, 256, 256)
#: The LPIPS authors' input scaling layer, applied to RGB in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


class LPIPS(nn.Module):
    """``forward(x, y)`` with RGB in [-1, 1], shape (B,3,H,W) → per-image distance (B,)."""

    def __init__(self, features_state: dict[str, torch.Tensor], lin_state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        features = alexnet(weights=None).features[: TAP_INDICES[-1] + 1]
        for module in features:
            if isinstance(module, nn.ReLU):
                module.inplace = False
        features.load_state_dict(features_state)
        self.features = features
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in TAP_CHANNELS)
        for i, lin in enumerate(self.lins):
            lin.weight.data.copy_(lin_state[f"lin{i}.model.1.weight"])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAP_INDICES:
                taps.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS))
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS needs two (B,3,H,W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        n = x.shape[0]
        total = x.new_zeros(n)
        for lin, f in zip(self.lins, self._taps(torch.cat([x, y]))):  # one pass over both: larger batches run faster
            total = total + lin((f[:n] - f[n:]) ** 2).mean(dim=(1, 2, 3))
        return total


def _load_state(path: Path, expected: set[str], fix: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, wrong format: the user needs the path, not pickle internals
        raise CheckpointError(f"cannot read LPIPS weights {path} ({exc.__class__.__name__}): {fix}") from exc
    if not isinstance(state, dict) or not expected <= set(state):
        raise CheckpointError(f"LPIPS weights {path} lack the expected keys ({', '.join(sorted(expected))}): {fix}")
    return state


def load_lpips(weights_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS-alex v0.1 from local files.

    ``weights_dir`` is the folder holding both files (the ``--lpips-weights`` option); without it
    the default places of :func:`inpaint.io.pretrained.search_dirs` are searched. Raises
    :class:`CheckpointError` when the files are missing or unreadable.
    """
    if weights_dir is not None:
        folder = Path(weights_dir).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"--lpips-weights {folder} is not a folder: give the folder holding {ALEXNET_FILE} and {LIN_FILE}")
        features_path = find_pretrained(ALEXNET_FILE, folder / ALEXNET_FILE, "LPIPS AlexNet backbone")
        lin_path = find_pretrained(LIN_FILE, folder / LIN_FILE, "LPIPS v0.1 linear layers")
    else:
        features_path = find_pretrained(ALEXNET_FILE, purpose="LPIPS AlexNet backbone")
        lin_path = find_pretrained(LIN_FILE, purpose="LPIPS v0.1 linear layers")
    fix = "replace it with the file described in ../shared/weights/README.md"
    features_state = _load_state(features_path, {f"{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")}, fix)
    lin_state = _load_state(lin_path, {f"lin{i}.model.1.weight" for i in range(5)}, fix)
    return LPIPS(features_state, lin_state).to(device)


def try_load_lpips(weights_dir: str | os.PathLike | None = None,
                   device: torch.device | str = "cpu") -> tuple[LPIPS | None, str]:
    """(model, "") when the weights are found, else (None, reason) so a report can say
    "unavailable" with the reason; an explicitly given folder that is wrong still raises."""
    if weights_dir is not None:
        return load_lpips(weights_dir, device), ""
    try:
        return load_lpips(None, device), ""
    except CheckpointError as exc:
        return None, str(exc)


def _main() -> None:  # pragma: no cover - convenience: python -m inpaint.metrics.lpips A.png B.png
    import sys

    import numpy as np
    from PIL import Image

    from inpaint.core.cli import run_cli
    from inpaint.core.errors import DataError

    def main(argv: list[str] | None) -> int:
        from inpaint.core.cli import OneLineParser

        parser = OneLineParser(prog="python -m inpaint.metrics.lpips", description="LPIPS-alex v0.1 between two images of one size")
        parser.add_argument("image_a")
        parser.add_argument("image_b")
        parser.add_argument("--lpips-weights", default=None, help="folder with the LPIPS weight files")
        args = parser.parse_args(argv)
        tensors = []
        for name in (args.image_a, args.image_b):
            try:
                arr = np.asarray(Image.open(name).convert("RGB"), dtype=np.float32)
            except OSError as exc:
                raise DataError(f"cannot read image {name} ({exc}): give a readable image file") from exc
            tensors.append(torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1.0)
        if tensors[0].shape != tensors[1].shape:
            raise DataError(f"{args.image_b} is {tuple(tensors[1].shape[-2:])} but {args.image_a} is {tuple(tensors[0].shape[-2:])}: give two images of one size")
        with torch.no_grad():
            print(f"{load_lpips(args.lpips_weights)(*tensors).item():.4f}")
        return 0

    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    _main()
