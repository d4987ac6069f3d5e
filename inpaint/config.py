"""Loading, checking and saving run configurations.

A config is a nested dict of sections (``model``, ``data``, ``loss``, ``optim``, ``train``) plus
a top-level ``name``. Files only need to state what differs from :data:`DEFAULTS`; the resolved
dict always holds every key, so a run dir's saved ``config.yaml`` is complete and self-describing
even if the defaults change later. Unknown keys are errors rather than warnings because a typo
in a batch job's config would otherwise silently train the wrong model for days.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from inpaint.atomic import atomic_open
from inpaint.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

DEFAULTS: dict[str, Any] = {
    "name": "unnamed",
    "model": {
        "generator": "gated_unet",
        "dmfb": "modified",
        "widths": [64, 128, 256],
        "dmfb_blocks": 4,
        "dmfb_inner": 64,
        "batch_norm": True,
        "discriminator": "sn_patchgan",
        "disc_widths": [64, 128, 256, 256],
    },
    "data": {"size": 128, "mask_flip_p": 0.5, "workers": 4},
    "loss": {
        "global_l1": 1.0,
        "hole_l1": 1.0,
        "adversarial": 1.0,
        "perceptual": 0.0,
        "perceptual_weights": None,
        "perceptual_allow_random": False,
    },
    "optim": {"lr": 2.0e-4, "betas": [0.5, 0.999]},
    "train": {
        "batch_size": 4,
        "epochs": 90,
        "max_steps": None,
        "seed": 0,
        "precision": "bf16",
        "channels_last": True,
        "compile": False,
        "checkpoint_every_steps": 1000,
        "checkpoint_keep": 3,
        "log_every_steps": 50,
    },
}

PRECISIONS = ("bf16", "fp16", "fp32")


# --- value checks: each returns an error fragment ("must be …") or None ------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


def _pos_int(v: Any) -> str | None:
    return None if _is_int(v) and v > 0 else "must be a positive integer"


def _nonneg_int(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else "must be an integer >= 0"


def _opt_pos_int(v: Any) -> str | None:
    return None if v is None or (_is_int(v) and v > 0) else "must be a positive integer or null"


def _nonneg_num(v: Any) -> str | None:
    return None if _is_num(v) and v >= 0 else "must be a number >= 0"


def _pos_num(v: Any) -> str | None:
    return None if _is_num(v) and v > 0 else "must be a number > 0"


def _prob(v: Any) -> str | None:
    return None if _is_num(v) and 0 <= v <= 1 else "must be a number between 0 and 1"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a non-empty string"


def _opt_path(v: Any) -> str | None:
    return None if v is None or (isinstance(v, str) and v) else "must be a file path or null"


def _int_list(length: int | None) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, list) and all(_is_int(x) and x > 0 for x in v)
        if ok and (length is None and len(v) > 0 or len(v) == length):
            return None
        n = f"{length} " if length else ""
        return f"must be a list of {n}positive integers"
    return check


def _betas(v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) == 2 and all(_is_num(x) and 0 <= x < 1 for x in v)
    return None if ok else "must be a list of two numbers in [0, 1)"


def _choice(options: Sequence[str]) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {', '.join(options)}"
    return check


CHECKS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "model": {
        "generator": _str, "dmfb": _str, "widths": _int_list(3), "dmfb_blocks": _nonneg_int,
        "dmfb_inner": _pos_int, "batch_norm": _bool, "discriminator": _str,
        "disc_widths": _int_list(None),
    },
    "data": {"size": _pos_int, "mask_flip_p": _prob, "workers": _nonneg_int},
    "loss": {
        "global_l1": _nonneg_num, "hole_l1": _nonneg_num, "adversarial": _nonneg_num,
        "perceptual": _nonneg_num, "perceptual_weights": _opt_path, "perceptual_allow_random": _bool,
    },
    "optim": {"lr": _pos_num, "betas": _betas},
    "train": {
        "batch_size": _pos_int, "epochs": _pos_int, "max_steps": _opt_pos_int, "seed": _nonneg_int,
        "precision": _choice(PRECISIONS), "channels_last": _bool, "compile": _bool,
        "checkpoint_every_steps": _pos_int, "checkpoint_keep": _pos_int, "log_every_steps": _pos_int,
    },
}

LOSS_TERMS = ("global_l1", "hole_l1", "adversarial", "perceptual")


def packaged_configs() -> list[str]:
    """Names accepted in place of a path (``model1``, ``smoke``, …)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(path_or_name: str | os.PathLike) -> Path:
    """An existing file as given, else the packaged config of that name."""
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return path
    name = str(path_or_name)
    packaged = CONFIG_DIR / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    if os.sep not in name and packaged.is_file():
        return packaged
    raise ConfigError(
        f"config {path_or_name} not found: give a YAML file path or one of the packaged names "
        f"({', '.join(packaged_configs())})"
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config {path}{line} is not valid YAML: fix the syntax") from exc
    except OSError as exc:
        raise ConfigError(f"config {path} cannot be read ({exc.strerror}): check the path and permissions") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of sections (model, data, loss, optim, train)")
    return data


def _merge(base: dict[str, Any], update: Mapping[str, Any], source: str) -> None:
    """Overlay ``update`` on ``base`` in place, refusing anything :data:`DEFAULTS` does not know."""
    for key, value in update.items():
        if key == "name":
            base["name"] = value
            continue
        if key not in DEFAULTS:
            known = ", ".join(["name", *CHECKS])
            raise ConfigError(f"config {source}: unknown section '{key}': use one of {known}")
        if not isinstance(value, Mapping):
            raise ConfigError(f"config {source}: section '{key}' must be a mapping of keys to values")
        for sub, sub_value in value.items():
            if sub not in DEFAULTS[key]:
                known = ", ".join(DEFAULTS[key])
                raise ConfigError(f"config {source}: unknown key '{key}.{sub}': use one of {known}")
            base[key][sub] = _as_float_like(DEFAULTS[key][sub], copy.deepcopy(sub_value))


def _as_float_like(default: Any, value: Any) -> Any:
    """PyYAML reads ``1e-4`` (no dot) as a string; for keys that hold floats, read it as the
    number everyone means rather than failing on it."""
    if isinstance(default, list) and isinstance(value, list) and default and isinstance(default[0], float):
        return [_as_float_like(default[0], v) for v in value]
    if isinstance(default, float) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_override(text: str) -> dict[str, Any]:
    """``"train.max_steps=20"`` → ``{"train": {"max_steps": 20}}``; the value is read as YAML so
    numbers, booleans, ``null`` and lists (``[32, 64, 128]``) come out typed."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{text}' must look like section.key=value (e.g. train.max_steps=100)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': the value is not valid YAML") from exc
    if key == "name":
        return {"name": value}
    section, dot, sub = key.partition(".")
    if not dot or not sub or "." in sub:
        raise ConfigError(f"override '{text}' must name section.key (e.g. train.max_steps=100)")
    return {section: {sub: value}}


def validate_config(cfg: dict[str, Any], source: str = "<config>") -> dict[str, Any]:
    """Check every value's type and range; returns ``cfg`` so calls can be chained."""
    if not isinstance(cfg.get("name"), str) or not cfg["name"]:
        raise ConfigError(f"config {source}: 'name' must be a non-empty string")
    for section, checks in CHECKS.items():
        for key, check in checks.items():
            problem = check(cfg[section][key])
            if problem:
                raise ConfigError(f"config {source}: {section}.{key} = {cfg[section][key]!r} {problem}")
    if sum(cfg["loss"][t] for t in LOSS_TERMS) <= 0:
        raise ConfigError(f"config {source}: the loss weights ({', '.join(LOSS_TERMS)}) sum to 0: give at least one a positive weight")
    size = cfg["data"]["size"]
    if size % 16:
        raise ConfigError(f"config {source}: data.size = {size} must be a multiple of 16 (the U-Net halves it twice and the discriminator four times)")
    return cfg


def resolve_config(data: Mapping[str, Any], overrides: Sequence[str] | None = None, source: str = "<config>") -> dict[str, Any]:
    """Defaults + ``data`` + overrides, validated. Also for configs stored inside checkpoints."""
    cfg = copy.deepcopy(DEFAULTS)
    _merge(cfg, data, source)
    for text in overrides or ():
        _merge(cfg, parse_override(text), f"{source} (override '{text}')")
    return validate_config(cfg, source)


def load_config(path_or_name: str | os.PathLike, overrides: list[str] | None = None) -> dict[str, Any]:
    """The resolved config of a YAML file or packaged name, with ``section.key=value`` overrides."""
    path = config_path(path_or_name)
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    return resolve_config(data, overrides, str(path))


def save_config(cfg: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML atomically (temp name, flush, fsync, rename)."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(dict(cfg), f, sort_keys=False, default_flow_style=None)
    return path
