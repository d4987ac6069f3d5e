"""Perceptual loss: real VGG16 weights from the shared folder, both accepted file layouts, and
the refusal to fall back to random weights silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inpaint.pretrained
from inpaint.errors import CheckpointError
from inpaint.losses import GeneratorLoss
from inpaint.perceptual import FEATURES_FILE, TORCHVISION_FILE, PerceptualLoss


def faces(data_root: Path, n: int = 2, size: int = 64) -> torch.Tensor:
    files = sorted((data_root / "faces" / "utkface").glob("*.jpg"))[:n]
    arrays = [np.array(Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC)) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _cfg(**kw: object) -> dict:
    return {"perceptual": 0.05, "perceptual_weights": None, "perceptual_allow_random": False, **kw}


@pytest.fixture
def no_default_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Search only an empty folder and a fake torch hub cache (returned)."""
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setattr(inpaint.pretrained, "search_dirs", lambda: [tmp_path / "empty", hub])
    return hub


def test_real_vgg_is_zero_for_identical_images_and_positive_otherwise(data_root: Path, weights_root: Path) -> None:
    path = weights_root / FEATURES_FILE
    loss = PerceptualLoss(_cfg(perceptual_weights=str(path)))
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(loss.features.layers[0].weight, state["0.weight"]) and not loss.features.random
    images = faces(data_root, n=2)
    assert loss(images, images).item() == 0.0
    shifted = torch.roll(images, shifts=2, dims=-1)
    swapped = images.flip(0)
    assert 0 < loss(shifted, images) < loss(swapped, images)  # a 2-px shift is closer than another face


def test_vgg_stays_frozen_and_out_of_the_generator(weights_root: Path) -> None:
    loss_fn = GeneratorLoss(_cfg(perceptual_weights=str(weights_root / FEATURES_FILE)))
    loss_fn.train()
    vgg = loss_fn.perceptual.features
    assert not vgg.training and not any(p.requires_grad for p in loss_fn.parameters())
    output = torch.zeros(1, 3, 32, 32, requires_grad=True)
    loss_fn(output, torch.rand(1, 3, 32, 32) * 2 - 1, torch.ones(1, 1, 32, 32), torch.zeros(1, 1, 1, 1))["total"].backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_default_search_finds_the_shared_file(weights_root: Path) -> None:
    loss = PerceptualLoss(_cfg())
    state = torch.load(weights_root / FEATURES_FILE, map_location="cpu", weights_only=True)
    assert torch.equal(loss.features.layers[14].bias, state["14.bias"])


def test_torchvision_full_vgg16_in_the_torch_cache_is_accepted(weights_root: Path, no_default_weights: Path) -> None:
    features = torch.load(weights_root / FEATURES_FILE, map_location="cpu", weights_only=True)
    full = {f"features.{k}": v for k, v in features.items()}
    full["features.17.weight"] = torch.zeros(512, 256, 3, 3)  # conv4_1: beyond relu3_3, ignored
    full["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(full, no_default_weights / TORCHVISION_FILE)
    loss = PerceptualLoss(_cfg())
    assert torch.equal(loss.features.layers[12].weight, features["12.weight"])


def test_missing_weights_without_permission_is_an_error_naming_the_file(no_default_weights: Path) -> None:
    with pytest.raises(CheckpointError, match=f"{FEATURES_FILE}.*not found.*{TORCHVISION_FILE}"):
        PerceptualLoss(_cfg())


def test_random_weights_only_when_allowed_and_loudly(no_default_weights: Path) -> None:
    with pytest.warns(UserWarning, match="RANDOM VGG16"):
        loss = PerceptualLoss(_cfg(perceptual_allow_random=True))
    assert loss.features.random


def test_an_explicit_missing_file_is_an_error_even_if_random_is_allowed(tmp_path: Path) -> None:
    missing = tmp_path / "vgg.pth"
    with pytest.raises(CheckpointError, match=str(missing)):
        PerceptualLoss(_cfg(perceptual_weights=str(missing), perceptual_allow_random=True))


def test_a_file_with_the_wrong_layers_is_an_error(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pth"
    torch.save({"0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(CheckpointError, match="do not fit VGG16"):
        PerceptualLoss(_cfg(perceptual_weights=str(wrong)))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        PerceptualLoss(_cfg(perceptual_weights=str(garbage)))
