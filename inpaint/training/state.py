"""The training state: what a checkpoint holds, how it is dumped and restored, and whether a run
may resume from it.

Everything the next step depends on is here (weights, optimizer moments, AMP scale, every RNG's
state, the position in the epoch), so a stopped-and-resumed run retraces an uninterrupted one.
Stored as plain lists, dicts and tensors (no numpy objects, no classes: the config is its plain
dict) so checkpoints stay loadable with ``torch.load(weights_only=True)``. The files themselves
(atomic writes, keep-last-K, falling back past damaged ones) are :mod:`inpaint.io.checkpoint`'s.

A checkpoint is only meaningful with the config and shards that produced it: settings that
change how fast, how visibly or how long a run trains may differ (the config schema marks them
``resume_free``); anything that changes the model, the loss, the optimisation or the data stream
may not, unless the user says ``--force``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from inpaint.core.config import Config, OptimSection, resolve_config, resume_free_keys
from inpaint.core.errors import CheckpointError, ConfigError, DataError
from inpaint.models.wrappers import bare_module

if TYPE_CHECKING:
    from inpaint.training.networks import TrainingModels

CHECKPOINT_FORMAT = 1
#: The entries every checkpoint has (newer ones add ``data``, ``timing``, ``world_size``,
#: ``cpu_seconds``, which older ones may lack).
REQUIRED_KEYS = ("format", "config", "generator", "discriminator", "opt_g", "opt_d", "scaler",
                 "epoch", "step", "epoch_step", "rng", "time")
#: Fingerprint keys that say where the shards were, not what they hold: a moved folder may resume.
LOCATION_KEYS = frozenset({"root"})


@dataclass
class Position:
    """Where in training we are: ``step`` optimizer steps done, ``epoch`` = index of the epoch in
    progress (= epochs completed), ``epoch_step`` = batches of it done."""

    epoch: int = 0
    step: int = 0
    epoch_step: int = 0


def missing_keys(state: Mapping[str, Any]) -> list[str]:
    """The :data:`REQUIRED_KEYS` ``state`` lacks."""
    return [k for k in REQUIRED_KEYS if k not in state]


# --- random number generators ------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    """One seed for python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and (when present) every CUDA device's generator state."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`; CUDA states are restored only if the device count
    matches (resuming a GPU run on CPU for inspection must not fail)."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


# --- the networks --------------------------------------------------------------------------------

def networks_state(models: "TrainingModels") -> dict[str, Any]:
    """The checkpoint entries of the networks: the bare modules' state dicts (so a run may resume
    with another process count or compile setting), both optimizers, the AMP scale."""
    return {
        "generator": bare_module(models.generator).state_dict(),
        "discriminator": bare_module(models.discriminator).state_dict(),
        "opt_g": models.opt_g.state_dict(),
        "opt_d": models.opt_d.state_dict(),
        "scaler": models.scaler.state_dict() if models.scaler.is_enabled() else {},
    }


