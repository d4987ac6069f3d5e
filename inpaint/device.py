"""Where a command runs its models: ``--device`` turned into a ``torch.device``, once for every command.

Training, evaluation and inference take the same ``--device`` values (auto, cpu, cuda, cuda:N), so
they share one answer to "auto" and one error for a GPU that is not there.
"""

from __future__ import annotations

import torch

from inpaint.core.errors import ConfigError

SUPPORTED_TYPES = ("cpu", "cuda")


def resolve_device(requested: str | None = "auto") -> torch.device:
    """The device ``--device requested`` names; ``"auto"`` or None: the GPU when one is visible, else the CPU."""
    if requested is None or requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ConfigError(f"--device {requested} is not a device name: use cpu or cuda") from exc
    if device.type not in SUPPORTED_TYPES:
        raise ConfigError(f"--device {requested} is not supported: use cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested} was given but no CUDA GPU is visible: use --device cpu "
                          "or run on a GPU node")
    return device
