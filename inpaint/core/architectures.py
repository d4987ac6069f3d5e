"""The catalogue of network architectures a config may name, each with its typed parameters.

``model.generator: {name: gated_unet, widths: [...], ...}``: the name picks the parameter record
registered here, which checks the rest. The modules themselves are built in :mod:`inpaint.models`
(torch) from these records; this catalogue stays torch-free so that the job layer can check a
config at submit time. A new architecture is a parameter record registered here with
:func:`generator` / :func:`discriminator` and its builder in ``inpaint.models``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from inpaint.core.records import (
    Record,
    boolean,
    clip,
    key,
    non_empty_str,
    nonneg_int,
    positive_int,
    positive_int_list,
    read_record,
    record_dict,
)

#: ``prefill`` of a generator that gets the zeroed holes, as the reference does.
NO_PREFILL = "none"
NAME_KEY = "name"

P = TypeVar("P", bound="ArchitectureParams")


class ArchitectureParams(Record):
    """An architecture's parameters; ``name`` is the catalogue name it is registered under."""

    name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {NAME_KEY: self.name, **record_dict(self)}


@dataclass(frozen=True)
class GeneratorParams(ArchitectureParams):
    """What every generator takes: the classical fill in front of it (names checked by the model
    factory, which knows the fills; here only that they are names)."""

    prefill: str = key(NO_PREFILL, non_empty_str)  # none | navier-stokes | telea | biharmonic: classical fill of the holes first
    residual: bool = key(False, boolean)  # output = classical fill + learned correction (zero at init)

    def check(self) -> str | None:
        if self.residual and self.prefill == NO_PREFILL:
            return (
                "model.generator.residual = true adds a correction to a classical fill, but model.generator.prefill "
                "is none: set model.generator.prefill: navier-stokes (or telea)"
            )
        return None


@dataclass(frozen=True)
class DiscriminatorParams(ArchitectureParams):
    """What every discriminator takes (nothing yet)."""


GENERATORS: dict[str, type[GeneratorParams]] = {}
DISCRIMINATORS: dict[str, type[DiscriminatorParams]] = {}


def _register(catalogue: dict[str, Any], name: str) -> Callable[[type[P]], type[P]]:
    def register(cls: type[P]) -> type[P]:
        cls.name = name
        catalogue[name] = cls
        return cls

    return register


def generator(name: str) -> Callable[[type[P]], type[P]]:
    """Class decorator: ``cls`` is the parameter record of generator ``name``."""
    return _register(GENERATORS, name)


def discriminator(name: str) -> Callable[[type[P]], type[P]]:
    """Class decorator: ``cls`` is the parameter record of discriminator ``name``."""
    return _register(DISCRIMINATORS, name)


@generator("gated_unet")
@dataclass(frozen=True)
class GatedUNetParams(GeneratorParams):
    """The reference gated-convolution U-Net with dense multiscale fusion blocks (the ``dmfb``
    variant is checked by the model factory)."""

    widths: tuple[int, ...] = key([64, 128, 256], positive_int_list(3))
    dmfb: str = key("modified", non_empty_str)
    dmfb_blocks: int = key(4, nonneg_int)
    dmfb_inner: int = key(64, positive_int)
    batch_norm: bool = key(True, boolean)


@discriminator("sn_patchgan")
@dataclass(frozen=True)
class SNPatchGANParams(DiscriminatorParams):
    """The spectral-norm PatchGAN of the reference."""

    widths: tuple[int, ...] = key([64, 128, 256, 256], positive_int_list(None))


def read_architecture(
    catalogue: Mapping[str, type[P]], default: str, value: Any, source: str, path: str, error: type[Exception]
) -> P:
    """The parameter record of ``{name: ..., <params>}`` (name defaulting to ``default``)."""
    if not isinstance(value, Mapping):
        raise error(
            f"{source}: {path} must be a mapping with a '{NAME_KEY}' and that architecture's parameters "
            f"(e.g. {NAME_KEY}: {default})"
        )
    name = value.get(NAME_KEY, default)
    if name not in catalogue:
        raise error(f"{source}: unknown {path}.{NAME_KEY} '{clip(str(name), 60)}': use one of {', '.join(sorted(catalogue))}")
    params = {k: v for k, v in value.items() if k != NAME_KEY}
    return read_record(catalogue[name], params, source, f"{path}.", error)
