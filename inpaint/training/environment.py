"""Which device and numeric mode a run uses: device checks, backend flags, autocast dtype.

Kept apart from the loop so the GPU-only decisions (bf16 vs fp16, cuDNN autotuning, TF32) are
in one place and easy to audit on a CPU-only machine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from inpaint.core.config import TrainSection

log = logging.getLogger("facefill.train")


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """Deterministic kernels when asked (bit-exact resume tests), the fastest ones otherwise.

    On CUDA a few kernels this model needs (e.g. the backward of nearest upsampling) have no
    deterministic version; there we warn instead of failing, so ``--deterministic`` means
    "as deterministic as the GPU allows". On CPU it is strict, and single-threaded: with two
    intra-op threads, about one run in eight on a loaded 2-core box took a different rounding in
    its first step (1e-7 in D's weights, 2e-4 in G's after Adam's first, sign-like update), so
    bit-exact resume tests flaked; with one thread, none did in 24 tries.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def backend_flags() -> dict[str, Any]:
    return {"num_threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_deterministic": torch.backends.cudnn.deterministic}


def restore_backend_flags(flags: dict[str, Any]) -> None:
    torch.set_num_threads(flags["num_threads"])
    torch.use_deterministic_algorithms(flags["deterministic"], warn_only=flags["warn_only"])
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = flags["cudnn_deterministic"]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.precision``; None = plain fp32. Mixed precision is a CUDA
    feature here: CPU runs (tests, debugging) always use fp32."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bf16 support: training in fp16 with loss scaling instead")
        return torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


@dataclass(frozen=True)
class SpeedPaths:
    """The speed-only choices of a run: none changes what is learned, all pay off only on a GPU.
    One value decides them all, so a test can switch the GPU set on for a CPU run."""

    amp_dtype: torch.dtype | None  # autocast dtype; None = fp32
    channels_last: bool
    fused_adam: bool
    compile: bool


def speed_paths(train_cfg: TrainSection, device: torch.device) -> SpeedPaths:
    """``train.precision/channels_last/compile`` as this device can use them (CPU: plain fp32)."""
    cuda = device.type == "cuda"
    if train_cfg.compile and not cuda:
        log.info("train.compile is for CUDA runs: ignored on %s", device)
    return SpeedPaths(amp_dtype=autocast_dtype(train_cfg.precision, device),
                      channels_last=cuda and train_cfg.channels_last,
                      fused_adam=cuda, compile=cuda and train_cfg.compile)
