"""The networks a training run updates, built whole: generator, discriminator, their wrapped
(DDP / compiled) training views, optimizers, AMP scaler and losses, and how they go into and come
out of a checkpoint.

The training views differ from the bare modules only in wrapping; checkpoints always hold the
bare modules' state dicts, so a run may resume with a different process count or compile setting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from inpaint.core.config import Config, OptimSection
from inpaint.io.checkpoint import bare_module
from inpaint.core.errors import CheckpointError
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

    def state(self) -> dict[str, Any]:
        """The checkpoint entries of the networks (bare modules' state dicts)."""
        return {
            "generator": bare_module(self.generator).state_dict(),
            "discriminator": bare_module(self.discriminator).state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
        }

    def load_state(self, state: Mapping[str, Any], path: Path, optim_cfg: OptimSection) -> None:
        """Weights, optimizer moments and AMP scale from a checkpoint; the configured learning
        rate and betas win over the saved ones (``--force`` may have changed them)."""
        try:
            self.generator.load_state_dict(state["generator"])
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {path} does not fit the configured model ({str(exc).splitlines()[0]}): "
                "resume with the config it was trained with, or use a new --run-dir"
            ) from exc
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = optim_cfg.lr
                group["betas"] = tuple(optim_cfg.betas)
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])

    def set_lr(self, lr: float) -> None:
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr

    def weights_finite(self) -> bool:
        params = [p for m in (self.generator, self.discriminator) for p in m.parameters()]
        return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())
