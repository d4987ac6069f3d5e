"""Model factory: configs name their networks (``model.generator``, ``model.discriminator``,
``model.dmfb``) and these registries turn the names into modules, so a new architecture is one
registry entry and a typo is a clear :class:`~inpaint.core.errors.ConfigError`, not a KeyError."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from torch import nn

from inpaint.core.config import ModelSection, complete_section
from inpaint.core.errors import ConfigError
from inpaint.models.discriminator import SNPatchGAN
from inpaint.models.dmfb import DMFB_VARIANTS, DenseMultiscaleFusionBlock
from inpaint.models.gated import GatedConv2d, GatedDeconv2d
from inpaint.models.generator import GatedUNet
from inpaint.models.prefill import ClassicalPrefill, with_prefill

__all__ = [
    "GENERATORS", "DISCRIMINATORS", "build_generator", "build_discriminator", "count_parameters",
    "GatedConv2d", "GatedDeconv2d", "DenseMultiscaleFusionBlock", "GatedUNet", "SNPatchGAN", "ClassicalPrefill",
]


def _gated_unet(cfg: Mapping[str, Any]) -> nn.Module:
    if cfg["dmfb"] not in DMFB_VARIANTS:
        raise ConfigError(f"unknown model.dmfb '{cfg['dmfb']}': use one of {', '.join(sorted(DMFB_VARIANTS))}")
    return GatedUNet(
        widths=tuple(cfg["widths"]), dmfb=cfg["dmfb"], dmfb_blocks=cfg["dmfb_blocks"],
        dmfb_inner=cfg["dmfb_inner"], batch_norm=cfg["batch_norm"],
    )


def _sn_patchgan(cfg: Mapping[str, Any]) -> nn.Module:
    return SNPatchGAN(widths=tuple(cfg["disc_widths"]))


GENERATORS: dict[str, Callable[[Mapping[str, Any]], nn.Module]] = {"gated_unet": _gated_unet}
DISCRIMINATORS: dict[str, Callable[[Mapping[str, Any]], nn.Module]] = {"sn_patchgan": _sn_patchgan}


def _complete(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's model defaults overlaid with ``model_cfg``; unknown keys and combinations the
    schema refuses (e.g. a residual without a fill) are a ConfigError."""
    cfg = complete_section("model", model_cfg)
    problem = ModelSection(**cfg).check()
    if problem:
        raise ConfigError(problem)
    return cfg


def _build(registry: Mapping[str, Callable[[Mapping[str, Any]], nn.Module]], key: str, cfg: Mapping[str, Any]) -> nn.Module:
    name = cfg[key]
    if name not in registry:
        raise ConfigError(f"unknown model.{key} '{name}': use one of {', '.join(sorted(registry))}")
    return registry[name](cfg)


def build_generator(model_cfg: Mapping[str, Any]) -> nn.Module:
    """The generator named by ``model_cfg["generator"]`` (the ``model`` section of a config),
    behind the classical fill of ``model.prefill``/``model.residual`` when they ask for one."""
    cfg = _complete(model_cfg)
    return with_prefill(_build(GENERATORS, "generator", cfg), cfg["prefill"], cfg["residual"])


def build_discriminator(model_cfg: Mapping[str, Any]) -> nn.Module:
    """The discriminator named by ``model_cfg["discriminator"]``."""
    return _build(DISCRIMINATORS, "discriminator", _complete(model_cfg))


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Parameter count as reported in logs and `python -m inpaint.models` (frozen ones excluded by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
