"""Shipped weights: a trained generator without its training state, and the card that says what
it is.

A checkpoint (``inpaint.io.checkpoint``) is for resuming: both networks, both optimizers, RNG
states. What evaluation and inference need is a tenth of that: the generator's state dict (fp16 by
default) and a JSON card beside it (``<name>.json``) with the config that builds the network and
its provenance (which checkpoint, step, data; evaluation averages; the file's sha256, checked on
every load), like timm's pretrained configs: enough to rebuild the model and to tell later which
weights a figure was made with.

The card also records what the weights were trained on (``training_set``: counts, digests and
short id prefixes of the training faces and masks, :mod:`inpaint.io.provenance`), taken from the
training shards the checkpoint names after checking they still hold the lists it recorded, so
that ``inpaint.evaluate`` can warn when it scores the weights on their own training data.

``python -m inpaint.export RUN_DIR OUT.pt [--metrics METRICS_JSON] [--train-data SHARDS]``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from inpaint.core.atomic import tmp_name, write_json
from inpaint.io.checkpoint import atomic_torch_save, load_latest, read_checkpoint
from inpaint.models.wrappers import strip_wrapper_prefixes
from inpaint.core.contract import CHECKPOINT_DIR
from inpaint.core.config import Config, resolve_config
from inpaint.core.errors import CheckpointError, ConfigError, DataError
from inpaint.core.records import Record, key, optional_of, read_value, record_dict, record_fields
from inpaint.io.registry import WEIGHTS_DIR
from inpaint.io.provenance import ProvenanceWarning, recorded_digests, verified_training_set
from inpaint.core.shard_format import sha256_file


#: Where the weights shipped with facefill live: their cards must carry a sha256 (the file could be a
#: Git LFS pointer or a damaged download, and nobody would notice from the numbers alone).
SHIPPED_DIR = WEIGHTS_DIR
WEIGHTS_SUFFIX = ".pt"


class WeightsWarning(UserWarning):
    """Weights that load but whose card cannot vouch for them (no sha256 to check the file by)."""


def _mapping(v: Any) -> str | None:
    return None if isinstance(v, dict) else "must be a JSON object"


_TEXT, _COUNT, _NUMBER, _OBJECT = (optional_of(str, "a string"), optional_of(int, "an integer"),
                                   optional_of((int, float), "a number"), optional_of(dict, "a JSON object"))


@dataclass
class WeightsCard(Record):
    """The sidecar ``<name>.json`` of a shipped weights file.

    Only ``config`` is needed to load the weights; the rest is provenance. Keys this class does
    not name (added by a GPU session, e.g. ``shards``, ``training``) are kept in ``extra`` and
    written back unchanged, so reading and rewriting a card never loses anything. ``config``
    stays the plain dict the card holds (resolved, and an old flat model section migrated, when
    the weights are loaded).
    """

    config: dict[str, Any] = key({}, _mapping)
    source: str | None = key(None, _TEXT)          # run dir or checkpoint the weights were exported from
    checkpoint: str | None = key(None, _TEXT)      # its file name
    step: int | None = key(None, _COUNT)
    epoch: int | None = key(None, _COUNT)
    epoch_step: int | None = key(None, _COUNT)
    data: dict[str, Any] | None = key(None, _OBJECT)  # the training shards' fingerprint (size, train faces, masks)
    world_size: int | None = key(None, _COUNT)
    images_seen: int | None = key(None, _COUNT)    # step x batch size x processes: training length comparable across setups
    cpu_minutes: float | None = key(None, _NUMBER)  # training cost as measured by the caller (user+sys), when given
    exported: float | None = key(None, _NUMBER)    # UNIX time
    dtype: str | None = key(None, _TEXT)           # float16 | float32
    sha256: str | None = key(None, _TEXT)          # of the weights file: a damaged or LFS-pointer file is refused
    metrics: dict[str, Any] | None = key(None, _OBJECT)  # evaluation averages (see inpaint.evaluation.averages)
    #: What the weights were trained on (inpaint.io.provenance.TrainingSet.card_record: counts, digests
    #: and id prefixes of the training faces and masks); None when the checkpoint recorded no digests.
    training_set: dict[str, Any] | None = key(None, _OBJECT)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], source: str = "weights card") -> "WeightsCard":
        """The card of a JSON object; a known key with a value of the wrong type is a
        CheckpointError naming ``source``; keys it does not know go to ``extra``."""
        known = {name: f for name, f in record_fields(cls).items() if name != "extra"}
        values = {k: read_value(known[k], v, source, k, CheckpointError) for k, v in record.items() if k in known}
        return cls(**values, extra={k: v for k, v in record.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        plain = record_dict(self)
        del plain["extra"]
        return {**{k: v for k, v in plain.items() if v is not None or k == "config"}, **self.extra}

    @classmethod
    def read(cls, path: str | os.PathLike) -> "WeightsCard":
        path = Path(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or not isinstance(record["config"], dict):
                raise TypeError("not an object with a 'config' object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"weights sidecar {path} must be JSON with a 'config' entry ({exc}): re-export the weights") from exc
        return cls.from_dict(record, f"weights sidecar {path}")

    def write(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict(), indent=2)


def weights_sidecar(path: str | os.PathLike) -> Path:
    """The JSON card beside a shipped weights file."""
    return Path(path).with_suffix(".json")


def non_finite_tensors(weights: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or inf."""
    return [k for k, v in weights.items()
            if isinstance(v, torch.Tensor) and torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]


