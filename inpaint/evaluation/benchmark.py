"""The bucket protocol behind ``python -m inpaint.evaluate``: which columns are scored, on which
pairs of which shard folders, and where each report goes.

Every model and every classical fill is a :class:`Column`, scored on the same pairs of each
:class:`Benchmark` (one shard folder), so the columns of a table are comparable. The command line
itself is :mod:`inpaint.evaluation.options`; the feature-hole protocol is
:mod:`inpaint.evaluation.features`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from inpaint.core.buckets import BUCKET_LABELS
from inpaint.core.cli import warnings_as_lines
from inpaint.core.contract import CHECKPOINT_DIR, EVAL_DIR
from inpaint.core.errors import ConfigError, DataError
from inpaint.device import resolve_device
from inpaint.evaluation import demographics, protocol, summary
from inpaint.evaluation.baselines import (
    add_gains_over_best, baseline_generator, baseline_info, baseline_source, choose_baselines,
)
from inpaint.evaluation.fairness import GAIN_BY_KEY
from inpaint.evaluation.features import evaluate_features
from inpaint.evaluation.grid import GridCollector, grid_positions, write_grid
from inpaint.evaluation.model_eval import evaluate_generator
from inpaint.evaluation.report import Evaluation, ModelResult, write_report
from inpaint.evaluation.runner import Generator, Scorers, module_generator
from inpaint.evaluation.samples import safe_name
from inpaint.io.provenance import face_ids, mask_ids, overlap_sentence, pair_overlap, training_record
from inpaint.metrics.identity import try_face_describer
from inpaint.metrics.lpips import try_load_lpips


@dataclass
class Column:
    """One evaluated column: a classical fill or a model, under its name in the report (unique
    among the columns)."""

    name: str
    path: Path | None  # the model's run dir or checkpoint; None for a classical fill
    generator: Generator
    info: dict[str, Any]

    @property
    def is_model(self) -> bool:
        return self.path is not None

    @property
    def source(self) -> str:
        """Where the column's outputs come from: the model's path, or the library call of a fill."""
        return str(self.path) if self.path is not None else baseline_source(self.info["method"])


def named_columns(described: Sequence[tuple[str, Path | None, Generator, dict[str, Any]]]) -> list[Column]:
    """Columns from (name, path, generator, info), a repeated name numbered (``m``, ``m#2``)."""
    names = unique_names([name for name, _, _, _ in described])
    return [Column(name, path, generator, info) for name, (_, path, generator, info) in zip(names, described)]


def model_name(kind: str, path: Path) -> str:
    """A short column name: the run dir's name, or run:step for a checkpoint inside a run dir."""
    path = path.expanduser().resolve()
    if kind == "run-dir":
        return path.name
    if path.parent.name == CHECKPOINT_DIR:
        return f"{path.parent.parent.name}:{path.stem}"
    return path.stem


def unique_names(names: list[str]) -> list[str]:
    """``names`` with each repeat numbered (``m``, ``m#2``): report columns and folders need distinct names."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _open_shards(root: Path, split: str = "test") -> tuple[dict, Any, Any, Any | None]:
    from inpaint.io.shards import FaceShards, MaskShards, read_index

    index = read_index(root)
    counts = index.get("counts", {})
    repack = "repack the shards with --val-fraction 0.05" if split == "val" else f"repack the shards with a {split} split"
    if not counts.get("faces", {}).get(split):
        raise DataError(f"{root / 'index.json'} lists no {split} faces: {repack}")
    if not counts.get("masks", {}).get(split):
        raise DataError(f"{root / 'index.json'} lists no {split} masks: {repack}")
    faces = FaceShards(root, split)
    masks = MaskShards(root, split)
    has_balanced = split == "test" and counts.get("faces", {}).get("eval_balanced")
    balanced = FaceShards(root, "eval_balanced") if has_balanced else None
    return index, faces, masks, balanced


@dataclass
class Benchmark:
    """One shard folder opened for evaluation, with the pair list every column is scored on."""

    root: Path
    size: int
    faces: Any
    masks: Any
    balanced: Any | None
    pairs: protocol.PairList
    split: str = "test"


def open_benchmark(root: Path, args: argparse.Namespace) -> Benchmark:
    """Open ``root``'s test (or validation) splits and draw (or read, with ``--pairs``) its pair list."""
    index, faces, masks, balanced = _open_shards(root, args.split)
    fingerprint = protocol.shards_fingerprint(index, args.split)
    balanced_count = len(balanced) if balanced is not None else 0
    if args.pairs:
        pairs = protocol.load_pairs(args.pairs, fingerprint, len(faces), len(masks), balanced_count)
    else:
        cells = demographics.group_columns(balanced.labels)["race_gender"] if balanced is not None else None
        pairs = protocol.build_pairs(len(faces), masks.buckets, balanced_count, args.pairs_per_bucket, args.seed,
                                     fingerprint, balanced_groups=cells)
    if args.no_demographics:  # pairs.json still lists the balanced pairs: one list whatever the flags
        balanced = None
    return Benchmark(root, int(index.get("size", faces.size)), faces, masks, balanced, pairs, args.split)


def output_dirs(out: Path, roots: list[Path]) -> list[Path]:
    """``out`` itself for one shard folder; ``out/<folder name>`` for each of several."""
    if len(roots) == 1:
        return [out]
    return [out / safe_name(name) for name in unique_names([root.resolve().name or "data" for root in roots])]


def evaluate(args: argparse.Namespace) -> int:
    """Everything ``python -m inpaint.evaluate`` does once its command line has parsed: check the
    options, open the shard folders and the columns, score, and write one report per folder."""
    sources = [("run-dir", Path(p)) for p in args.run_dir] + [("checkpoint", Path(p)) for p in args.checkpoint]
    if not sources and not args.baseline:
        raise ConfigError("nothing to evaluate: give --run-dir DIR or --checkpoint FILE (repeat to compare models), "
                          "or --baseline METHOD")
    baselines, baseline_reason = choose_baselines(args.baseline, args.no_baseline)
    for opt, value in (("--pairs-per-bucket", args.pairs_per_bucket), ("--batch-size", args.batch_size),
                       ("--identity-workers", args.identity_workers)):
        if value < 1:
            raise ConfigError(f"{opt} must be at least 1, got {value}")
    if args.pairs and len(args.data) > 1:
        raise ConfigError("--pairs is the pair list of one shard folder but several --data were given: "
                          "evaluate those folders one at a time, or leave out --pairs")
    device = resolve_device(args.device)
    if args.precision == "bf16" and device.type != "cuda":
        raise ConfigError("--precision bf16 is for GPUs (it is many times slower on CPUs without native bf16): use fp32")
    benchmarks = [open_benchmark(Path(d).expanduser(), args) for d in args.data]
    loaded = load_models(sources, benchmarks, device)
    lpips_model, lpips_reason = try_load_lpips(args.lpips_weights, device)
    describer, identity_reason = (None, "skipped (--no-identity)") if args.no_identity else try_face_describer(args.identity_workers)
    out = Path(args.out) if args.out else (sources[0][1] / EVAL_DIR if len(sources) == 1 and sources[0][0] == "run-dir" else Path("evaluation"))
    # Baselines first: the anchor column every model is read against.
    columns = named_columns([(method, None, baseline_generator(method), baseline_info(method)) for method in baselines]
                            + [(model_name(kind, path), path, module_generator(model),
                                {"kind": kind, "config_name": cfg.name, "config": cfg.to_dict()})
                               for kind, path, model, cfg, _ in loaded])
    records = dict(zip((c.name for c in columns[len(baselines):]), (record for *_, record in loaded)))
    scorers = Scorers(lpips=lpips_model, identity=describer)
    try:
        if args.masks == "features":  # holes over the eyes, nose and mouth instead of the bucket protocol
            return evaluate_features(benchmarks, output_dirs(out, [b.root for b in benchmarks]), columns, scorers,
                                     device, args, {"lpips": lpips_reason, "identity": identity_reason,
                                                    "baselines": baseline_reason})
        for bench, bench_out in zip(benchmarks, output_dirs(out, [b.root for b in benchmarks])):
            samples = str(Path(args.samples) / bench_out.name) if args.samples and len(benchmarks) > 1 else args.samples
            overlaps = training_overlaps(bench, records, where=f"{bench.root}: " if len(benchmarks) > 1 else "")
            results, collector, elapsed = score_benchmark(bench, columns, scorers, device, args, samples)
            for r in results:
                r.training_overlap = overlaps.get(r.name)
            best = add_gains_over_best(results, args.seed)
            extra = {"elapsed_s": elapsed, "device": str(device),
                     "baselines": {"scored": baselines, "reason": baseline_reason or None}}
            has_models = len(results) > len(baselines)
            write_benchmark(bench, results, collector, bench_out, extra, lpips_reason, identity_reason,
                            "" if best and has_models else gain_reason(baseline_reason, has_models), best)
    finally:
        if describer is not None:
            describer.close()
    return 0


def load_models(sources: Sequence[tuple[str, Path]], benchmarks: Sequence[Benchmark], device: torch.device
                ) -> list[tuple[str, Path, torch.nn.Module, dict[str, Any], tuple[dict[str, Any] | None, str]]]:
    """(kind, path, model, config, training record) of every ``(kind, path)`` source, all loaded
    before anything is scored, so a bad path or a model of the wrong size fails before anything is
    written."""
    from inpaint.io.weights import WeightsWarning, open_generator

    loaded = []
    for kind, path in sources:
        with warnings_as_lines(WeightsWarning):
            opened = open_generator(path, device)
        cfg = opened.config
        for bench in benchmarks:
            model_size = cfg.data.size
            if model_size != bench.size:
                raise ConfigError(f"{path} is a {model_size}-px model but the shards {bench.root} are {bench.size} px: "
                                  f"evaluate on shards packed at {model_size} px")
        loaded.append((kind, path, opened.model, cfg, training_record(opened.training_set, opened.data)))
    return loaded


def score_benchmark(bench: Benchmark, columns: Sequence[Column], scorers: Scorers, device: torch.device, args: argparse.Namespace,
                    samples_dir: str | None) -> tuple[list[ModelResult], GridCollector | None, float]:
    """Every column (baselines, then models) on the benchmark's pairs; also the grid samples and
    the seconds it took."""
    pair_buckets = [b for b, _, _ in bench.pairs.flat()]
    collector = GridCollector(grid_positions(pair_buckets, args.grid_per_bucket)) if args.grid_per_bucket > 0 else None
    autocast = torch.bfloat16 if args.precision == "bf16" else None
    started = time.time()
    results = []
    for column in columns:
        result = evaluate_generator(column.name, column.generator, bench.faces, bench.masks, bench.balanced, bench.pairs,
                                    batch_size=args.batch_size, device=device, scorers=scorers,
                                    workers=args.workers, collector=collector, samples_dir=samples_dir,
                                    quiet=args.quiet, autocast_dtype=autocast if column.is_model else None)
        result.source = column.source
        result.info = column.info
        results.append(result)
    return results, collector, round(time.time() - started, 1)


def scored_pair_ids(bench: Benchmark) -> list[tuple[str, str]]:
    """(face id, mask id) of every pair scored on the benchmark: the test (or validation) pairs and,
    when the breakdown is scored, the balanced ones (ids as :mod:`inpaint.io.provenance` defines them)."""
    faces = face_ids(bench.root, bench.split)
    masks = mask_ids(bench.root, bench.split)
    pairs = [(faces[f], masks[m]) for _, f, m in bench.pairs.flat()]
    if bench.balanced is not None and bench.pairs.balanced:
        balanced = face_ids(bench.root, "eval_balanced")
        pairs += [(balanced[f], masks[m]) for f, m in bench.pairs.balanced]
    return pairs


def training_overlaps(bench: Benchmark, records: dict[str, tuple[dict[str, Any] | None, str]],
                      where: str = "") -> dict[str, dict[str, Any]]:
    """Per model column: how many scored faces and masks it was trained on (or why that is not
    known), with one warning line on stderr for each model trained on any. Scores on training data
    are optimistic, and nothing in the numbers themselves would show it."""
    overlaps: dict[str, dict[str, Any]] = {}
    pair_ids: list[tuple[str, str]] | None = None
    for name, (record, source) in records.items():
        if record is None:
            overlaps[name] = {"checked": False, "reason": source}
            continue
        if pair_ids is None:  # read once, and only when some model can be checked
            pair_ids = scored_pair_ids(bench)
        overlaps[name] = {"checked": True, "source": source, **pair_overlap(record, pair_ids)}
        sentence = overlap_sentence(overlaps[name])
        if sentence:
            print(f"warning: {where}{name} {sentence}", file=sys.stderr, flush=True)
    return overlaps


def write_benchmark(bench: Benchmark, results: list[ModelResult], collector: GridCollector | None, out: Path,
                    extra: dict[str, Any], lpips_reason: str, identity_reason: str, gain_reason_text: str,
                    best: dict[str, dict[str, Any]] | None = None) -> None:
    """report.md, metrics.json, metrics.csv, pairs.json and grid.png of one benchmark into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    pairs_file = protocol.save_pairs(bench.pairs, out / "pairs.json")
    extra = dict(extra)
    if collector is not None and collector.inputs:
        extra["grid"] = write_grid(collector, [b for b, _, _ in bench.pairs.flat()], out / "grid.png").name
    ev = Evaluation(models=results, protocol=protocol_summary(bench.pairs, bench.root, bench.size, pairs_file,
                                                              bench.balanced is not None, bench.split),
                    lpips_reason=lpips_reason, identity_reason=identity_reason, extra=extra, gain_reason=gain_reason_text,
                    best_classical=best or {})
    written = write_report(ev, out)
    print_summary(results)
    print(f"wrote {', '.join(str(p) for p in written.values())}, {pairs_file}"
          + (f", {out / extra['grid']}" if "grid" in extra else ""))


def protocol_summary(pairs: protocol.PairList, root: Path, size: int, pairs_file: Path,
                     with_balanced: bool = True, split: str = "test") -> dict[str, Any]:
    return {
        "data": str(root), "split": split, "size": size, "seed": pairs.seed, "pairs_per_bucket": pairs.pairs_per_bucket,
        "fingerprint": pairs.fingerprint, "pairs_file": pairs_file.name,
        "bucket_counts": {BUCKET_LABELS[b]: len(p) for b, p in enumerate(pairs.buckets)},
        "shortfalls": pairs.shortfalls, "balanced_pairs": len(pairs.balanced) if with_balanced else 0,
    }


def gain_reason(baseline_reason: str, has_models: bool) -> str:
    """Why the report has no gains over the best classical fill."""
    if not has_models:
        return "no model beside the classical fills"
    return f"no classical fill was scored ({baseline_reason or 'add --baseline METHOD'})"


def print_summary(results: list[ModelResult]) -> None:
    """The Average row per model on stdout, and each model's gain over the best classical fill:
    the lines a batch-job log needs."""
    for r in results:
        avg = r.buckets.get(summary.AVERAGE, {})
        parts = []
        for key in ("ref_l1", "ref_psnr", "std_l1", "std_psnr", "std_ssim", "std_lpips", "identity_distance"):
            value = avg.get(key)
            if value is not None:
                parts.append(f"{key}={summary.METRIC_BY_KEY[key].fmt.format(value)}")
        print(f"{r.name}: average over {avg.get('n', 0)} pairs: " + " ".join(parts))
    for r in results:
        gains = (r.gains.get("buckets") or {}).get(summary.AVERAGE) if r.gains else None
        if gains:
            print(f"{r.name} vs best classical: " + ", ".join(
                f"{key} {GAIN_BY_KEY[key].fmt.format(value)}{' dB' if key.endswith('psnr') else ''} ({r.gains['baselines'][key]})"
                for key, value in gains.items()))

