"""Loading, checking and saving run configurations.

A config is a nested dict of sections (``model``, ``data``, ``loss``, ``optim``, ``train``) plus
a top-level ``name``. One typed schema below (a dataclass per section) holds every key's default
and its check together, so the two cannot drift apart. A config file states only what differs:
from the schema's defaults, or from a ``base:`` config it names (``base: model2``, a path relative
to the file or a packaged name; chains allowed), merged with :func:`inpaint.core.merge.deep_merge`.
The resolved dict always holds every key, so a run dir's saved ``config.yaml`` is complete and
self-describing even if the defaults or a base change later, and resume compares resolved dicts.
Unknown keys are errors rather than warnings because a typo in a batch job's config would
otherwise silently train the wrong model for days.

Torch-free on purpose: the job layer and CLIs read configs without importing torch.
"""

from __future__ import annotations

import copy
import math
import os
import reprlib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from inpaint.core.atomic import atomic_open
from inpaint.core.errors import ConfigError
from inpaint.core.merge import deep_merge

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
PRECISIONS = ("bf16", "fp16", "fp32")
LOSS_TERMS = ("global_l1", "hole_l1", "adversarial", "perceptual")
LR_DECAYS = ("none", "linear", "cosine")
#: ``model.prefill`` of a generator that gets the zeroed holes, as the reference does.
NO_PREFILL = "none"
BASE_KEY = "base"
#: Seeds every random generator training seeds accepts (numpy's legacy seeding stops at 2**32 - 1).
MAX_SEED = 2**32 - 1
#: Integers beyond torch's int64 cannot be a count or a size; refused before they reach torch.
MAX_INT = 2**63 - 1
#: The model's input side: the networks downsample by 16, and above this one square no longer
#: fits in memory at inference (the generator sees size² pixels per photo).
MAX_SIZE = 4096
#: The most characters of a rejected value or override an error shows: a value can be huge (a
#: long list, or an alias bomb a file or --set made expand), the message must stay one line.
SHOWN_CHARS = 200

Check = Callable[[Any], "str | None"]


def _shown_repr() -> reprlib.Repr:
    shown = reprlib.Repr()
    shown.maxlevel, shown.maxlist, shown.maxdict, shown.maxstring, shown.maxother = 3, 8, 8, 80, 80
    return shown


_SHOWN = _shown_repr()


