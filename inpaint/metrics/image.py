"""Per-image inpainting metrics in the two conventions the project reports side by side.

The published face-inpainting tables (the *reference* convention) score the raw generator output
against the ground truth with both in [-1, 1]; modern benchmarks (LaMa, MAT: the *standard*
convention) score the composite (generated pixels in the hole, original pixels outside) in [0, 1].
The same model gets very different numbers under the two, so every function here says which range
it expects and every value is per image (shape ``(B,)``), to be averaged by the caller.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: PSNR of identical images is infinite; the MSE is floored here so that averages and JSON stay
#: finite. 1e-10 caps PSNR at 100 dB, far above anything a real model reaches.
MSE_FLOOR = 1e-10


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] (the generator's range) to [0, 1] (the standard convention's range)."""
    return (x + 1.0) / 2.0


def composite(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Generated pixels inside the hole (mask 1), ground truth outside: what a user would see.

    Computed in ``output``'s dtype, so a bf16 generator output composites without upcasting."""
    mask = mask.to(output.dtype)
    return output * mask + target.to(output.dtype) * (1.0 - mask)


def l1_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all pixels and channels of each image."""
    return (pred - target).abs().flatten(1).mean(1)


def hole_l1_per_image(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the hole pixels only (all channels); 0 for an image without hole."""
    err = ((pred - target).abs() * mask).flatten(1).sum(1)
    count = (mask.expand_as(pred)).flatten(1).sum(1)
    return err / count.clamp_min(1.0)


def mse_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).flatten(1).mean(1)


def psnr_from_mse(mse: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """10·log10(peak² / MSE), with the MSE floored at :data:`MSE_FLOOR`."""
    return 10.0 * torch.log10(peak * peak / mse.clamp_min(MSE_FLOOR))


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """10·log10(1 / MSE) in whatever range the inputs are in.

    The reference convention applies this to [-1, 1] data (so its PSNR is about 6 dB lower than the
    same error measured in [0, 1]); the standard convention applies it to [0, 1] data.
    """
    return psnr_from_mse(mse_per_image(pred, target), peak=1.0)


def gaussian_kernel_1d(size: int = 11, sigma: float = 1.5, device: torch.device | str = "cpu") -> torch.Tensor:
    """Normalised 1-D Gaussian (float32, shape (size,)): the SSIM window of Wang et al. (2004) is
    its outer product with itself, applied here as two 1-D passes."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(coords ** 2) / (2.0 * sigma ** 2))
    return (g / g.sum()).to(dtype=torch.float32, device=device)


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
                   window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM of Wang et al. (2004): 11×11 Gaussian window σ 1.5, K1 0.01, K2 0.03, valid region,
    computed per channel and averaged over channels and positions (as skimage/pytorch-msssim do).

    The Gaussian is applied as two 1-D passes over the five local moments at once (the 2-D
    window is separable), which is ~10× cheaper than one 11×11 convolution per moment.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"ssim needs two (B,C,H,W) tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if min(pred.shape[-2:]) < window_size:
        raise ValueError(f"ssim needs images of at least {window_size}×{window_size} px, got {tuple(pred.shape[-2:])}")
    x, y = pred.float(), target.float()
    b, c, h, w = x.shape
    g = gaussian_kernel_1d(window_size, sigma, x.device)
    planes = 5 * c
    moments = torch.stack([x, y, x * x, y * y, x * y], dim=1).reshape(b, planes, h, w)
    # Depthwise (grouped) convolution: one plane per group is much faster in oneDNN than
    # folding the planes into the batch with a single-channel kernel.
    row = g.view(1, 1, 1, -1).expand(planes, 1, 1, window_size).contiguous()
    col = g.view(1, 1, -1, 1).expand(planes, 1, window_size, 1).contiguous()
    blurred = F.conv2d(F.conv2d(moments, row, groups=planes), col, groups=planes)
    mu_x, mu_y, e_xx, e_yy, e_xy = blurred.reshape(b, 5, c, *blurred.shape[-2:]).unbind(1)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    sigma_xx = e_xx - mu_x ** 2
    sigma_yy = e_yy - mu_y ** 2
    sigma_xy = e_xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sigma_xx + sigma_yy + c2))
    return ssim_map.flatten(1).mean(1)


def reference_metrics(output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reference convention: raw output vs ground truth, both in [-1, 1], whole image."""
    return {"l1": l1_per_image(output, target), "psnr": psnr_per_image(output, target)}


def standard_metrics(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Standard convention: composite vs ground truth in [0, 1] (inputs given in [-1, 1]).

    LPIPS and identity distance are computed elsewhere (they need weights); this covers the
    closed-form metrics.
    """
    comp = to_unit_range(composite(output, target, mask)).clamp(0.0, 1.0)
    gt = to_unit_range(target).clamp(0.0, 1.0)
    return {
        "l1": l1_per_image(comp, gt),
        "hole_l1": hole_l1_per_image(comp, gt, mask),
        "psnr": psnr_per_image(comp, gt),
        "ssim": ssim_per_image(comp, gt),
    }

