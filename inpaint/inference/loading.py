"""A generator opened for inference, with what is known about how long it was trained.

A smoke model (the quick start's 300 steps) proves the plumbing and nothing else: its holes come
back as coloured noise, and a first-time user who repairs a photo with it concludes the toolkit
does not work. So whoever repairs photos learns how much the model trained, and is warned when it
is a smoke model (:func:`smoke_reason`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from inpaint.core.config import Config
from inpaint.core.contract import checkpoint_step
from inpaint.inference.inpainter import MODEL_LAYOUT

#: Below this many training images (steps × batch × processes) a model is a smoke model.
SMOKE_IMAGES = 1000
SMOKE_CONFIG = "smoke"


@dataclass
class InferenceModel:
    """An eval-mode generator in the inference memory layout, its resolved config, and provenance."""

    module: nn.Module
    config: Config
    path: Path                      # the checkpoint or weights file it came from
    images_trained: int | None      # None when neither a card nor a checkpoint name says

    @property
    def size(self) -> int:
        return self.config.data.size


def images_trained(path: Path, config: Config) -> int | None:
    """Training images behind a weights file (its card) or a checkpoint (its step × batch size;
    the process count is not in the name, so a multi-GPU run counts as one process: a lower bound)."""
    from inpaint.io.weights import WeightsCard, weights_sidecar

    batch = config.train.batch_size
    card_path = weights_sidecar(path)
    if card_path.is_file():
        card = WeightsCard.read(card_path)
        if card.images_seen is not None:
            return int(card.images_seen)
        if card.step is not None:
            return int(card.step) * batch * int(card.world_size or 1)
        return None
    step = checkpoint_step(path)
    return None if step is None else step * batch


def open_model(source: str | os.PathLike, device: str | torch.device = "cpu") -> InferenceModel:
    """A run dir (its newest loadable checkpoint), a checkpoint or a shipped weights file, ready to
    inpaint; errors are :class:`~inpaint.core.errors.CheckpointError` / ConfigError lines naming the fix."""
    from inpaint.io.weights import open_generator

    loaded = open_generator(source, device)
    module = loaded.model.to(memory_format=MODEL_LAYOUT)
    return InferenceModel(module, loaded.config, Path(loaded.path), images_trained(Path(loaded.path), loaded.config))


def smoke_reason(model: InferenceModel) -> str | None:
    """Why ``model`` is a smoke model ("config smoke, trained on 1,200 images"), or None."""
    smoke_config = model.config.name == SMOKE_CONFIG
    few_images = model.images_trained is not None and model.images_trained < SMOKE_IMAGES
    if not (smoke_config or few_images):
        return None
    why = [f"config {SMOKE_CONFIG}"] if smoke_config else []
    if model.images_trained is not None:
        why.append(f"trained on {model.images_trained:,} images")
    return ", ".join(why)


def smoke_warning(model: InferenceModel, source: str | os.PathLike) -> str | None:
    """The one-line warning for a smoke model, or None."""
    why = smoke_reason(model)
    if why is None:
        return None
    return (f"{source} is a smoke model ({why}): it shows that the plumbing works, not what inpainting "
            "can do (its holes come back as coloured noise); leave out --weights/--run-dir for the shipped "
            "model, or train longer")
