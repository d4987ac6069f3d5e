"""Is it safe to continue a run dir with this config and these shards?

A checkpoint is only meaningful with the config that produced it. Settings that only change
how fast or how visibly we train (or when we stop) may differ; anything that changes the model,
the loss, the optimisation or the data stream may not, unless the user says ``--force``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from inpaint.core.config import Config, resume_free_keys
from inpaint.core.errors import ConfigError, DataError

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


def check_config(saved: Config | Mapping[str, Any], current: Config | Mapping[str, Any], checkpoint: Path, force: bool) -> list[str]:
    """Refuse (ConfigError) on differences unless ``force``; returns them for logging."""
    diffs = config_differences(saved, current)
    if diffs and not force:
        raise ConfigError(
            f"checkpoint {checkpoint} was trained with a different config ({'; '.join(diffs)}): "
            "use the same config, a new --run-dir, or --force to continue with the new settings"
        )
    return diffs


#: Fingerprint keys that say where the shards were, not what they hold: a moved folder may resume.
LOCATION_KEYS = frozenset({"root"})


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
