"""The gated-convolution U-Net generator of the reference models.

Layout at the default widths (w1, w2, w3) = (64, 128, 256), input = masked image + mask:

    enc1  gated k5            4 → 64,  H      ─────────────── skip 1
    enc2  gated s2           64 → 128, H/2    ─────────────── skip 2
    enc3  gated             128 → 128
    enc4  gated s2          128 → 256, H/4    ─────────────── skip 3
    mid   gated ×2, 4 DMFBs (256, inner 64), gated
    dec3  concat skip 3 → gated ×2 (256) → gated deconv (128, H/2) → gated (128)
    dec2  concat skip 2 → gated ×2 (128) → gated deconv (64, H)    → gated (64)
    dec1  concat skip 1 → gated ×2 (64)  → gated (32) → plain conv (3) → tanh

About 59.5 GFLOP per 128-px image forward for Model 2 (2 FLOPs per multiply-add).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from inpaint.models.dmfb import build_dmfb
from inpaint.models.gated import GatedConv2d, GatedDeconv2d


def _upsampling_stage(width: int, out: int, batch_norm: bool) -> nn.Sequential:
    """After a skip concat: two gated convs at ``width``, ×2 gated deconv to ``out``, one gated conv.

    The two decoder stages below the full-resolution one share this layout; the module order
    fixes the state-dict keys (``dec3.0`` … ``dec3.3``).
    """
    return nn.Sequential(
        GatedConv2d(2 * width, width, 3, batch_norm=batch_norm),
        GatedConv2d(width, width, 3, batch_norm=batch_norm),
        GatedDeconv2d(width, out, 3, batch_norm=batch_norm),
        GatedConv2d(out, out, 3, batch_norm=batch_norm),
    )

class GatedUNet(nn.Module):
    """``G(masked_image (B,3,H,W) in [-1,1], mask (B,1,H,W) 1=hole) -> (B,3,H,W) in [-1,1]``.

    H and W must be multiples of 4 (two stride-2 levels).
    """

    def __init__(
        self,
        widths: Sequence[int] = (64, 128, 256),
        dmfb: str = "modified",
        dmfb_blocks: int = 4,
        dmfb_inner: int = 64,
        batch_norm: bool = True,
        in_channels: int = 4,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        bn = batch_norm
        self.enc1 = GatedConv2d(in_channels, w1, 5, batch_norm=bn)
        self.enc2 = GatedConv2d(w1, w2, 3, stride=2, batch_norm=bn)
        self.enc3 = GatedConv2d(w2, w2, 3, batch_norm=bn)
        self.enc4 = GatedConv2d(w2, w3, 3, stride=2, batch_norm=bn)
        self.bottleneck = nn.Sequential(
            GatedConv2d(w3, w3, 3, batch_norm=bn),
            GatedConv2d(w3, w3, 3, batch_norm=bn),
            *(build_dmfb(dmfb, w3, dmfb_inner, batch_norm=bn) for _ in range(dmfb_blocks)),
            GatedConv2d(w3, w3, 3, batch_norm=bn),
        )
        self.dec3 = _upsampling_stage(w3, w2, bn)
        self.dec2 = _upsampling_stage(w2, w1, bn)
        self.dec1 = nn.Sequential(
            GatedConv2d(2 * w1, w1, 3, batch_norm=bn),
            GatedConv2d(w1, w1, 3, batch_norm=bn),
            GatedConv2d(w1, max(w1 // 2, 1), 3, batch_norm=bn),
        )
        self.to_rgb = nn.Conv2d(max(w1 // 2, 1), out_channels, 3, padding=1)

    def forward(self, masked_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if masked_image.shape[-2] % 4 or masked_image.shape[-1] % 4:
            raise ValueError(f"image size {tuple(masked_image.shape[-2:])} must be a multiple of 4")
        x = torch.cat((masked_image, mask.to(masked_image.dtype)), dim=1)
        skip1 = self.enc1(x)
        skip2 = self.enc2(skip1)
        skip3 = self.enc4(self.enc3(skip2))
        y = self.bottleneck(skip3)
        y = self.dec3(torch.cat((y, skip3), dim=1))
        y = self.dec2(torch.cat((y, skip2), dim=1))
        y = self.dec1(torch.cat((y, skip1), dim=1))
        return torch.tanh(self.to_rgb(y))
