"""Generators that start from a classical fill (OpenCV's or the biharmonic one) of the holes, then

* ``residual: false`` — the network sees the filled image instead of zeroed holes (same network,
  same losses), so it refines a plausible guess rather than inventing every hole pixel;
* ``residual: true`` — the output is the fill plus the network's correction, whose last layer
  starts at zero: at step 0 the model *is* the classical fill, so training starts from the
  baseline's quality instead of having to learn to reproduce it first.

The fill lives inside the model so training, evaluation, weights export/loading and
``inpaint.predict`` get it without a line of their own (they all call ``G(masked_image, mask)``).
The fill is computed without gradients (on the CPU); it is an input, not a layer.
"""

from __future__ import annotations

import torch
from torch import nn

from inpaint.classical import METHODS, classical_fill, require
from inpaint.core.architectures import NO_PREFILL
from inpaint.core.errors import ConfigError


class ClassicalPrefill(nn.Module):
    """``G(masked_image, mask)`` = ``net(fill, mask)``, or ``clamp(fill + net(fill, mask))`` when
    ``residual``, with ``fill`` = the classical ``method`` fill of the holes (whatever the caller left in
    the hole pixels is never used). ``net`` must end in a ``to_rgb`` conv under a tanh (the gated U-Net)."""

    def __init__(self, net: nn.Module, method: str, residual: bool) -> None:
        super().__init__()
        self.net = net
        self.method = method
        self.residual = residual
        if residual:  # tanh(0) = 0: a zero correction until training moves it
            nn.init.zeros_(net.to_rgb.weight)
            nn.init.zeros_(net.to_rgb.bias)

    def forward(self, masked_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        fill = classical_fill(masked_image, mask, self.method)  # never uses the hole pixels
        if masked_image.is_contiguous(memory_format=torch.channels_last):  # keep the trainer's layout
            fill = fill.contiguous(memory_format=torch.channels_last)
        out = self.net(fill, mask)
        if self.residual:
            return (fill + out).clamp(-1.0, 1.0)
        return out

    def extra_repr(self) -> str:
        return f"method={self.method!r}, residual={self.residual}"


def with_prefill(net: nn.Module, prefill: str, residual: bool) -> nn.Module:
    """``net`` itself for ``prefill: none`` (state-dict keys unchanged), else wrapped; a
    ConfigError for an unknown method or a missing library (naming the ``[baselines]`` extra),
    when the model is built rather than at its first batch."""
    if prefill == NO_PREFILL:  # (a residual without a fill is refused by the config schema)
        return net
    if prefill not in METHODS:
        raise ConfigError(f"unknown model.generator.prefill '{prefill}': use one of {', '.join((NO_PREFILL, *METHODS))}")
    try:
        require(prefill)
    except ConfigError as exc:
        raise ConfigError(f"model.generator.prefill = {prefill}: {exc}") from None
    return ClassicalPrefill(net, prefill, residual)