def shown(value: Any) -> str:
    """``repr(value)`` cut to a one-line size: reprlib never walks past its limits, so even a
    structure of millions of items is summarised at once."""
    return clip(_SHOWN.repr(value))


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` on one line, at most about ``limit`` characters (the middle left out)."""
    text = " ".join(str(text).split("\n"))
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}…({len(text) - 2 * half} characters left out)…{text[-half:]}"


# --- value checks: each returns an error fragment ("must be …") or None ------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    """A finite number: YAML's .inf and .nan, and floats like 1e300 that overflow the first
    multiplication, would reach training as NaN losses hours later."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v) and abs(v) < 1e30
    except OverflowError:  # an int beyond any float
        return False


def _pos_int(v: Any) -> str | None:
    return None if _is_int(v) and 0 < v <= MAX_INT else "must be a positive integer (below 2**63)"


def _nonneg_int(v: Any) -> str | None:
    return None if _is_int(v) and 0 <= v <= MAX_INT else "must be an integer >= 0 (below 2**63)"


def _opt_pos_int(v: Any) -> str | None:
    return None if v is None or (_is_int(v) and 0 < v <= MAX_INT) else "must be a positive integer (below 2**63) or null"


def _seed(v: Any) -> str | None:
    return None if _is_int(v) and 0 <= v <= MAX_SEED else f"must be an integer from 0 to {MAX_SEED} (2**32 - 1)"


def _size(v: Any) -> str | None:
    return None if _is_int(v) and 0 < v <= MAX_SIZE else f"must be a positive integer up to {MAX_SIZE}"


def _lr(v: Any) -> str | None:
    return None if _is_num(v) and 0 < v <= 1 else "must be a number with 0 < lr <= 1"


def _nonneg_num(v: Any) -> str | None:
    return None if _is_num(v) and v >= 0 else "must be a finite number >= 0"


def _prob(v: Any) -> str | None:
    return None if _is_num(v) and 0 <= v <= 1 else "must be a number between 0 and 1"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a non-empty string"


def _opt_path(v: Any) -> str | None:
    return None if v is None or (isinstance(v, str) and v) else "must be a file path or null"


def _int_list(length: int | None) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, list) and all(_is_int(x) and 0 < x <= MAX_INT for x in v)
        if ok and (length is None and len(v) > 0 or len(v) == length):
            return None
        n = f"{length} " if length else ""
        return f"must be a list of {n}positive integers"
    return check


def _betas(v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) == 2 and all(_is_num(x) and 0 <= x < 1 for x in v)
    return None if ok else "must be a list of two numbers in [0, 1)"


def _choice(options: Sequence[str]) -> Check:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {', '.join(options)}"
    return check


def _key(default: Any, check: Check) -> Any:
    """A schema field: its default and its check in one place (lists copied per instance)."""
    meta = {"check": check}
    if isinstance(default, list):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


# --- the schema: one dataclass per section; defaults are the reference Model 2 ------------------

@dataclass
class ModelSection:
    """The networks. Names (generator, dmfb, discriminator, prefill) are checked by the model
    factory, which knows its registries; here only that they are names."""

    generator: str = _key("gated_unet", _str)
    dmfb: str = _key("modified", _str)
    widths: list[int] = _key([64, 128, 256], _int_list(3))
    dmfb_blocks: int = _key(4, _nonneg_int)
    dmfb_inner: int = _key(64, _pos_int)
    batch_norm: bool = _key(True, _bool)
    discriminator: str = _key("sn_patchgan", _str)
    disc_widths: list[int] = _key([64, 128, 256, 256], _int_list(None))
    prefill: str = _key(NO_PREFILL, _str)  # none | navier-stokes | telea | biharmonic: classical fill of the holes first
    residual: bool = _key(False, _bool)    # output = classical fill + learned correction (zero at init)

    def check(self) -> str | None:
        if self.residual and self.prefill == NO_PREFILL:
            return ("model.residual = true adds a correction to a classical fill, but model.prefill is none: "
                    "set model.prefill: navier-stokes (or telea)")
        return None


@dataclass
class DataSection:
    size: int = _key(128, _size)
    mask_flip_p: float = _key(0.5, _prob)
    workers: int = _key(4, _nonneg_int)

    def check(self) -> str | None:
        # the U-Net halves the size twice and the discriminator four times
        fits = self.size % 16 == 0
        return None if fits else f"data.size = {self.size} must be a multiple of 16 (the U-Net and discriminator downsample by 16)"


@dataclass
class LossSection:
    global_l1: float = _key(1.0, _nonneg_num)
    hole_l1: float = _key(1.0, _nonneg_num)
    adversarial: float = _key(1.0, _nonneg_num)
    perceptual: float = _key(0.0, _nonneg_num)
    perceptual_weights: str | None = _key(None, _opt_path)   # null: $FACEFILL_WEIGHTS, ../shared/weights, torch cache
    perceptual_allow_random: bool = _key(False, _bool)       # true only for smoke tests

    def check(self) -> str | None:
        if sum(getattr(self, t) for t in LOSS_TERMS) <= 0:
            return f"the loss weights ({', '.join(LOSS_TERMS)}) sum to 0: give at least one a positive weight"
        return None


@dataclass
class OptimSection:
    lr: float = _key(2.0e-4, _lr)
    betas: list[float] = _key([0.5, 0.999], _betas)
    # Both optimizers' learning rate falls from lr to 0 over the steps from lr_decay_start (a
    # fraction of the run's total steps) to the end: a GAN's generator settles instead of
    # ending on its last noisy updates. A pure function of the step, so resume stays exact.
    lr_decay: str = _key("none", _choice(LR_DECAYS))
    lr_decay_start: float = _key(0.0, _prob)

    def check(self) -> str | None:
        return None


@dataclass
class TrainSection:
    batch_size: int = _key(4, _pos_int)
    epochs: int = _key(90, _pos_int)
    max_steps: int | None = _key(None, _opt_pos_int)
    seed: int = _key(0, _seed)
    precision: str = _key("bf16", _choice(PRECISIONS))
    channels_last: bool = _key(True, _bool)
    compile: bool = _key(False, _bool)
    checkpoint_every_steps: int = _key(1000, _pos_int)
    checkpoint_keep: int = _key(3, _pos_int)
    log_every_steps: int = _key(50, _pos_int)

    def check(self) -> str | None:
        return None


SECTIONS: dict[str, type] = {
    "model": ModelSection, "data": DataSection, "loss": LossSection, "optim": OptimSection, "train": TrainSection,
}
DEFAULT_NAME = "unnamed"


def section_defaults(section: str) -> dict[str, Any]:
    """A fresh dict of one section's defaults (e.g. ``section_defaults("loss")``)."""
    return asdict(SECTIONS[section]())


def complete_section(section: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` laid over the schema's defaults of ``section``, for code handed one section on
    its own (the model factories, the generator loss); a key the schema does not know is a
    ConfigError listing the known ones, as a typo must not silently mean a default."""
    cfg = section_defaults(section)
    unknown = sorted(set(values) - set(cfg))
    if unknown:
        raise ConfigError(f"unknown {section} key(s) {', '.join(unknown)}: use only {', '.join(cfg)}")
    cfg.update(values)
    return cfg


def default_config() -> dict[str, Any]:
    """A fresh, complete config of defaults: the reference Model 2."""
    return {"name": DEFAULT_NAME, **{name: section_defaults(name) for name in SECTIONS}}


def _section_fields(section: str) -> dict[str, Any]:
    return {f.name: f for f in fields(SECTIONS[section])}


def _field_default(f: Any) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


# --- files and bases ---------------------------------------------------------------------------

def packaged_configs() -> list[str]:
    """Names accepted in place of a path (``model1``, ``smoke``, …)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _packaged(name: str) -> Path | None:
    packaged = CONFIG_DIR / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return packaged if os.sep not in name and packaged.is_file() else None


