"""VGG16 perceptual loss (relu1_2, relu2_2, relu3_3), frozen, from local weights only.

Grid nodes cannot download, and a perceptual loss on random VGG features trains a different
model than the one reported, so a missing weights file is an error naming the file to provide;
random weights need the explicit ``loss.perceptual_allow_random: true``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from inpaint.core.config import LossSection, as_section
from inpaint.core.errors import CheckpointError
from inpaint.io.pretrained import find_pretrained

FEATURES_FILE = "vgg16_imagenet_features_relu3_3.pth"  # features[:16] of torchvision's VGG16
TORCHVISION_FILE = "vgg16-397923af.pth"                 # torchvision's full VGG16 (torch hub cache)
N_LAYERS = 16                                           # conv1_1 … relu3_3
VGG16_CFG_UP_TO_RELU3_3 = 9                             # 64, 64, M, 128, 128, M, 256, 256, 256
TAPS = (3, 8, 15)                                       # relu1_2, relu2_2, relu3_3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _features_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ``features[:16]`` state dict from either weights layout (our cut or torchvision's full
    model with ``features.N.…`` keys)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a usable weights file"
        raise CheckpointError(f"VGG16 weights {path} cannot be read ({exc.__class__.__name__}): replace it with {FEATURES_FILE} from ../shared/weights") from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(f"VGG16 weights {path} hold no state dict: replace it with {FEATURES_FILE}")
    if any(k.startswith("features.") for k in state):  # torchvision's full model: keep features[:16]
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        state = {k: v for k, v in state.items() if k.split(".")[0].isdigit() and int(k.split(".")[0]) < N_LAYERS}
    return dict(state)


def locate_vgg_weights(explicit: str | None) -> Path:
    """``explicit`` if set; else our ``features[:16]`` file, else torchvision's full VGG16, in the
    folders of :func:`inpaint.io.pretrained.search_dirs`."""
    if explicit:
        return find_pretrained(FEATURES_FILE, explicit, purpose="VGG16 for the perceptual loss")
    try:
        return find_pretrained(FEATURES_FILE, purpose="VGG16 for the perceptual loss")
    except CheckpointError as first:
        try:
            return find_pretrained(TORCHVISION_FILE)
        except CheckpointError:
            raise CheckpointError(
                f"{first} (torchvision's {TORCHVISION_FILE} is also accepted); or set loss.perceptual_weights to the file"
            ) from None


class VGG16Features(nn.Module):
    """Frozen VGG16 ``features[:16]``; ``forward`` returns the relu1_2, relu2_2, relu3_3 maps of
    images in [-1, 1]. Always in eval mode and never trainable, whatever its parent does."""

    def __init__(self, weights: str | Path | None = None, allow_random: bool = False) -> None:
        super().__init__()
        # torchvision's own VGG16 ("D") layer list up to conv3_3 + ReLU, without building the
        # 138 M-parameter classifier only to throw it away
        self.layers = make_layers(cfgs["D"][:VGG16_CFG_UP_TO_RELU3_3])
        assert len(self.layers) == N_LAYERS
        if weights is not None:
            state = _features_state_dict(Path(weights))
            try:
                self.layers.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else ""
                raise CheckpointError(f"VGG16 weights {weights} do not fit VGG16 features[:16] ({first_line}): use {FEATURES_FILE} from ../shared/weights") from exc
        elif not allow_random:
            raise CheckpointError(f"no VGG16 weights given: provide {FEATURES_FILE} or set loss.perceptual_allow_random: true")
        self.random = weights is None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "VGG16Features":
        return super().train(False)  # dropout-free, but keep the promise explicit

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1) / 2 - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        taps = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in TAPS:
                taps.append(x)
        return taps


def build_vgg_features(loss_cfg: LossSection | Mapping[str, Any]) -> VGG16Features:
    """The frozen feature extractor for a ``loss`` config section."""
    loss = as_section("loss", loss_cfg)
    explicit = loss.perceptual_weights
    try:
        path = locate_vgg_weights(explicit)
    except CheckpointError:
        if explicit or not loss.perceptual_allow_random:
            raise  # a named file that is missing is a mistake, never a reason to go random
        warnings.warn("perceptual loss uses RANDOM VGG16 weights (loss.perceptual_allow_random: true); results are not comparable", stacklevel=2)
        return VGG16Features(None, allow_random=True)
    return VGG16Features(path)


class PerceptualLoss(nn.Module):
    """Mean L1 distance between VGG16 relu1_2, relu2_2 and relu3_3 maps, summed over the three."""

    def __init__(self, loss_cfg: LossSection | Mapping[str, Any]) -> None:
        super().__init__()
        self.features = build_vgg_features(loss_cfg)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_maps = self.features(target)
        return sum(F.l1_loss(o, t) for o, t in zip(self.features(output), target_maps))
