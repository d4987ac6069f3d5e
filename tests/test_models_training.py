"""The models learn: a few optimisation steps on real faces and real hole masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inpaint.core.config import load_config
from inpaint.losses.objective import GeneratorLoss, discriminator_loss
from inpaint.models import build_discriminator, build_generator

MASK_FILES = ("02500.png", "04500.png", "06500.png", "03500.png")  # hole ratios ~0.1–0.4


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """Tiny 64-px convs gain little from intra-op threads, and on a busy CPU the OpenMP barriers
    of two threads made this module 10x slower (21 s vs 190 s measured); one thread is steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def real_batch(data_root: Path, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Four UTKFace crops in [-1, 1] and four NVIDIA irregular masks (1 = hole) at ``size`` px."""
    faces = sorted((data_root / "faces" / "utkface").glob("*.jpg"))[:4]
    images = [np.array(Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC)) for f in faces]
    masks = [np.array(Image.open(data_root / "masks" / "irregular_nvidia_test" / m).convert("L")
                      .resize((size, size), Image.NEAREST)) > 127 for m in MASK_FILES]
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    mask = torch.from_numpy(np.stack(masks)).float().unsqueeze(1)
    assert 0.05 < mask.mean() < 0.5
    return image, mask


def test_forty_steps_on_one_batch_halve_hole_l1(data_root: Path) -> None:
    """A full G+D step (both losses, both backward passes, both Adam steps) must overfit a fixed
    batch: a broken gate, skip or loss would not."""
    torch.manual_seed(0)
    image, mask = real_batch(data_root)
    cfg = load_config("smoke", ["optim.lr=1.0e-3"])
    generator, discriminator = build_generator(cfg.model), build_discriminator(cfg.model)
    loss_fn = GeneratorLoss(cfg.loss)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas)
    masked = image * (1 - mask)
    hole_l1 = []
    for _ in range(40):
        fake = generator(masked, mask)
        d_loss = discriminator_loss(discriminator(image, mask), discriminator(fake.detach(), mask))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        losses = loss_fn(fake, image, mask, discriminator(fake, mask))
        opt_g.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt_g.step()
        assert torch.isfinite(losses["total"]) and torch.isfinite(d_loss)
        hole_l1.append(losses["hole_l1"].item())
    assert np.mean(hole_l1[-5:]) <= 0.5 * hole_l1[0], hole_l1


def test_bf16_autocast_forward_and_backward_on_cpu(data_root: Path) -> None:
    image, mask = real_batch(data_root)
    cfg = load_config("smoke")
    generator, discriminator = build_generator(cfg.model), build_discriminator(cfg.model)
    loss_fn = GeneratorLoss(cfg.loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = generator(image * (1 - mask), mask)
        losses = loss_fn(fake, image, mask, discriminator(fake, mask))
    assert fake.dtype == torch.bfloat16 and losses["total"].dtype == torch.float32
    losses["total"].backward()
    grads = [p.grad for p in generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
