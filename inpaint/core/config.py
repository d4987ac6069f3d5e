"""Loading, checking and saving run configurations.

A config is a :class:`Config`: a ``name`` and one frozen record per section (``model``, ``data``,
``loss``, ``optim``, ``train``; :mod:`inpaint.core.records`), each field holding its default and
its check together, so the two cannot drift apart. ``model.generator`` and ``model.discriminator``
name an architecture and hold its own parameters (:mod:`inpaint.core.architectures`). Files and
checkpoints hold plain dicts (:meth:`Config.to_dict`); the flat model section of older files is
migrated on reading (:func:`migrate_model_section`). A config file states only what differs:
from the schema's defaults, or from a ``base:`` config it names (``base: model2``, a path relative
to the file or a packaged name; chains allowed), merged with :func:`inpaint.core.merge.deep_merge`.
The resolved config always holds every key, so a run dir's saved ``config.yaml`` is complete and
self-describing even if the defaults or a base change later, and resume compares resolved configs.
Unknown keys are errors rather than warnings because a typo in a batch job's config would
otherwise silently train the wrong model for days.

Torch-free on purpose: the job layer and CLIs read configs without importing torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from inpaint.core.architectures import (
    DISCRIMINATORS,
    GENERATORS,
    NAME_KEY,
    DiscriminatorParams,
    GeneratorParams,
    read_architecture,
)
from inpaint.core.atomic import atomic_open
from inpaint.core.errors import ConfigError
from inpaint.core.merge import deep_merge
from inpaint.core.records import (
    Record,
    anything,
    boolean,
    choice,
    clip,
    int_range,
    is_int,
    is_number,
    key,
    non_empty_str,
    nonneg_int,
    nonneg_number,
    optional_path,
    optional_positive_int,
    positive_int,
    probability,
    read_fields,
    read_record,
    resume_free_fields,
    shown,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
PRECISIONS = ("bf16", "fp16", "fp32")
LOSS_TERMS = ("global_l1", "hole_l1", "adversarial", "perceptual")
LR_DECAYS = ("none", "linear", "cosine")
BASE_KEY = "base"
#: Seeds every random generator training seeds accepts (numpy's legacy seeding stops at 2**32 - 1).
MAX_SEED = 2**32 - 1
#: The model's input side: the networks downsample by 16, and above this one square no longer
#: fits in memory at inference (the generator sees size² pixels per photo).
MAX_SIZE = 4096


# --- the schema: one record per section; defaults are the reference Model 2 --------------------


def _architecture_field(catalogue: Mapping[str, type], default: str) -> Any:
    def read(value: Any, source: str, path: str, error: type[Exception]) -> Any:
        return read_architecture(catalogue, default, value, source, path, error)

    return key(catalogue[default](), anything, read=read)


@dataclass(frozen=True)
class ModelSection(Record):
    """The networks: ``generator`` and ``discriminator`` are the named architectures' typed
    parameters (:mod:`inpaint.core.architectures`)."""

    generator: GeneratorParams = _architecture_field(GENERATORS, "gated_unet")
    discriminator: DiscriminatorParams = _architecture_field(DISCRIMINATORS, "sn_patchgan")


def _size(v: Any) -> str | None:
    return None if is_int(v) and 0 < v <= MAX_SIZE else f"must be a positive integer up to {MAX_SIZE}"


@dataclass(frozen=True)
class DataSection(Record):
    size: int = key(128, _size)
    mask_flip_p: float = key(0.5, probability)
    workers: int = key(4, nonneg_int, resume_free=True)

    def check(self) -> str | None:
        # the U-Net halves the size twice and the discriminator four times
        fits = self.size % 16 == 0
        return (
            None if fits else f"data.size = {self.size} must be a multiple of 16 (the U-Net and discriminator downsample by 16)"
        )


@dataclass(frozen=True)
class LossSection(Record):
    global_l1: float = key(1.0, nonneg_number)
    hole_l1: float = key(1.0, nonneg_number)
    adversarial: float = key(1.0, nonneg_number)
    perceptual: float = key(0.0, nonneg_number)
    perceptual_weights: str | None = key(
        None, optional_path, resume_free=True
    )  # null: $FACEFILL_WEIGHTS, ../shared/weights, torch cache
    perceptual_allow_random: bool = key(False, boolean)  # true only for smoke tests

    def check(self) -> str | None:
        if sum(getattr(self, t) for t in LOSS_TERMS) <= 0:
            return f"the loss weights ({', '.join(LOSS_TERMS)}) sum to 0: give at least one a positive weight"
        return None


def _lr(v: Any) -> str | None:
    return None if is_number(v) and 0 < v <= 1 else "must be a number with 0 < lr <= 1"


def _betas(v: Any) -> str | None:
    ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(is_number(x) and 0 <= x < 1 for x in v)
    return None if ok else "must be a list of two numbers in [0, 1)"


@dataclass(frozen=True)
class OptimSection(Record):
    lr: float = key(2.0e-4, _lr)
    betas: tuple[float, float] = key([0.5, 0.999], _betas)
    # Both optimizers' learning rate falls from lr to 0 over the steps from lr_decay_start (a
    # fraction of the run's total steps) to the end: a GAN's generator settles instead of
    # ending on its last noisy updates. A pure function of the step, so resume stays exact; like
    # max_steps, deciding when to land a run is allowed mid-run.
    lr_decay: str = key("none", choice(LR_DECAYS), resume_free=True)
    lr_decay_start: float = key(0.0, probability, resume_free=True)


@dataclass(frozen=True)
class TrainSection(Record):
    batch_size: int = key(4, positive_int)
    epochs: int = key(90, positive_int, resume_free=True)
    max_steps: int | None = key(None, optional_positive_int, resume_free=True)
    seed: int = key(0, int_range(0, MAX_SEED, " (2**32 - 1)"))
    precision: str = key("bf16", choice(PRECISIONS), resume_free=True)
    channels_last: bool = key(True, boolean, resume_free=True)
    compile: bool = key(False, boolean, resume_free=True)
    checkpoint_every_steps: int = key(1000, positive_int, resume_free=True)
    checkpoint_keep: int = key(3, positive_int, resume_free=True)
    log_every_steps: int = key(50, positive_int, resume_free=True)


SECTIONS: dict[str, type[Record]] = {
    "model": ModelSection,
    "data": DataSection,
    "loss": LossSection,
    "optim": OptimSection,
    "train": TrainSection,
}
DEFAULT_NAME = "unnamed"


@dataclass(frozen=True)
class Config(Record):
    """A resolved config: its name and one typed record per section. Plain dicts of it
    (:meth:`to_dict`) are for the files it is written to (a run dir's ``config.yaml``, checkpoints,
    weights cards)."""

    name: str = key(DEFAULT_NAME, non_empty_str, resume_free=True)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    def to_dict(self) -> dict[str, Any]:
        return {NAME_KEY: self.name, **{section: getattr(self, section).to_dict() for section in SECTIONS}}

    def with_values(self, section: str, **values: Any) -> Config:
        """A copy with ``section``'s ``values`` replaced (checked like a config file's)."""
        merged = {**getattr(self, section).to_dict(), **values}
        return replace(self, **{section: read_section(section, merged, self.name)})  # type: ignore[arg-type]


def default_config() -> Config:
    """The config of defaults: the reference Model 2."""
    return Config()


def resume_free_keys() -> frozenset[str]:
    """Dotted names (``train.epochs``) that may change between the jobs of one run: they change
    how fast, how visibly or how long a run trains, not what it computes."""
    return frozenset(
        {
            *resume_free_fields(Config),
            *(f"{section}.{name}" for section, cls in SECTIONS.items() for name in resume_free_fields(cls)),
        }
    )


# --- old files: one migration ------------------------------------------------------------------

#: The flat model section's keys of before ``model.generator``/``model.discriminator`` held their
#: architecture's parameters: where each one lives now.
FLAT_GENERATOR_KEYS = ("widths", "dmfb", "dmfb_blocks", "dmfb_inner", "batch_norm", "prefill", "residual")
FLAT_DISCRIMINATOR_KEYS = {"disc_widths": "widths"}


def migrate_model_section(model: Any) -> Any:
    """A model section in the nested form. The flat form (``generator: gated_unet`` as a name,
    ``widths``, ``disc_widths``, … beside it) is still in checkpoints, weights cards and users'
    files, whole or as a layer over a base (``model: {widths: [...]}``); its keys move into
    ``generator``/``discriminator``. Anything else is left for the checks to name."""
    if not isinstance(model, Mapping):
        return model
    flat_names = [role for role in ("generator", "discriminator") if isinstance(model.get(role), str)]
    if not flat_names and not any(k in model for k in (*FLAT_GENERATOR_KEYS, *FLAT_DISCRIMINATOR_KEYS)):
        return dict(model)
    moved = {role: dict(part) if isinstance(part := model.get(role), Mapping) else {} for role in ("generator", "discriminator")}
    out: dict[str, Any] = {}
    for name, value in model.items():
        if name in flat_names:
            moved[name][NAME_KEY] = value
        elif name in FLAT_GENERATOR_KEYS:
            moved["generator"][name] = value
        elif name in FLAT_DISCRIMINATOR_KEYS:
            moved["discriminator"][FLAT_DISCRIMINATOR_KEYS[name]] = value
        elif name not in moved:
            out[name] = value
    return {**{role: params for role, params in moved.items() if params}, **out}


def read_section(section: str, values: Mapping[str, Any], source: str = "<config>") -> Record:
    """One section's record from ``values`` laid over its defaults (an old flat model section
    migrated), for code handed one section on its own (the model factories, the generator loss);
    a key the schema does not know is a ConfigError listing the known ones."""
    if section == "model":
        values = migrate_model_section(values)
    if not isinstance(values, Mapping):
        raise ConfigError(f"config {source}: section '{section}' must be a mapping of keys to values")
    return read_record(SECTIONS[section], values, f"config {source}", f"{section}.")


def as_section(section: str, values: Record | Mapping[str, Any]) -> Any:
    """``values`` if it already is ``section``'s record, else :func:`read_section` of it: the
    models and losses take a section of a config or, in tests and notebooks, a partial mapping."""
    return values if isinstance(values, SECTIONS[section]) else read_section(section, values)  # type: ignore[arg-type]


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
        f"config {path_or_name} not found: give a YAML file path or one of the packaged names ({', '.join(packaged_configs())})"
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
        raise ConfigError(
            f"config {path} line {exc.problem_mark.line + 1} uses the YAML alias *{clip(exc.alias, 40)}: "
            "aliases are not allowed in configs (a few of them can expand to millions of values); "
            "write the value out"
        ) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config {path}{line} is not valid YAML: fix the syntax") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): give a YAML text file"
        ) from None
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
        cycle = " → ".join(str(p) for p in (*chain[chain.index(here) :], here))
        raise ConfigError(f"config {path}: its base chain is a cycle ({cycle}): remove one of these 'base:' lines")
    data = _read_yaml(path)
    base = data.pop(BASE_KEY, None)
    below = _layers(_base_path(base, path), (*chain, here)) if base is not None else []
    return [*below, (data, str(path))]


# --- merging and checking ----------------------------------------------------------------------


def _checked_model(values: Mapping[str, Any], below: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A model layer (migrated) with each architecture's keys checked against the architecture
    it names, or else the one below it names. A layer that names another architecture replaces
    the parameters below (they belong to the old one)."""
    out = migrate_model_section(values)
    read_fields(ModelSection, {k: v for k, v in out.items() if k not in ("generator", "discriminator")}, source, "model.")
    for role, catalogue in (("generator", GENERATORS), ("discriminator", DISCRIMINATORS)):
        if role not in out:
            continue
        layer, under = out[role], below.get(role, {})
        if not isinstance(layer, Mapping):
            raise ConfigError(
                f"{source}: model.{role} must be a mapping with a '{NAME_KEY}' and that architecture's "
                f"parameters (e.g. {NAME_KEY}: {under.get(NAME_KEY)})"
            )
        name = layer.get(NAME_KEY, under.get(NAME_KEY))
        if name not in catalogue:
            raise ConfigError(
                f"{source}: unknown model.{role}.{NAME_KEY} {shown(name)}: use one of {', '.join(sorted(catalogue))}"
            )
        given = read_fields(catalogue[name], {k: v for k, v in layer.items() if k != NAME_KEY}, source, f"model.{role}.")
        out[role] = {NAME_KEY: name, **given} if name != under.get(NAME_KEY) else given
    return out


