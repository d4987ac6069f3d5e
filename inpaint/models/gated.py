"""Gated convolutions: every output pixel learns how much of its feature to let through.

Free-form holes make a plain convolution treat hole pixels (zeros) as real content; a learned
soft gate per pixel and channel (Yu et al., "Free-Form Image Inpainting with Gated Convolution")
lets the network down-weight them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedConv2d(nn.Module):
    """``act(feature(x)) * sigmoid(gating(x))``, then batch norm (switchable).

    The feature and gating convolutions have the same shape and are stored as ONE convolution
    with twice the output channels (first half = feature, second half = gating): mathematically
    the same as two convolutions, but one kernel launch and one big GEMM instead of two small ones,
    which matters on a GPU. :attr:`feature_weight`, :attr:`gating_weight` and :attr:`gating_bias` expose the halves.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        batch_norm: bool = True,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv = nn.Conv2d(
            in_channels, 2 * out_channels, kernel_size, stride=stride,
            padding=dilation * (kernel_size // 2), dilation=dilation,
        )
        self.activation = activation if activation is not None else nn.ReLU()
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()

    @property
    def feature_weight(self) -> torch.Tensor:
        return self.conv.weight[: self.out_channels]

    @property
    def gating_weight(self) -> torch.Tensor:
        return self.conv.weight[self.out_channels:]

    @property
    def gating_bias(self) -> torch.Tensor:
        return self.conv.bias[self.out_channels:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature, gating = self.conv(x).chunk(2, dim=1)
        return self.norm(self.activation(feature) * torch.sigmoid(gating))


class GatedDeconv2d(nn.Module):
    """×2 nearest-neighbour upsampling then a gated conv: no checkerboard artefacts, unlike a
    transposed convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv = GatedConv2d(in_channels, out_channels, kernel_size, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
