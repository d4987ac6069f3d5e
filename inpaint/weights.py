"""Shipped weights: a trained generator without its training state, and the card that says what
it is.

A checkpoint (``inpaint.checkpoint``) is for resuming: both networks, both optimizers, RNG
states. What evaluation and inference need is a tenth of that: the generator's state dict (fp16 by
default) and a JSON card beside it (``<name>.json``) with the config that builds the network and
its provenance (which checkpoint, step, data; evaluation averages; the file's sha256, checked on
every load), like timm's pretrained configs: enough to rebuild the model and to tell later which
weights a figure was made with.

``python -m inpaint.weights export RUN_DIR OUT.pt [--metrics METRICS_JSON]``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from inpaint.atomic import write_json
from inpaint.checkpoint import atomic_torch_save, load_latest, read_checkpoint, strip_wrapper_prefixes
from inpaint.contract import CHECKPOINT_DIR
from inpaint.errors import CheckpointError
from inpaint.shard_format import sha256_file


@dataclass
class WeightsCard:
    """The sidecar ``<name>.json`` of a shipped weights file.

    Only ``config`` is needed to load the weights; the rest is provenance. Keys this class does
    not name (added by a GPU session, e.g. ``shards``, ``training``) are kept in ``extra`` and
    written back unchanged, so reading and rewriting a card never loses anything.
    """

    config: dict[str, Any]
    source: str | None = None          # run dir or checkpoint the weights were exported from
    checkpoint: str | None = None      # its file name
    step: int | None = None
    epoch: int | None = None
    epoch_step: int | None = None
    data: dict[str, Any] | None = None  # the training shards' fingerprint (size, train faces, masks)
    world_size: int | None = None
    images_seen: int | None = None     # step x batch size x processes: training length comparable across setups
    cpu_minutes: float | None = None   # training cost as measured by the caller (user+sys), when given
    exported: float | None = None      # UNIX time
    dtype: str | None = None           # float16 | float32
    sha256: str | None = None          # of the weights file: a damaged or LFS-pointer file is refused
    metrics: dict[str, Any] | None = None  # evaluation averages (see inpaint.evaluation.averages)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "WeightsCard":
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in record.items() if k in known},
                   extra={k: v for k, v in record.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        record = {k: v for k, v in asdict(self).items() if k != "extra" and (v is not None or k == "config")}
        return {**record, **self.extra}

    @classmethod
    def read(cls, path: str | os.PathLike) -> "WeightsCard":
        path = Path(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or not isinstance(record["config"], dict):
                raise TypeError("not an object with a 'config' object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"weights sidecar {path} must be JSON with a 'config' entry ({exc}): re-export the weights") from exc
        return cls.from_dict(record)

    def write(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict(), indent=2)


def weights_sidecar(path: str | os.PathLike) -> Path:
    """The JSON card beside a shipped weights file."""
    return Path(path).with_suffix(".json")


def _generator_from(config: Mapping[str, Any], weights: Mapping[str, torch.Tensor], source: Path,
                    device: str | torch.device) -> tuple[nn.Module, dict]:
    from inpaint.config import resolve_config
    from inpaint.models import build_generator

    cfg = resolve_config(config, source=str(source))
    model = build_generator(cfg["model"])
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


def _read_source(source: str | os.PathLike) -> tuple[Mapping[str, Any], Mapping[str, torch.Tensor], Path, dict | None]:
    """(config, generator weights, the file they came from, the whole checkpoint or None for a
    shipped weights file) of a run dir, checkpoint or weights file — read once."""
    source = Path(source).expanduser()
    if source.is_dir():
        found = load_latest(source)
        if found is None:
            raise CheckpointError(f"run dir {source} has no checkpoints in {source / CHECKPOINT_DIR}: train first or point at a checkpoint or weights file")
        state, path = found
        return state["config"], state["generator"], path, state
    if not source.is_file():
        raise CheckpointError(f"{source} does not exist: give a run dir, a checkpoint .pt or a weights file")
    sidecar = weights_sidecar(source)
    if sidecar.is_file():
        card = WeightsCard.read(sidecar)
        if card.sha256 and sha256_file(source) != card.sha256:
            raise CheckpointError(f"weights file {source} does not match the sha256 in {sidecar.name}: it is damaged "
                                  "or incomplete (a Git LFS pointer?); re-export or re-download it")
        try:
            weights = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"weights file {source} cannot be read ({type(exc).__name__}): it is damaged; re-export or re-download it") from exc
        if isinstance(weights, dict) and "generator" in weights and "format" in weights:
            weights = weights["generator"]  # a full checkpoint that happens to have a sidecar
        if not isinstance(weights, dict):
            raise CheckpointError(f"weights file {source} does not hold a state dict: re-export it")
        return card.config, weights, source, None
    state = read_checkpoint(source)
    return state["config"], state["generator"], source, state


def load_generator(source: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """An eval-mode generator and its resolved config from a run dir (its newest readable
    checkpoint), a checkpoint ``.pt``, or a shipped weights file (state dict, fp16 allowed, with
    ``<name>.json`` beside it holding ``{"config": ...}``)."""
    config, weights, path, _ = _read_source(source)
    return _generator_from(config, weights, path, device)


def export_weights(source: str | os.PathLike, out: str | os.PathLike, half: bool = True,
                   metrics: Mapping[str, Any] | None = None, cpu_minutes: float | None = None) -> Path:
    """Ship a trained generator: fp16 state dict at ``out`` plus its :class:`WeightsCard` at
    ``<out>.json`` (config, provenance, sha256, evaluation metrics and training cost if given)."""
    config, trained, path, state = _read_source(source)
    model, cfg = _generator_from(config, trained, path, "cpu")
    weights = {k: (v.half() if half and torch.is_floating_point(v) else v) for k, v in model.state_dict().items()}
    out = Path(out)
    atomic_torch_save(weights, out)
    card = WeightsCard(config=cfg, source=str(Path(source).resolve()), exported=time.time(),
                       dtype="float16" if half else "float32", sha256=sha256_file(out),
                       metrics=dict(metrics) if metrics else None, cpu_minutes=cpu_minutes)
    if state is not None:
        card.checkpoint, card.step, card.epoch = path.name, int(state["step"]), int(state["epoch"])
        card.epoch_step, card.data = int(state["epoch_step"]), state.get("data")
        card.world_size = int(state.get("world_size", 1))
        card.images_seen = card.step * int(cfg["train"]["batch_size"]) * card.world_size
    card.write(weights_sidecar(out))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m inpaint.weights export SOURCE OUT.pt``: ship a trained generator."""
    import argparse

    from inpaint.evaluation.averages import evaluation_averages

    p = argparse.ArgumentParser(prog="python -m inpaint.weights",
                                description="Export the generator of a run dir or checkpoint as a small weights file "
                                            "(fp16 state dict + JSON card) for evaluation and inference.")
    sub = p.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write OUT.pt and OUT.json")
    exp.add_argument("source", help="run dir (newest readable checkpoint) or checkpoint .pt")
    exp.add_argument("out", help="weights file to write, e.g. inpaint/weights/model2.pt")
    exp.add_argument("--fp32", action="store_true", help="keep float32 instead of float16")
    exp.add_argument("--metrics", metavar="METRICS_JSON", help="inpaint.evaluate's metrics.json: record this model's averages")
    exp.add_argument("--model-name", help="the model's name in METRICS_JSON (default: the run dir's name)")
    exp.add_argument("--cpu-minutes", type=float, metavar="M",
                     help="training cost to record (e.g. user+sys of the training processes from /usr/bin/time)")
    args = p.parse_args(argv)
    metrics = None
    if args.metrics:
        metrics = evaluation_averages(args.metrics, args.model_name or Path(args.source).name)
    out = export_weights(args.source, args.out, half=not args.fp32, metrics=metrics, cpu_minutes=args.cpu_minutes)
    print(f"wrote {out} and {weights_sidecar(out)}")
    return 0


if __name__ == "__main__":
    from inpaint.cli import run_cli

    run_cli(main)
