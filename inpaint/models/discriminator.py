"""SN-PatchGAN discriminator: one real/fake logit per overlapping patch, so the generator is
judged on local texture everywhere rather than on one global verdict; spectral normalisation
keeps it Lipschitz-bounded and the GAN stable without gradient penalties."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class SNPatchGAN(nn.Module):
    """``D(image (B,3,H,W), mask (B,1,H,W)) -> logits (B,1,H/16-1,W/16-1)`` with four widths.

    Stride-2 spectral-norm convs k4 (LeakyReLU 0.2) per width, then a stride-1 spectral-norm
    conv k4 to one channel. Logits, not probabilities: pair with BCE-with-logits.
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 256), in_channels: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for width in widths:
            layers += [spectral_norm(nn.Conv2d(prev, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            prev = width
        layers.append(spectral_norm(nn.Conv2d(prev, 1, 4, stride=1, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((image, mask.to(image.dtype)), dim=1))
