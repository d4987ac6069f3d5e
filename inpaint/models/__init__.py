"""Model factory: a config's ``model.generator`` / ``model.discriminator`` name an architecture
and hold its typed parameters (:mod:`inpaint.core.architectures`, torch-free); these registries
turn each name's parameters into a module, so a new architecture is its parameter record there
and one builder here, and a typo is a clear :class:`~inpaint.core.errors.ConfigError`."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from torch import nn

from inpaint.core.architectures import ArchitectureParams, GatedUNetParams, SNPatchGANParams
from inpaint.core.config import ModelSection, as_section
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


def _gated_unet(params: GatedUNetParams) -> nn.Module:
    if params.dmfb not in DMFB_VARIANTS:
        raise ConfigError(f"unknown model.generator.dmfb '{params.dmfb}': use one of {', '.join(sorted(DMFB_VARIANTS))}")
    return GatedUNet(widths=tuple(params.widths), dmfb=params.dmfb, dmfb_blocks=params.dmfb_blocks,
                     dmfb_inner=params.dmfb_inner, batch_norm=params.batch_norm)


def _sn_patchgan(params: SNPatchGANParams) -> nn.Module:
    return SNPatchGAN(widths=tuple(params.widths))


Builder = Callable[[Any], nn.Module]
#: Architecture name → builder from its parameter record (the names of inpaint.core.architectures).
GENERATORS: dict[str, Builder] = {"gated_unet": _gated_unet}
DISCRIMINATORS: dict[str, Builder] = {"sn_patchgan": _sn_patchgan}


def _build(registry: Mapping[str, Builder], role: str, params: ArchitectureParams) -> nn.Module:
    if params.name not in registry:
        raise ConfigError(f"unknown model.{role}.name '{params.name}': this facefill builds {', '.join(sorted(registry))}")
    return registry[params.name](params)


def build_generator(model: ModelSection | Mapping[str, Any]) -> nn.Module:
    """The generator ``model.generator`` names, behind the classical fill of its
    ``prefill``/``residual`` when they ask for one."""
    params = as_section("model", model).generator
    return with_prefill(_build(GENERATORS, "generator", params), params.prefill, params.residual)


def build_discriminator(model: ModelSection | Mapping[str, Any]) -> nn.Module:
    """The discriminator ``model.discriminator`` names."""
    return _build(DISCRIMINATORS, "discriminator", as_section("model", model).discriminator)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Parameter count as reported in logs and `python -m inpaint.models` (frozen ones excluded by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