def config_path(path_or_name: str | os.PathLike) -> Path:
    """An existing file as given, else the packaged config of that name."""
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return path
    packaged = _packaged(str(path_or_name))
    if packaged is not None:
        return packaged
    raise ConfigError(
        f"config {path_or_name} not found: give a YAML file path or one of the packaged names "
        f"({', '.join(packaged_configs())})"
    )


def _base_path(base: Any, including: Path) -> Path:
    """``base:`` of ``including``: a file relative to its folder (``.yaml`` optional), else a
    packaged name."""
    if not isinstance(base, str) or not base:
        raise ConfigError(f"config {including}: 'base' must name a config (a packaged name like model2 or a YAML path)")
    for candidate in (including.parent / base, including.parent / f"{base}.yaml"):
        if candidate.is_file():
            return candidate
    packaged = _packaged(base)
    if packaged is not None:
        return packaged
    raise ConfigError(
        f"config {including}: base '{base}' not found: give a YAML path relative to {including.parent} "
        f"or one of the packaged names ({', '.join(packaged_configs())})"
    )


class AliasError(yaml.YAMLError):
    """A YAML alias (``*name``) where configs refuse them; ``mark`` is where it stands."""

    def __init__(self, alias: str, mark: Any) -> None:
        super().__init__(f"alias *{alias}")
        self.alias, self.problem_mark = alias, mark


class NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases. An alias repeats a whole subtree by reference, so a
    few hundred bytes of nested aliases expand to hundreds of millions of items once anything
    walks them (a check, a deep copy, an error message); no config needs one, since each key
    holds one small value."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise AliasError(str(event.anchor), event.start_mark)
        return super().compose_node(parent, index)


def safe_load(stream: Any) -> Any:
    """``yaml.safe_load`` that raises :class:`AliasError` at the first alias."""
    loader = NoAliasLoader(stream)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = safe_load(f)
    except AliasError as exc:
        raise ConfigError(f"config {path} line {exc.problem_mark.line + 1} uses the YAML alias *{clip(exc.alias, 40)}: "
                          "aliases are not allowed in configs (a few of them can expand to millions of values); "
                          "write the value out") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config {path}{line} is not valid YAML: fix the syntax") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
                          "give a YAML text file") from None
    except OSError as exc:
        raise ConfigError(f"config {path} cannot be read ({exc.strerror}): check the path and permissions") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of sections (model, data, loss, optim, train)")
    return data


def _layers(path: Path, chain: tuple[Path, ...] = ()) -> list[tuple[dict[str, Any], str]]:
    """``(data, source)`` of ``path`` and its bases, the root base first."""
    here = path.resolve()
    if here in chain:
        cycle = " → ".join(str(p) for p in (*chain[chain.index(here):], here))
        raise ConfigError(f"config {path}: its base chain is a cycle ({cycle}): remove one of these 'base:' lines")
    data = _read_yaml(path)
    base = data.pop(BASE_KEY, None)
    below = _layers(_base_path(base, path), (*chain, here)) if base is not None else []
    return [*below, (data, str(path))]


