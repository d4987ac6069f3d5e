"""Metric functions against hand-computed values, LPIPS against the authors' published numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inpaint.metrics import image as metrics
from inpaint.core.errors import CheckpointError


def _image(seed: int, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=g) * 1.6 - 0.8  # in [-0.8, 0.8], room for offsets


def test_known_mse_gives_known_psnr_in_both_conventions() -> None:
    target = _image(0)
    output = target + 0.1  # error 0.1 everywhere in [-1, 1]
    ref = metrics.reference_metrics(output, target)
    assert torch.allclose(ref["l1"], torch.full((2,), 0.1), atol=1e-6)
    assert torch.allclose(ref["psnr"], torch.full((2,), 20.0), atol=1e-4)  # 10·log10(1/0.01)

    full_hole = torch.ones(2, 1, 32, 32)
    std = metrics.standard_metrics(output, target, full_hole)
    # In [0, 1] the error halves: 0.05, MSE 0.0025 → 26.0206 dB.
    assert torch.allclose(std["l1"], torch.full((2,), 0.05), atol=1e-6)
    assert torch.allclose(std["psnr"], torch.full((2,), 10 * math.log10(1 / 0.0025)), atol=1e-4)
    assert metrics.psnr_from_mse(torch.tensor([0.0025])).item() == pytest.approx(26.0206, abs=1e-4)
    assert metrics.psnr_from_mse(torch.tensor([0.0])).item() == pytest.approx(100.0)  # floored, finite


def test_standard_convention_scores_the_composite_not_the_raw_output() -> None:
    target = _image(1)
    output = target.clone()
    output[:, :, :, :16] += 0.2      # error only in the left half
    output[:, :, :16, 16:] -= 0.5    # and garbage outside the hole, which the composite discards
    hole = torch.zeros(2, 1, 32, 32)
    hole[:, :, :, :16] = 1.0          # hole = left half, ratio 0.5
    std = metrics.standard_metrics(output, target, hole)
    assert torch.allclose(std["hole_l1"], torch.full((2,), 0.1), atol=1e-6)   # 0.2 / 2 in [0, 1]
    assert torch.allclose(std["l1"], torch.full((2,), 0.05), atol=1e-6)       # hole L1 × ratio
    ref = metrics.reference_metrics(output, target)
    assert torch.allclose(ref["l1"], torch.full((2,), 0.5 * 0.2 + 0.25 * 0.5), atol=1e-6)


def test_identical_images_score_perfectly() -> None:
    x = _image(2)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 8:20] = 1
    std = metrics.standard_metrics(x, x, mask)
    assert torch.all(std["l1"] == 0) and torch.all(std["hole_l1"] == 0)
    assert torch.allclose(std["ssim"], torch.ones(2), atol=1e-6)
    assert torch.all(std["psnr"] == 100.0)  # the MSE floor keeps identical images finite
    assert torch.all(metrics.reference_metrics(x, x)["l1"] == 0)


def test_ssim_of_flat_images_is_the_luminance_term() -> None:
    a, b = 0.5, 0.25
    x = torch.full((1, 3, 16, 16), a)
    y = torch.full((1, 3, 16, 16), b)
    c1 = 0.01 ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # variances are 0, so the contrast term is 1
    assert metrics.ssim_per_image(x, y).item() == pytest.approx(expected, rel=1e-5)


def test_ssim_falls_with_noise_and_is_symmetric() -> None:
    x = (_image(3) + 1) / 2
    g = torch.Generator().manual_seed(9)
    light = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    heavy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    s_light, s_heavy = metrics.ssim_per_image(light, x), metrics.ssim_per_image(heavy, x)
    assert torch.all(s_heavy < s_light) and torch.all(s_light < 1)
    assert torch.allclose(metrics.ssim_per_image(x, heavy), s_heavy, atol=1e-6)


def test_ssim_window_is_a_normalised_gaussian_with_sigma_1_5() -> None:
    """The 1-D window SSIM convolves with (twice: rows, then columns)."""
    g = metrics.gaussian_kernel_1d()
    assert g.shape == (11,) and g.dtype == torch.float32
    assert g.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(g, g.flip(0))
    # Ratio of the centre to its neighbour: exp(1 / (2·1.5²)).
    assert (g[5] / g[6]).item() == pytest.approx(math.exp(1 / 4.5), rel=1e-5)
    # The separable window is the 2-D window of Wang et al.: a delta image blurs to it.
    delta = torch.zeros(1, 1, 21, 21)
    delta[..., 10, 10] = 1.0
    blurred = torch.nn.functional.conv2d(torch.nn.functional.conv2d(delta, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    assert torch.allclose(blurred[0, 0], torch.outer(g, g).flip(0, 1), atol=1e-7)


def _load_example(path: Path) -> torch.Tensor:
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1.0


def test_lpips_reproduces_the_published_example_values(data_root: Path, weights_root: Path) -> None:
    from inpaint.metrics.lpips import load_lpips

    lpips = load_lpips(weights_root)
    folder = data_root / "lpips_example"
    ref, p0, p1 = (_load_example(folder / f"{n}.png") for n in ("ex_ref", "ex_p0", "ex_p1"))
    with torch.no_grad():
        assert round(lpips(ref, p0).item(), 3) == 0.722
        assert round(lpips(ref, p1).item(), 3) == 0.138
        assert lpips(ref, ref).item() == pytest.approx(0.0, abs=1e-7)
        batch = lpips(torch.cat([ref, ref]), torch.cat([p0, p1]))
    assert batch.shape == (2,) and round(batch[1].item(), 3) == 0.138


def test_lpips_without_weights_is_unavailable_not_approximated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import inpaint.io.pretrained
    from inpaint.metrics.lpips import load_lpips, try_load_lpips

    monkeypatch.setattr(inpaint.io.pretrained, "search_dirs", lambda: [tmp_path])
    model, reason = try_load_lpips()
    assert model is None and "alexnet_imagenet_features.pth" in reason
    with pytest.raises(CheckpointError, match="lpips_alex|alexnet"):
        load_lpips(tmp_path)  # an explicit folder without the files is the user's error
    (tmp_path / "alexnet_imagenet_features.pth").write_bytes(b"not a torch file")
    (tmp_path / "lpips_alex_v0.1_lin.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read LPIPS weights"):
        load_lpips(tmp_path)


def _ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference: explicit 11×11 windows in float64 (Wang et al. 2004)."""
    coords = np.arange(11) - 5.0
    g = np.exp(-coords ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for c in range(x.shape[0]):
        wx = np.lib.stride_tricks.sliding_window_view(x[c], (11, 11))
        wy = np.lib.stride_tricks.sliding_window_view(y[c], (11, 11))
        mx, my = (wx * w).sum((-1, -2)), (wy * w).sum((-1, -2))
        vx = (wx * wx * w).sum((-1, -2)) - mx ** 2
        vy = (wy * wy * w).sum((-1, -2)) - my ** 2
        cov = (wx * wy * w).sum((-1, -2)) - mx * my
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_an_explicit_window_computation() -> None:
    x = (_image(4, 24) + 1) / 2
    g = torch.Generator().manual_seed(5)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ours = metrics.ssim_per_image(y, x)
    for i in range(2):
        assert ours[i].item() == pytest.approx(_ssim_numpy(y[i].double().numpy(), x[i].double().numpy()), abs=1e-5)
