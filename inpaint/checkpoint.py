"""Checkpoints of a training run: atomic writes, keep-last-K, and loading that survives damage.

Batch jobs on a shared grid are killed at arbitrary moments (wall-time limit, pre-emption, node
failure), so a checkpoint is only ever visible under its final name once it is complete, and a
damaged newest checkpoint (a truncated copy, a full disk during an rsync) costs one checkpoint
interval, not the run: loading falls back to the previous one with a warning.

Everything stored is plain Python / tensors so files load with ``torch.load(weights_only=True)``:
no pickled code runs when evaluating someone else's run dir.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from data_prep.checksum import sha256_file
from inpaint.atomic import atomic_open, write_json
from inpaint.errors import CheckpointError

CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR = "checkpoints"
REQUIRED_KEYS = ("format", "config", "generator", "discriminator", "opt_g", "opt_d", "scaler",
                 "epoch", "step", "epoch_step", "rng", "time")
_NAME = re.compile(r"^step-(\d{9})\.pt$")


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it could not be read; an older one is used instead."""


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint after ``step`` optimizer steps lives (the name sorts by step)."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:09d}.pt"


def find_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete-named checkpoints of a run, newest (highest step) first; temp files are ignored."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found, reverse=True)]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``<name>.tmp-<pid>``, fsync, rename: a reader never sees half a file."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return path


def save_checkpoint(run_dir: str | os.PathLike, state: Mapping[str, Any], keep: int = 3) -> Path:
    """Write ``state`` (the contract's checkpoint dict) atomically, then delete all but the newest
    ``keep`` checkpoints. Older ones are pruned only after the new one is safely in place."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {', '.join(missing)}")
    if keep < 1:
        raise ValueError("keep must be >= 1")
    path = atomic_torch_save(dict(state), checkpoint_path(run_dir, int(state["step"])))
    for old in find_checkpoints(run_dir)[keep:]:
        try:
            old.unlink()
        except FileNotFoundError:  # another process pruned it first
            pass
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """One checkpoint file, checked for the contract's keys; CheckpointError when unusable."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist: check the path") from None
    except Exception as exc:  # truncated zip, bad pickle, wrong file type: all mean "damaged"
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
            "it is damaged or not a facefill checkpoint; delete it to resume from an older one"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a checkpoint dict: delete it or point at a facefill checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}: it is not a complete facefill checkpoint; delete it")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}, this facefill reads format {CHECKPOINT_FORMAT}: use a matching facefill version")
    return state


def load_latest(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint of ``run_dir`` and its path, or None when there is none.

    Unreadable newer checkpoints are skipped with a :class:`CheckpointWarning`; if every one is
    unreadable that is a CheckpointError, since silently restarting from scratch would overwrite
    days of work with a fresh run.
    """
    paths = find_checkpoints(run_dir)
    problems: list[str] = []
    for path in paths:
        try:
            return read_checkpoint(path, map_location), path
        except CheckpointError as exc:
            problems.append(str(exc))
            warnings.warn(f"skipping checkpoint {path}: {exc}", CheckpointWarning, stacklevel=2)
    if paths:
        raise CheckpointError(
            f"none of the {len(paths)} checkpoints in {Path(run_dir) / CHECKPOINT_DIR} can be read "
            f"(newest: {problems[0]}); remove them to start afresh or restore them from a backup"
        )
    return None


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


def weights_sidecar(path: str | os.PathLike) -> Path:
    """The JSON file beside a shipped weights file that holds its config."""
    return Path(path).with_suffix(".json")


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
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            config = meta["config"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"weights sidecar {sidecar} must be JSON with a 'config' entry: re-export the weights") from exc
        expected = meta.get("sha256")
        if expected and sha256_file(source) != expected:
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
        return config, weights, source, None
    state = read_checkpoint(source)
    return state["config"], state["generator"], source, state


def load_generator(source: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """An eval-mode generator and its resolved config from a run dir (its newest readable
    checkpoint), a checkpoint ``.pt``, or a shipped weights file (state dict, fp16 allowed, with
    ``<name>.json`` beside it holding ``{"config": ...}``)."""
    config, weights, path, _ = _read_source(source)
    return _generator_from(config, weights, path, device)


def export_weights(source: str | os.PathLike, out: str | os.PathLike, half: bool = True,
                   metrics: Mapping[str, Any] | None = None) -> Path:
    """Ship a trained generator: fp16 state dict at ``out`` plus ``<out>.json`` with its config,
    where it came from (checkpoint, step, epoch, training data), its sha256 and, if given, its
    evaluation metrics — a tenth of a full checkpoint, enough for evaluation and inference, and
    enough to tell later which weights a figure was made with."""
    config, trained, path, state = _read_source(source)
    model, cfg = _generator_from(config, trained, path, "cpu")
    weights = {k: (v.half() if half and torch.is_floating_point(v) else v) for k, v in model.state_dict().items()}
    out = Path(out)
    atomic_torch_save(weights, out)
    meta = {"config": cfg, "source": str(Path(source).resolve()), **(_provenance(state, path) if state else {}),
            "exported": time.time(), "dtype": "float16" if half else "float32", "sha256": sha256_file(out)}
    if metrics:
        meta["metrics"] = dict(metrics)
    write_json(weights_sidecar(out), meta, indent=2)
    return out


def _provenance(state: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Training position and data of the checkpoint ``state`` read from ``path``."""
    return {"checkpoint": path.name, "step": int(state["step"]), "epoch": int(state["epoch"]),
            "epoch_step": int(state["epoch_step"]), "data": state.get("data"),
            "world_size": int(state.get("world_size", 1))}


def evaluation_averages(metrics_json: str | os.PathLike, model: str) -> dict[str, Any]:
    """The 'Average' row of one model in ``inpaint.evaluate``'s metrics.json, with its protocol."""
    path = Path(metrics_json)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable metrics.json from inpaint.evaluate ({exc})") from exc
    names = [m.get("name") for m in report.get("models", [])]
    if model not in names:
        raise CheckpointError(f"{path} has no model named {model!r} (it has {', '.join(map(str, names))}): pass one of those")
    from inpaint.evaluation.summary import AVERAGE

    entry = report["models"][names.index(model)]
    return {"average": entry["buckets"].get(AVERAGE), "protocol": report.get("protocol"), "report": str(path.resolve())}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m inpaint.checkpoint export SOURCE OUT.pt``: ship a trained generator."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m inpaint.checkpoint",
                                description="Export the generator of a run dir or checkpoint as a small weights file "
                                            "(fp16 state dict + JSON config) for evaluation and inference.")
    sub = p.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write OUT.pt and OUT.json")
    exp.add_argument("source", help="run dir (newest readable checkpoint) or checkpoint .pt")
    exp.add_argument("out", help="weights file to write, e.g. inpaint/weights/model2.pt")
    exp.add_argument("--fp32", action="store_true", help="keep float32 instead of float16")
    exp.add_argument("--metrics", metavar="METRICS_JSON", help="inpaint.evaluate's metrics.json: record this model's averages")
    exp.add_argument("--model-name", help="the model's name in METRICS_JSON (default: the run dir's name)")
    args = p.parse_args(argv)
    metrics = None
    if args.metrics:
        metrics = evaluation_averages(args.metrics, args.model_name or Path(args.source).name)
    out = export_weights(args.source, args.out, half=not args.fp32, metrics=metrics)
    print(f"wrote {out} and {weights_sidecar(out)}")
    return 0


if __name__ == "__main__":
    from inpaint.cli import run_cli

    run_cli(main)