def _refuse_non_finite(weights: Mapping[str, Any], source: Path, fix: str) -> None:
    """A CheckpointError naming ``source`` when any weight is NaN or inf: such a generator fills
    every hole with NaN, which becomes black pixels and metrics that are silently left out."""
    bad = non_finite_tensors(weights)
    if bad:
        raise CheckpointError(f"generator weights in {source} hold NaN or inf (in {len(bad)} of {len(weights)} tensors, "
                              f"first {bad[0]}): {fix}")


def _check_size(cfg: Config, data: Mapping[str, Any] | None, source: Path) -> None:
    """The networks take any multiple of 16, so a state dict cannot tell the size it was trained
    at; the training data's record can, and an edited ``data.size`` must not be believed."""
    trained = (data or {}).get("size") if isinstance(data, Mapping) else None
    if isinstance(trained, int) and not isinstance(trained, bool) and trained > 0 and trained != cfg.data.size:
        raise CheckpointError(f"{source}: its config says data.size = {cfg.data.size} but its training data were "
                              f"{trained} px: the card was edited or belongs to other weights; set data.size to {trained}")


def _generator_from(config: Mapping[str, Any], weights: Mapping[str, torch.Tensor], source: Path,
                    device: str | torch.device, data: Mapping[str, Any] | None = None) -> tuple[nn.Module, Config]:
    from inpaint.models import build_generator

    cfg = resolve_config(config, source=str(source))
    _check_size(cfg, data, source)
    _refuse_non_finite(weights, source, "training diverged or the file is damaged; use an earlier checkpoint or re-export")
    model = build_generator(cfg.model)
    weights = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in strip_wrapper_prefixes(weights).items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"generator weights in {source} do not fit the model its config describes ({first}): "
            "the weights file and its config do not belong together"
        ) from exc
    return model.to(device).eval(), cfg


@dataclass
class _Source:
    """A run dir, checkpoint or weights file, read once."""

    config: Mapping[str, Any]
    weights: Mapping[str, torch.Tensor]
    path: Path                          # the file the weights came from
    state: dict | None = None           # the whole checkpoint (None for a shipped weights file)
    card: WeightsCard | None = None     # the card of a shipped weights file

    @property
    def data(self) -> dict | None:
        """The training data's fingerprint: the checkpoint's ``data`` or the card's."""
        if self.state is not None:
            return self.state.get("data")
        return self.card.data if self.card is not None else None


def _read_source(source: str | os.PathLike) -> _Source:
    """Config, generator weights and provenance of a run dir, checkpoint or weights file."""
    source = Path(source).expanduser()
    if source.is_dir():
        found = load_latest(source)
        if found is None:
            raise CheckpointError(f"run dir {source} has no checkpoints in {source / CHECKPOINT_DIR}: train first or point at a checkpoint or weights file")
        state, path = found
        return _Source(state["config"], state["generator"], path, state)
    if not source.is_file():
        raise CheckpointError(f"{source} does not exist: give a run dir, a checkpoint .pt or a weights file")
    sidecar = weights_sidecar(source)
    if sidecar.is_file():
        card = WeightsCard.read(sidecar)
        _check_digest(source, sidecar, card)
        try:
            weights = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"weights file {source} cannot be read ({type(exc).__name__}): it is damaged; re-export or re-download it") from exc
        if isinstance(weights, dict) and "generator" in weights and "format" in weights:
            weights = weights["generator"]  # a full checkpoint that happens to have a sidecar
        if not isinstance(weights, dict):
            raise CheckpointError(f"weights file {source} does not hold a state dict: re-export it")
        return _Source(card.config, weights, source, card=card)
    state = read_checkpoint(source)
    return _Source(state["config"], state["generator"], source, state)


