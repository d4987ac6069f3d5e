"""The networks a training run updates, built whole: generator, discriminator, their wrapped
(DDP / compiled) training views, optimizers, AMP scaler and losses. How they go into and come out
of a checkpoint is :mod:`inpaint.training.state`'s.

The training views differ from the bare modules only in wrapping; checkpoints always hold the
bare modules' state dicts, so a run may resume with a different process count or compile setting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from inpaint.core.config import Config
from inpaint.training.distributed import DistInfo
from inpaint.training.environment import speed_paths

log = logging.getLogger("facefill.train")


@dataclass
class TrainingModels:
    generator: nn.Module
    discriminator: nn.Module
    g_train: nn.Module                 # what the step calls: the generator, maybe DDP/compiled
    d_train: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None      # autocast dtype, None = fp32
    channels_last: bool
    generator_loss: nn.Module
    discriminator_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    @classmethod
    def build(cls, cfg: Config, device: torch.device, dist: DistInfo) -> "TrainingModels":
        """Fresh networks from the config (initialised from the current torch RNG state)."""
        from inpaint.losses.objective import GeneratorLoss, discriminator_loss
        from inpaint.models import build_discriminator, build_generator, count_parameters

        generator = build_generator(cfg.model).to(device)
        discriminator = build_discriminator(cfg.model).to(device)
        speed = speed_paths(cfg.train, device)
        if speed.channels_last:
            generator.to(memory_format=torch.channels_last)
            discriminator.to(memory_format=torch.channels_last)
        betas, lr = tuple(cfg.optim.betas), cfg.optim.lr
        opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas, fused=speed.fused_adam)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas, fused=speed.fused_adam)
        scaler = torch.amp.GradScaler("cuda", enabled=speed.amp_dtype == torch.float16)
        g_train: nn.Module = generator
        d_train: nn.Module = discriminator
        if dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            g_train, d_train = DDP(g_train, device_ids=ids), DDP(d_train, device_ids=ids)
        if speed.compile:
            g_train = torch.compile(g_train)
        log.info("models: generator %s (%.2f M params), discriminator %s (%.2f M params); device %s, precision %s%s",
                 cfg.model.generator.name, count_parameters(generator) / 1e6, cfg.model.discriminator.name,
                 count_parameters(discriminator) / 1e6, device,
                 {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[speed.amp_dtype],
                 f", {dist.world_size} processes" if dist.enabled else "")
        return cls(generator, discriminator, g_train, d_train, opt_g, opt_d, scaler, speed.amp_dtype,
                   speed.channels_last, GeneratorLoss(cfg.loss).to(device), discriminator_loss)

    @property
    def uses_adversarial(self) -> bool:
        return "adversarial" in self.generator_loss.weights

    def set_lr(self, lr: float) -> None:
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr

    def weights_finite(self) -> bool:
        params = [p for m in (self.generator, self.discriminator) for p in m.parameters()]
        return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())
