"""Perceptual loss: equal to an independent torchvision computation on real faces, real VGG16
weights from the shared folder, both accepted file layouts, and the refusal to fall back to
random weights silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models import vgg16

import inpaint.io.pretrained
from inpaint.core.errors import CheckpointError
from inpaint.losses.objective import GeneratorLoss
from inpaint.losses.perceptual import FEATURES_FILE, TORCHVISION_FILE, PerceptualLoss


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
    monkeypatch.setattr(inpaint.io.pretrained, "search_dirs", lambda: [tmp_path / "empty", hub])
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


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def torchvision_features(weights_root: Path) -> torch.nn.Module:
    """torchvision's own ``vgg16().features[:16]`` with the shared weights (built once: the
    full VGG16 it is cut from takes seconds to initialise)."""
    torch.manual_seed(0)
    features = vgg16(weights=None).features[:16].eval()
    features.load_state_dict(torch.load(weights_root / FEATURES_FILE, map_location="cpu", weights_only=True))
    return features


def _independent_perceptual(output: torch.Tensor, target: torch.Tensor, features: torch.nn.Module) -> torch.Tensor:
    """The loss as the reference defines it, computed with nothing from ``inpaint.losses.perceptual``:
    images in [-1, 1] taken to [0, 1] and ImageNet-normalised, mean L1 at relu1_2, relu2_2,
    relu3_3 of torchvision's VGG16, summed."""
    taps = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15}
    for name, i in taps.items():  # each tap is the ReLU right after conv{n}_2 / conv3_3
        assert isinstance(features[i], torch.nn.ReLU) and isinstance(features[i - 1], torch.nn.Conv2d), name
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def maps(images: torch.Tensor) -> list[torch.Tensor]:
        x, out = ((images + 1) / 2 - mean) / std, []
        for i, layer in enumerate(features):
            x = layer(x)
            if i in taps.values():
                out.append(x)
        return out

    with torch.no_grad():
        return sum(F.l1_loss(a, b) for a, b in zip(maps(output), maps(target)))


def test_matches_an_independent_torchvision_vgg16_computation(data_root: Path, weights_root: Path,
                                                              torchvision_features: torch.nn.Module) -> None:
    path = weights_root / FEATURES_FILE
    loss = PerceptualLoss(_cfg(perceptual_weights=str(path)))
    torch.set_num_threads(1)  # steady on a busy 2-core box; restored by the fixture below
    target = faces(data_root, n=3)
    for output in (torch.roll(target, shifts=3, dims=-1), target * 0.8 + 0.1):
        with torch.no_grad():
            ours = loss(output, target)
        expected = _independent_perceptual(output, target, torchvision_features)
        assert expected > 0.01
        assert abs(ours.item() - expected.item()) < 1e-5, (ours.item(), expected.item())
    generator_loss = GeneratorLoss({"global_l1": 0.0, "hole_l1": 0.0, "adversarial": 0.0, "perceptual": 0.05,
                                    "perceptual_weights": str(path)})
    with torch.no_grad():
        terms = generator_loss(target.flip(0), target, torch.ones(3, 1, 64, 64))
    assert abs(terms["perceptual"].item() - _independent_perceptual(target.flip(0), target, torchvision_features).item()) < 1e-5
    assert terms["total"].item() == pytest.approx(terms["perceptual"].item(), abs=1e-6)  # 0.05·P / 0.05


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
