"""The bare network inside the wrappers training puts around it (DDP, ``torch.compile``): state
dicts are saved and loaded bare, so a run may resume, and weights load, under any wrapping."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


def strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State-dict keys as the bare module has them: without DDP's ``module.`` and
    ``torch.compile``'s ``_orig_mod.`` prefixes, so weights load into any wrapping."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in ("module.", "_orig_mod."):
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def bare_module(module: nn.Module) -> nn.Module:
    """The model inside DDP and/or torch.compile wrappers (whose state dict keys are clean)."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module