# --- merging and checking ----------------------------------------------------------------------

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


def _checked_layer(layer: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``layer`` with float-like strings read as floats; ConfigError naming ``source`` for an
    unknown section or key and for a value its check refuses."""
    out: dict[str, Any] = {}
    for key, value in layer.items():
        if key == "name":
            out["name"] = value
            continue
        if key not in SECTIONS:
            hint = f" ('{BASE_KEY}' belongs in a config file)" if key == BASE_KEY else ""
            raise ConfigError(f"config {source}: unknown section {shown(key)}{hint}: use one of {', '.join(['name', BASE_KEY, *SECTIONS])}")
        if not isinstance(value, Mapping):
            raise ConfigError(f"config {source}: section '{key}' must be a mapping of keys to values")
        known = _section_fields(key)
        out[key] = {}
        for sub, sub_value in value.items():
            if sub not in known:
                raise ConfigError(f"config {source}: unknown key '{key}.{clip(sub, 60)}': use one of {', '.join(known)}")
            sub_value = _as_float_like(_field_default(known[sub]), copy.deepcopy(sub_value))
            problem = known[sub].metadata["check"](sub_value)
            if problem:
                raise ConfigError(f"config {source}: {key}.{sub} = {shown(sub_value)} {problem}")
            out[key][sub] = sub_value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"train.max_steps=20"`` → ``{"train": {"max_steps": 20}}``; the value is read as YAML so
    numbers, booleans, ``null`` and lists (``[32, 64, 128]``) come out typed."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{clip(text)}' must look like section.key=value (e.g. train.max_steps=100)")
    try:
        value = safe_load(raw) if raw.strip() else None
    except AliasError:
        raise ConfigError(f"override '{clip(text)}': YAML aliases (*name) are not allowed in a --set value "
                          f"(a few of them can expand to millions of values): write the value of {clip(key, 60)} out") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{clip(text)}': the value is not valid YAML") from exc
    if key == "name":
        return {"name": value}
    section, dot, sub = key.partition(".")
    if not dot or not sub or "." in sub:
        raise ConfigError(f"override '{clip(text)}' must name section.key (e.g. train.max_steps=100)")
    return {section: {sub: value}}


def validate_config(cfg: dict[str, Any], source: str = "<config>") -> dict[str, Any]:
    """Check a complete config (every key's value, then each section's own rules against the
    schema); returns ``cfg`` so calls can be chained."""
    if not isinstance(cfg.get("name"), str) or not cfg["name"]:
        raise ConfigError(f"config {source}: 'name' must be a non-empty string")
    for section, cls in SECTIONS.items():
        values = cfg[section]
        for f in fields(cls):
            problem = f.metadata["check"](values[f.name])
            if problem:
                raise ConfigError(f"config {source}: {section}.{f.name} = {shown(values[f.name])} {problem}")
        problem = cls(**values).check()
        if problem:
            raise ConfigError(f"config {source}: {problem}")
    return cfg


def resolve_config(data: Mapping[str, Any], overrides: Sequence[str] | None = None, source: str = "<config>") -> dict[str, Any]:
    """Defaults + ``data`` + overrides, validated. Also for configs stored inside checkpoints,
    whose keys added to the schema since they were written take their defaults."""
    cfg = deep_merge(default_config(), _checked_layer(data, source))
    for text in overrides or ():
        cfg = deep_merge(cfg, _checked_layer(parse_override(text), f"{source} (override '{clip(text, 80)}')"))
    return validate_config(cfg, source)


def load_config(path_or_name: str | os.PathLike, overrides: list[str] | None = None) -> dict[str, Any]:
    """The resolved config of a YAML file or packaged name (with its ``base:`` chain), with
    ``section.key=value`` overrides. Its name is its own ``name:`` or file stem, never a base's."""
    path = config_path(path_or_name)
    layers = _layers(path)
    merged: dict[str, Any] = {}
    for data, source in layers:
        merged = deep_merge(merged, _checked_layer(data, source))
    merged["name"] = layers[-1][0].get("name", path.stem)
    return resolve_config(merged, overrides, str(path))


def save_config(cfg: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML atomically (temp name, flush, fsync, rename)."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(dict(cfg), f, sort_keys=False, default_flow_style=None)
    return path