def _is_shipped(path: Path) -> bool:
    return path.resolve().parent == SHIPPED_DIR.resolve()


def _check_digest(source: Path, sidecar: Path, card: WeightsCard) -> None:
    """The weights file must match its card's sha256. A card without one is refused for shipped
    weights and warned about (:class:`WeightsWarning`) for others, which then load unchecked."""
    if not card.sha256:
        if _is_shipped(source):
            raise CheckpointError(f"shipped weights {source}: their card {sidecar} has no sha256, so the file cannot be "
                                  "checked (a Git LFS pointer or a damaged copy would pass): restore the card from the "
                                  "repository or re-export the weights")
        warnings.warn(WeightsWarning(f"{sidecar} has no sha256: {source} is loaded unchecked (a damaged copy would not be "
                                     "noticed); re-export the weights to record it"), stacklevel=4)
        return
    if sha256_file(source) != card.sha256:
        raise CheckpointError(f"weights file {source} does not match the sha256 in {sidecar.name}: it is damaged "
                              "or incomplete (a Git LFS pointer, or an export stopped between the two files?); "
                              "re-export or re-download it")


@dataclass
class LoadedGenerator:
    """An eval-mode generator with its resolved config and what is known of its training data."""

    model: nn.Module
    config: Config
    path: Path                          # the checkpoint or weights file it was loaded from
    data: dict | None                   # the checkpoint's training-data fingerprint (size, counts, digests, root)
    training_set: dict | None           # a weights card's training_set record (None for checkpoints)


