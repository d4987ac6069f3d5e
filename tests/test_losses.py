"""Generator and discriminator losses against their definitions, on real faces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from inpaint.core.config import load_config
from inpaint.core.errors import ConfigError
from inpaint.losses.objective import GeneratorLoss, discriminator_loss, hole_l1


def faces(data_root: Path, n: int = 2, size: int = 64) -> torch.Tensor:
    files = sorted((data_root / "faces" / "utkface").glob("*.jpg"))[:n]
    arrays = [np.array(Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC)) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_hole_l1_is_the_mean_over_hole_pixels_of_all_channels() -> None:
    torch.manual_seed(0)
    output, target = torch.randn(3, 3, 16, 16), torch.randn(3, 3, 16, 16)
    mask = torch.zeros(3, 1, 16, 16)
    mask[0, :, 2:6, 3:9] = 1
    mask[2, :, 10:, :] = 1
    in_hole = mask.expand_as(output).bool()
    expected = (output - target).abs()[in_hole].mean()
    torch.testing.assert_close(hole_l1(output, target, mask), expected)
    # changing known pixels does not move it
    torch.testing.assert_close(hole_l1(output + 5 * (1 - mask), target, mask), expected)


def test_hole_l1_of_a_mask_without_holes_is_zero_not_nan() -> None:
    value = hole_l1(torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.zeros(2, 1, 8, 8))
    assert value.item() == 0.0


@pytest.mark.parametrize("name", ["model1", "model2"])
def test_total_is_the_weighted_mean_of_the_terms(name: str) -> None:
    """A 2x2 image worked by hand: target 0, output 0.5 except 1.0 in the one hole pixel."""
    target = torch.zeros(1, 3, 2, 2)
    output = torch.full((1, 3, 2, 2), 0.5)
    output[..., 0, 0] = 1.0
    mask = torch.zeros(1, 1, 2, 2)
    mask[..., 0, 0] = 1
    logits = torch.tensor([[[[0.0, 2.0]]]])
    global_l1 = (3 * 1.0 + 9 * 0.5) / 12                               # every value
    hole_l1 = 1.0                                                      # the hole pixel's 3 values
    adversarial = (math.log(1 + math.exp(-0.0)) + math.log(1 + math.exp(-2.0))) / 2  # BCE against "real"
    losses = GeneratorLoss(load_config(name).loss)(output, target, mask, logits)
    assert set(losses) == {"total", "global_l1", "hole_l1", "adversarial"}
    for term, value in (("global_l1", global_l1), ("hole_l1", hole_l1), ("adversarial", adversarial)):
        assert losses[term].item() == pytest.approx(value, rel=1e-6)
    assert losses["total"].item() == pytest.approx((global_l1 + hole_l1 + adversarial) / 3, rel=1e-6)


def test_model3_adds_perceptual_and_divides_by_3_05(data_root: Path, weights_root: Path) -> None:
    target = faces(data_root)
    output = torch.roll(target, shifts=3, dims=-1)
    mask = torch.ones(2, 1, 64, 64)
    cfg = load_config("model3", [f"loss.perceptual_weights={weights_root / 'vgg16_imagenet_features_relu3_3.pth'}"])
    losses = GeneratorLoss(cfg.loss)(output, target, mask, torch.zeros(2, 1, 3, 3))
    assert losses["perceptual"] > 0
    torch.testing.assert_close(losses["adversarial"], torch.tensor(math.log(2)))
    expected = (losses["global_l1"] + losses["hole_l1"] + losses["adversarial"] + 0.05 * losses["perceptual"]) / 3.05
    torch.testing.assert_close(losses["total"], expected)


def test_adversarial_weight_needs_logits() -> None:
    loss_fn = GeneratorLoss(load_config("model2").loss)
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="fake_logits"):
        loss_fn(x, x, torch.ones(1, 1, 8, 8), None)
    l1_only = GeneratorLoss({"adversarial": 0.0})
    out = l1_only(x + 0.5, x, torch.ones(1, 1, 8, 8))
    torch.testing.assert_close(out["total"], torch.tensor(0.5))
    assert "adversarial" not in out


def test_all_zero_weights_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sum to 0"):
        GeneratorLoss({"global_l1": 0, "hole_l1": 0, "adversarial": 0, "perceptual": 0})


def test_discriminator_loss_is_bce_real_ones_fake_zeros() -> None:
    real, fake = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, -3.0]])
    expected = 0.5 * (-F.logsigmoid(real).mean() - F.logsigmoid(-fake).mean())
    torch.testing.assert_close(discriminator_loss(real, fake), expected)
    confident = discriminator_loss(torch.full((2, 1, 3, 3), 20.0), torch.full((2, 1, 3, 3), -20.0))
    fooled = discriminator_loss(torch.full((2, 1, 3, 3), -20.0), torch.full((2, 1, 3, 3), 20.0))
    assert confident < 1e-6 and fooled > 19
    bf16 = discriminator_loss(real.bfloat16(), fake.bfloat16())
    assert bf16.dtype == torch.float32


def test_unknown_loss_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown key 'loss.hole_L1'"):
        GeneratorLoss({"hole_L1": 1.0})
