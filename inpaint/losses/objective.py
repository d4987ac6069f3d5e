"""Training losses of the reference models.

Generator: ``Σ wᵢ·Lᵢ / Σ wᵢ`` over global L1, hole L1, adversarial BCE (against all-ones patch
targets) and, for Model 3, a VGG16 perceptual term — dividing by the weight sum keeps the loss
scale of Models 1–3 comparable (Model 3 divides by 3.05). Discriminator: BCE, real → 1, fake → 0.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from inpaint.core.config import LOSS_TERMS, LossSection, as_section
from inpaint.core.errors import ConfigError


def hole_l1(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over hole pixels (mask 1) and all channels; 0 for a batch without holes."""
    mask = mask.to(output.dtype)
    abs_err = (output - target).abs() * mask
    n_hole_values = mask.sum() * (output.shape[1] // mask.shape[1])
    return abs_err.sum() / n_hole_values.clamp_min(1.0)


def adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: BCE of the discriminator's logits against 'real'."""
    return F.binary_cross_entropy_with_logits(fake_logits.float(), torch.ones_like(fake_logits, dtype=torch.float32))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Mean of the BCE of real patches against 1 and fake patches against 0."""
    real = F.binary_cross_entropy_with_logits(real_logits.float(), torch.ones_like(real_logits, dtype=torch.float32))
    fake = F.binary_cross_entropy_with_logits(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32))
    return 0.5 * (real + fake)


class GeneratorLoss(nn.Module):
    """``forward(output, target, mask, fake_logits) -> {"total", "global_l1", "hole_l1",
    "adversarial", ["perceptual"]}`` (scalar tensors; only ``total`` is meant for backward).

    Terms with weight 0 are not computed (``fake_logits`` may then be ``None``); the VGG16 of the
    perceptual term is built only when its weight is positive, frozen, and lives here rather than
    in the generator so it is neither saved with nor optimised alongside it.
    """

    def __init__(self, loss_cfg: LossSection | Mapping[str, Any]) -> None:
        super().__init__()
        cfg = as_section("loss", loss_cfg)
        self.weights = {term: float(getattr(cfg, term)) for term in LOSS_TERMS if float(getattr(cfg, term)) > 0}
        if not self.weights:
            raise ConfigError(f"loss weights ({', '.join(LOSS_TERMS)}) are all 0: give at least one a positive weight")
        self.weight_sum = sum(self.weights.values())
        self.perceptual = None
        if "perceptual" in self.weights:
            from inpaint.losses.perceptual import PerceptualLoss  # torchvision only when needed
            self.perceptual = PerceptualLoss(cfg)

    def forward(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        fake_logits: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        output, target = output.float(), target.float()  # losses in fp32 even under autocast
        terms: dict[str, torch.Tensor] = {
            "global_l1": F.l1_loss(output, target),
            "hole_l1": hole_l1(output, target, mask),
        }
        if "adversarial" in self.weights:
            if fake_logits is None:
                raise ValueError("fake_logits are required when the adversarial weight is positive")
            terms["adversarial"] = adversarial_loss(fake_logits)
        elif fake_logits is not None:
            terms["adversarial"] = adversarial_loss(fake_logits).detach()
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(output, target)
        total = sum(w * terms[t] for t, w in self.weights.items()) / self.weight_sum
        return {"total": total, **terms}