def load_networks(models: "TrainingModels", state: Mapping[str, Any], path: Path, optim: OptimSection) -> None:
    """Weights, optimizer moments and AMP scale from a checkpoint; the configured learning rate
    and betas win over the saved ones (``--force`` may have changed them)."""
    try:
        models.generator.load_state_dict(state["generator"])
        models.discriminator.load_state_dict(state["discriminator"])
        models.opt_g.load_state_dict(state["opt_g"])
        models.opt_d.load_state_dict(state["opt_d"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {path} does not fit the configured model ({str(exc).splitlines()[0]}): "
            "resume with the config it was trained with, or use a new --run-dir"
        ) from exc
    for opt in (models.opt_g, models.opt_d):
        for group in opt.param_groups:
            group["lr"] = optim.lr
            group["betas"] = tuple(optim.betas)
    if models.scaler.is_enabled() and state["scaler"]:
        models.scaler.load_state_dict(state["scaler"])


# --- dump and restore ----------------------------------------------------------------------------

def dump_state(cfg: Config, models: "TrainingModels", pos: Position, data: Mapping[str, Any],
               timing: Mapping[str, float], world_size: int, cpu_seconds: float | None) -> dict[str, Any]:
    """The checkpoint dict of a run at ``pos`` (the RNG states are captured now)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": cfg.to_dict(),
        **networks_state(models),
        "epoch": pos.epoch,
        "step": pos.step,
        "epoch_step": pos.epoch_step,
        "rng": capture_rng_state(),
        "time": time.time(),
        "data": dict(data),
        "timing": dict(timing),
        "world_size": world_size,
        "cpu_seconds": cpu_seconds,
    }


@dataclass
class Restored:
    """What a checkpoint gives a resumed run besides its networks (loaded in place)."""

    position: Position
    timing: dict[str, float]        # the step and checkpoint durations it measured
    config_changes: list[str]       # differences accepted under --force
    data_changes: list[str]
    saved_world_size: int


def restore_state(state: Mapping[str, Any], path: Path, cfg: Config, models: "TrainingModels",
                  data: Mapping[str, Any], data_root: Path, steps_per_epoch: int, force: bool) -> Restored:
    """Check the checkpoint against the config and shards (:func:`check_config`,
    :func:`check_data`), then load its networks and RNG states; its position in the epoch
    (the next epoch when ``--force`` resumed on a smaller shard set)."""
    try:  # fill in keys added to the defaults since the checkpoint was written
        saved_cfg: Config | Mapping[str, Any] = resolve_config(state["config"], source=str(path))
    except ConfigError:
        saved_cfg = state["config"]
    config_changes = check_config(saved_cfg, cfg, path, force)
    data_changes = check_data(state.get("data"), data, data_root, path, force)
    load_networks(models, state, path, cfg.optim)
    restore_rng_state(state["rng"])
    pos = Position(epoch=int(state["epoch"]), step=int(state["step"]), epoch_step=int(state["epoch_step"]))
    if pos.epoch_step >= steps_per_epoch:  # shard set changed under --force
        pos = Position(epoch=pos.epoch + 1, step=pos.step, epoch_step=0)
    return Restored(pos, dict(state.get("timing") or {}), config_changes, data_changes, int(state.get("world_size", 1)))


# --- may this run resume from that checkpoint? ---------------------------------------------------

WORLD_SIZE_OVERRIDE = "--allow-world-size-change"


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def world_size_change(saved: int, current: int, path: Path, allow: bool) -> str | None:
    """None when ``current`` processes may resume a checkpoint of ``saved`` as if uninterrupted;
    else the note a run continued under ``--allow-world-size-change`` carries, or, without it, a
    ConfigError. Each rank takes every world_size-th item of the epoch's order and keeps its own
    BatchNorm statistics, so another world size cannot retrace the run: it is a choice, not a default."""
    if saved == current:
        return None
    if not allow:
        raise ConfigError(f"{path}: checkpoint written by {_processes(saved)}, this run has {current}: the batch "
                          f"order would differ from an uninterrupted run; resume with the same nodes x processes per "
                          f"node ({saved} in all), or pass {WORLD_SIZE_OVERRIDE} to continue with a different batch order")
    return (f"{path.name} written by {_processes(saved)}, continued with {current} ({WORLD_SIZE_OVERRIDE}: "
            "a different batch order than an uninterrupted run)")


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _plain(cfg: Config | Mapping[str, Any]) -> Mapping[str, Any]:
    return cfg.to_dict() if isinstance(cfg, Config) else cfg


def config_differences(saved: Config | Mapping[str, Any], current: Config | Mapping[str, Any]) -> list[str]:
    """``"optim.lr: 0.0002 → 0.001"`` for every key that matters and differs (the schema marks
    the keys that may change between the jobs of one run: ``resume_free``)."""
    a, b = flatten(_plain(saved)), flatten(_plain(current))
    free = resume_free_keys()
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in free:
            continue
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            diffs.append(f"{key}: {a.get(key, '<unset>')!r} → {b.get(key, '<unset>')!r}")
    return diffs


def check_config(saved: Config | Mapping[str, Any], current: Config | Mapping[str, Any], checkpoint: Path,
                 force: bool) -> list[str]:
    """Refuse (ConfigError) on differences unless ``force``; returns them for logging."""
    diffs = config_differences(saved, current)
    if diffs and not force:
        raise ConfigError(
            f"checkpoint {checkpoint} was trained with a different config ({'; '.join(diffs)}): "
            "use the same config, a new --run-dir, or --force to continue with the new settings"
        )
    return diffs


def data_fingerprint(index: Mapping[str, Any], num_faces: int, num_masks: int,
                     root: Path | None = None) -> dict[str, Any]:
    """What identifies the training stream of a shard set: size, split sizes and, with ``root``,
    the digests of its training face and mask lists (``inpaint.io.provenance``) and where it was."""
    fingerprint: dict[str, Any] = {"size": int(index.get("size", 0)), "train_faces": int(num_faces),
                                   "train_masks": int(num_masks)}
    if root is not None:
        from inpaint.io.provenance import TrainingSet

        fingerprint.update(TrainingSet.of(root).digests())
        fingerprint["root"] = str(Path(root).resolve())
    return fingerprint


def check_data(saved: Mapping[str, Any] | None, current: Mapping[str, Any], data_root: Path,
               checkpoint: Path, force: bool) -> list[str]:
    """Refuse to resume on a different shard set (the epoch order would change) unless ``force``."""
    if not saved:
        return []
    # Keys an older checkpoint does not have cannot be compared (it predates them), and a moved folder is fine.
    compared = sorted(k for k in current if k in saved and k not in LOCATION_KEYS)
    diffs = [f"{k}: {saved.get(k)!r} → {current.get(k)!r}" for k in compared if saved.get(k) != current.get(k)]
    if diffs and not force:
        raise DataError(
            f"shards in {data_root} differ from the ones checkpoint {checkpoint} was trained on ({'; '.join(diffs)}): "
            "point --data at the original shards, or --force to continue on these"
        )
    return diffs
