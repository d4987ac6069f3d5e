"""Dense multiscale fusion blocks (DMFB): a wide receptive field at the bottleneck without
losing detail, by fusing dilated branches step by step instead of side by side.

Two variants, both named in configs as ``model.dmfb``:

* ``original`` (Hui et al., "Image Fine-grained Inpainting"): each branch is ADDED to the fused
  result of the previous ones before its merge conv;
* ``modified`` (the thesis's contribution): each branch is CONCATENATED with it instead, so the
  merge conv sees both inputs separately (twice the input channels, more parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from inpaint.models.gated import GatedConv2d

DILATIONS = (1, 2, 4, 8)


class DenseMultiscaleFusionBlock(nn.Module):
    """Reduce → four dilated gated branches → stepwise merges → 1×1 fuse → residual add.

    ``merge`` selects how branch ``i`` joins the fused result ``k_{i-1}``: ``"add"`` (original)
    or ``"concat"`` (modified).
    """

    def __init__(self, channels: int, inner: int = 64, merge: str = "concat", batch_norm: bool = True) -> None:
        super().__init__()
        if merge not in ("add", "concat"):
            raise ValueError(f"merge must be 'add' or 'concat', not {merge!r}")
        self.merge = merge
        self.reduce = GatedConv2d(channels, inner, 3, batch_norm=batch_norm)
        self.branches = nn.ModuleList(
            GatedConv2d(inner, inner, 3, dilation=d, batch_norm=batch_norm) for d in DILATIONS
        )
        merge_in = 2 * inner if merge == "concat" else inner
        self.merges = nn.ModuleList(
            GatedConv2d(merge_in, inner, 3, batch_norm=batch_norm) for _ in DILATIONS[1:]
        )
        self.fuse = GatedConv2d(inner * len(DILATIONS), channels, 1, batch_norm=batch_norm)

    def _join(self, fused: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        return torch.cat((fused, branch), dim=1) if self.merge == "concat" else fused + branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        branches = [branch(reduced) for branch in self.branches]
        fused = [branches[0]]
        for merge_conv, branch in zip(self.merges, branches[1:]):
            fused.append(merge_conv(self._join(fused[-1], branch)))
        return x + self.fuse(torch.cat(fused, dim=1))


DMFB_VARIANTS: dict[str, str] = {"original": "add", "modified": "concat"}


def build_dmfb(variant: str, channels: int, inner: int, batch_norm: bool = True) -> DenseMultiscaleFusionBlock:
    """A block of the named variant (``original`` or ``modified``)."""
    return DenseMultiscaleFusionBlock(channels, inner, merge=DMFB_VARIANTS[variant], batch_norm=batch_norm)