def open_generator(source: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedGenerator:
    """:func:`load_generator` plus the provenance ``inpaint.evaluate`` checks the scored pairs against."""
    src = _read_source(source)
    model, cfg = _generator_from(src.config, src.weights, src.path, device, src.data)
    return LoadedGenerator(model, cfg, src.path, src.data, src.card.training_set if src.card else None)


def load_generator(source: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, Config]:
    """An eval-mode generator and its resolved config from a run dir (its newest readable
    checkpoint), a checkpoint ``.pt``, or a shipped weights file (state dict, fp16 allowed, with
    ``<name>.json`` beside it holding ``{"config": ...}``)."""
    loaded = open_generator(source, device)
    return loaded.model, loaded.config


def _card_training_set(src: _Source, train_data: str | os.PathLike | None) -> dict[str, Any] | None:
    """The ``training_set`` record for the card: from the training shards the checkpoint names (or
    ``train_data``), only once their lists are checked to be the ones the checkpoint recorded. A
    shipped weights file passes its own card's record on."""
    if src.state is None:
        if train_data is not None:
            raise ConfigError(f"--train-data is for a run dir or checkpoint, but {src.path} is a weights file: "
                              "its card's training_set is carried over as it is")
        return src.card.training_set if src.card is not None else None
    data = src.state.get("data")
    if recorded_digests(data) is None:
        warnings.warn(ProvenanceWarning(
            f"{src.path} records no digests of its training faces and masks (trained before they were recorded): the "
            "card gets no training_set, so inpaint.evaluate cannot check these weights against the pairs it scores"
            + (" (--train-data cannot be checked against it and is not recorded)" if train_data is not None else "")),
            stacklevel=3)
        return None
    assert data is not None
    if train_data is not None:
        return verified_training_set(data, Path(train_data).expanduser(), str(src.path), "--train-data").card_record()
    if not data.get("root"):
        raise DataError(f"{src.path} records the digests of its training lists but not their folder: "
                        "pass --train-data SHARDS naming its training shards")
    return verified_training_set(data, str(data["root"]), str(src.path)).card_record()


def run_name(source: str | os.PathLike) -> str:
    """What a card records as its ``source``: the run dir's name (of a checkpoint: the run dir it is
    in), never the exporting machine's absolute path."""
    path = Path(source).expanduser().resolve()
    return path.parent.parent.name if path.is_file() and path.parent.name == CHECKPOINT_DIR else path.name


def check_export_target(out: Path, src: _Source | None = None) -> None:
    """A ConfigError when ``out`` is not a ``.pt`` path (its card goes to ``<out>.json``, so
    ``out.json`` would put the card over the weights), is the source file itself, or lies in the
    run's checkpoints folder, where it would replace or crowd out the checkpoints it comes from."""
    if out.suffix.lower() != WEIGHTS_SUFFIX or out.name.lower() == WEIGHTS_SUFFIX:
        raise ConfigError(f"export OUT {out} must be a {WEIGHTS_SUFFIX} file (the card is written beside it as "
                          f"{out.stem or 'NAME'}.json): e.g. inpaint/weights/model2.pt")
    if src is None:
        return
    target, origin = out.expanduser().resolve(), src.path.resolve()
    if target == origin or target == weights_sidecar(origin):
        raise ConfigError(f"export OUT {out} is the source {src.path} itself: exporting would overwrite it; give another path")
    if src.state is not None and origin.parent.name == CHECKPOINT_DIR and target.parent == origin.parent:
        raise ConfigError(f"export OUT {out} lies in the run's {CHECKPOINT_DIR} folder {origin.parent}: it would replace or "
                          "crowd out the checkpoints; write the weights elsewhere (e.g. inpaint/weights/NAME.pt)")


def _half_weights(model: nn.Module, half: bool, source: Path) -> dict[str, torch.Tensor]:
    """The state dict to ship; fp16 only where every value still fits (beyond ±65504 it is inf)."""
    weights = {k: (v.half() if half and torch.is_floating_point(v) else v) for k, v in model.state_dict().items()}
    bad = non_finite_tensors(weights)
    if bad:
        raise CheckpointError(f"generator weights in {source} overflow float16 (in {len(bad)} tensors, first {bad[0]}): "
                              "export them with --fp32")
    return weights


def _write_pair(weights: Mapping[str, torch.Tensor], card: WeightsCard, out: Path) -> None:
    """Both files under temporary names first, then renamed weights-then-card: a failure while
    writing leaves the previous pair as it was and no temporaries. (Between the two renames, a
    window of microseconds, a new .pt beside an old card is refused by its sha256, never used.)"""
    card_path = weights_sidecar(out)
    pending = [tmp_name(out), tmp_name(card_path)]
    try:
        atomic_torch_save(dict(weights), pending[0])
        card.sha256 = sha256_file(pending[0])
        card.write(pending[1])
        os.replace(pending[0], out)
        os.replace(pending[1], card_path)
    except OSError as exc:
        raise CheckpointError(f"cannot write {out} and its card ({exc.strerror or str(exc).splitlines()[0]}): free space "
                              "or fix the folder's permissions; any previous weights there are unchanged") from exc
    finally:
        for path in pending:
            path.unlink(missing_ok=True)


def export_weights(source: str | os.PathLike, out: str | os.PathLike, half: bool = True,
                   metrics: Mapping[str, Any] | None = None, cpu_minutes: float | None = None,
                   train_data: str | os.PathLike | None = None) -> Path:
    """Ship a trained generator: fp16 state dict at ``out`` plus its :class:`WeightsCard` at
    ``<out>.json`` (config, provenance with the training set's digests, sha256, evaluation metrics
    and training cost if given). ``train_data`` names the training shards when they are no longer
    where the checkpoint recorded them. A DataError, before anything is written, when those
    shards hold other lists than the checkpoint recorded; a :class:`ProvenanceWarning` for a
    checkpoint that recorded none. ConfigError for an ``out`` that is not a ``.pt`` or would
    overwrite the source or a checkpoint; CheckpointError for NaN or inf weights."""
    out = Path(out)
    check_export_target(out)
    src = _read_source(source)
    check_export_target(out, src)
    model, cfg = _generator_from(src.config, src.weights, src.path, "cpu", src.data)
    weights = _half_weights(model, half, src.path)
    training_set = _card_training_set(src, train_data)
    card = WeightsCard(config=cfg.to_dict(), source=run_name(source), exported=time.time(),
                       dtype="float16" if half else "float32",
                       metrics=dict(metrics) if metrics else None, cpu_minutes=cpu_minutes, training_set=training_set)
    state = src.state
    if state is not None:
        card.checkpoint, card.step, card.epoch = src.path.name, int(state["step"]), int(state["epoch"])
        card.epoch_step, card.data = int(state["epoch_step"]), state.get("data")
        card.world_size = int(state.get("world_size", 1))
        card.images_seen = card.step * cfg.train.batch_size * card.world_size
    elif src.card is not None:
        card.data = src.card.data
    _write_pair(weights, card, out)
    return out
