"""One optimizer step of the GAN: the trainer's, and the one ``benchmarks/bench_train.py`` times.

One step = one discriminator update on (real, detached fake) followed by one generator update
against the just-updated discriminator, with the AMP grad scaler (a no-op unless fp16).
"""

from __future__ import annotations

import contextlib

import torch

from inpaint.models.wrappers import bare_module
from inpaint.training.networks import TrainingModels


def autocast(models: TrainingModels, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast of the models' precision on ``device`` (nothing for fp32)."""
    if models.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=models.amp_dtype)


def train_step(models: TrainingModels, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """One D update then one G update on a batch already on the device (and in its memory
    layout); returns the detached losses (still on the device): ``g_total``, the generator's
    terms, ``d_loss``."""
    m = models
    masked = image * (1 - mask)
    with autocast(m, image.device):
        fake = m.g_train(masked, mask)
        # Real and fake in one discriminator pass: one DDP forward per backward, half the launches.
        logits = m.d_train(torch.cat((image, fake.detach())), torch.cat((mask, mask)))
        real_logits, fake_logits = logits.chunk(2)
        d_loss = m.discriminator_loss(real_logits, fake_logits)
    m.opt_d.zero_grad(set_to_none=True)
    m.scaler.scale(d_loss).backward()
    m.scaler.step(m.opt_d)

    # The generator step goes through the bare discriminator with frozen weights: no wasted
    # D gradients, and no DDP reducer waiting for gradients that never come.
    d_bare = bare_module(m.discriminator)
    d_bare.requires_grad_(False)
    try:
        with autocast(m, image.device):
            adv_logits = d_bare(fake, mask) if m.uses_adversarial else None
            losses = m.generator_loss(fake, image, mask, adv_logits)
        m.opt_g.zero_grad(set_to_none=True)
        m.scaler.scale(losses["total"]).backward()
        m.scaler.step(m.opt_g)
        m.scaler.update()
    finally:
        d_bare.requires_grad_(True)
    out = {f"g_{k}" if k == "total" else k: v.detach() for k, v in losses.items()}
    out["d_loss"] = d_loss.detach()
    return out