def _merge_layer(merged: dict[str, Any], layer: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``layer`` (one file, or one override) checked and laid over ``merged``; ConfigError naming
    ``source`` for an unknown section or key and for a value its check refuses."""
    checked: dict[str, Any] = {}
    for name, value in layer.items():
        if name == NAME_KEY:
            checked[NAME_KEY] = value
            continue
        if name not in SECTIONS:
            hint = f" ('{BASE_KEY}' belongs in a config file)" if name == BASE_KEY else ""
            raise ConfigError(
                f"{source}: unknown section {shown(name)}{hint}: use one of {', '.join([NAME_KEY, BASE_KEY, *SECTIONS])}"
            )
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: section '{name}' must be a mapping of keys to values")
        if name == "model":
            checked[name] = _checked_model(value, merged[name], source)
            for role in ("generator", "discriminator"):
                if NAME_KEY in checked[name].get(role, {}):
                    merged = {**merged, name: {**merged[name], role: {}}}
        else:
            checked[name] = read_fields(SECTIONS[name], value, source, f"{name}.")
    return deep_merge(merged, checked)


def parse_override(text: str) -> dict[str, Any]:
    """``"train.max_steps=20"`` → ``{"train": {"max_steps": 20}}``; the value is read as YAML so
    numbers, booleans, ``null`` and lists (``[32, 64, 128]``) come out typed. Nested keys are
    dotted further: ``model.generator.widths=[8, 16, 32]``."""
    dotted, sep, raw = text.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted:
        raise ConfigError(f"override '{clip(text)}' must look like section.key=value (e.g. train.max_steps=100)")
    try:
        value = safe_load(raw) if raw.strip() else None
    except AliasError:
        raise ConfigError(
            f"override '{clip(text)}': YAML aliases (*name) are not allowed in a --set value "
            f"(a few of them can expand to millions of values): write the value of {clip(dotted, 60)} out"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{clip(text)}': the value is not valid YAML") from exc
    if dotted == NAME_KEY:
        return {NAME_KEY: value}
    names = dotted.split(".")
    if len(names) < 2 or not all(names):
        raise ConfigError(f"override '{clip(text)}' must name section.key (e.g. train.max_steps=100)")
    nested: dict[str, Any] = {names[-1]: value}
    for name in reversed(names[:-1]):
        nested = {name: nested}
    return nested


def _config_from(merged: Mapping[str, Any], source: str) -> Config:
    """The typed config of a complete merged dict; every value and each section's own rule checked."""
    name = merged.get(NAME_KEY)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: 'name' must be a non-empty string")
    sections = {section: read_record(cls, merged[section], source, f"{section}.") for section, cls in SECTIONS.items()}
    return Config(name=name, **sections)  # type: ignore[arg-type]


def _resolve(
    layers: Sequence[tuple[Mapping[str, Any], str]], overrides: Sequence[str] | None, source: str, name: str | None = None
) -> Config:
    merged = default_config().to_dict()
    for data, where in layers:
        merged = _merge_layer(merged, data, f"config {where}")
    if name is not None:
        merged[NAME_KEY] = name
    for text in overrides or ():
        merged = _merge_layer(merged, parse_override(text), f"config {source} (override '{clip(text, 80)}')")
    return _config_from(merged, f"config {source}")


def resolve_config(data: Mapping[str, Any], overrides: Sequence[str] | None = None, source: str = "<config>") -> Config:
    """Defaults + ``data`` + overrides, checked and typed. Also for configs stored inside
    checkpoints and weights cards: keys added to the schema since they were written take their
    defaults, and an old flat model section is migrated."""
    return _resolve([(data, source)], overrides, source)


def load_config(path_or_name: str | os.PathLike, overrides: Sequence[str] | None = None) -> Config:
    """The resolved config of a YAML file or packaged name (with its ``base:`` chain), with
    ``section.key=value`` overrides. Its name is its own ``name:`` or file stem, never a base's."""
    path = config_path(path_or_name)
    layers = _layers(path)
    return _resolve(layers, overrides, str(path), layers[-1][0].get(NAME_KEY, path.stem))


def save_config(cfg: Config | Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML atomically (temp name, flush, fsync, rename)."""
    path = Path(path)
    plain = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    with atomic_open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(plain, f, sort_keys=False, default_flow_style=None)
    return path
