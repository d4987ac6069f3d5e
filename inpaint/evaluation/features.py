"""``python -m inpaint.evaluate --masks features``: every column on holes over the eyes, the nose
and the mouth of every balanced face, instead of the hole-ratio protocol.

A rectangle over both eyes comes back as smooth skin, a masked mouth as a skin patch.
Free-form holes rarely sit on the features, so the bucket tables cannot show that; this protocol
puts one hole on each feature of each ``eval_balanced`` face (placed from dlib's 68 landmarks, see
:mod:`inpaint.evaluation.feature_masks`) and asks the question that matters there: is it still the
same person (identity kept = dlib descriptor distance < 0.6), beside PSNR, SSIM and LPIPS. The
scoring is the evaluation's own runner (:func:`inpaint.evaluation.runner.score_pairs`), so every
number means what it means in the bucket report.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from inpaint.core.errors import ConfigError, DataError
from inpaint.evaluation import summary
from inpaint.evaluation.feature_masks import FEATURES, FeatureMaskSet, FeatureSet, feature_masks
from inpaint.evaluation.grid import GridCollector
from inpaint.evaluation.runner import Scorers, score_pairs
from inpaint.evaluation.samples import SampleWriter
from inpaint.core.progress_line import ProgressLine
from inpaint.render.visual import to_uint8

if TYPE_CHECKING:  # benchmark imports this module
    from inpaint.evaluation.benchmark import Benchmark, Column

#: Rows of the "worst pairs" figure (the issue asks for six).
WORST_COUNT = 6
SPLIT = "eval_balanced"



@dataclass
class FeatureColumn:
    """One scored column: per-pair metrics on the feature pairs and their per-feature table."""

    name: str
    source: str
    info: dict[str, Any]
    is_model: bool
    per_pair: dict[str, np.ndarray]
    table: dict[str, dict[str, Any]] = field(default_factory=dict)

    def average(self, key: str) -> float | None:
        return self.table.get(summary.AVERAGE, {}).get(key)


def check_features_data(root: Path) -> None:
    """Fail before anything is computed when ``root`` has no balanced split to place holes on."""
    from inpaint.io.shards import read_index

    index = read_index(root)
    if not index.get("counts", {}).get("faces", {}).get(SPLIT):
        raise DataError(f"{root / 'index.json'} lists no {SPLIT} faces, which --masks features scores: repack "
                        f"labelled faces (UTKFace names) with data_prep.pack, or use --masks holes")


def find_feature_set(faces: Any, quiet: bool = False) -> FeatureSet:
    """Landmarks and the three holes of every face of ``faces`` (a FaceShards split)."""
    from inpaint.metrics.landmarks import LandmarkFinder

    finder = LandmarkFinder()
    progress = None if quiet else ProgressLine("landmarks", len(faces), "faces")
    masks, detected, points = [], [], []
    for i in range(len(faces)):
        image = to_uint8(faces[i]["image"][None])[0]
        found = finder.find(image)
        holes = feature_masks(found.points, *image.shape[:2])
        masks.extend(holes[name].astype(np.uint8) for name in FEATURES)
        detected.append(found.detected)
        points.append(found.points)
        if progress:
            progress.update(i + 1)
    return FeatureSet(masks=np.stack(masks), detected=np.array(detected, dtype=bool), points=np.stack(points))


def feature_table(per_pair: dict[str, np.ndarray], pair_features: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Rows per feature plus ``Average`` (the mean of the feature rows; every feature has one pair
    per face, so it is also the pair mean)."""
    table = summary.group_means(per_pair, np.array(pair_features), FEATURES)
    average: dict[str, Any] = {"n": int(sum(r["n"] for r in table.values()))}
    for m in summary.METRICS:
        vals = [r[m.key] for r in table.values() if r[m.key] is not None]
        average[m.key] = float(np.mean(vals)) if vals else None
    table[summary.AVERAGE] = average
    return table


def _rank_value(value: float | None, higher_is_better: bool) -> float:
    """Sort key where a better value is smaller and a missing one sorts last."""
    if value is None or math.isnan(value):
        return math.inf
    return -value if higher_is_better else value


def best_classical(columns: Sequence[FeatureColumn]) -> FeatureColumn | None:
    """The classical fill with the highest identity kept on average, ties (or no identity) by LPIPS."""
    baselines = [c for c in columns if not c.is_model]
    if not baselines:
        return None
    return min(baselines, key=lambda c: (_rank_value(c.average("identity_same"), True),
                                         _rank_value(c.average("std_lpips"), False)))


def grid_column(columns: Sequence[FeatureColumn]) -> FeatureColumn:
    """Whose worst pairs the figure shows: the first model, else the best classical fill."""
    models = [c for c in columns if c.is_model]
    chosen = models[0] if models else best_classical(columns)
    assert chosen is not None, "evaluate always scores at least one column"
    return chosen


def worst_pairs(per_pair: dict[str, np.ndarray], count: int = WORST_COUNT) -> list[int]:
    """Positions of the ``count`` worst pairs: largest identity distance first, ties (and pairs
    without a distance) by the largest LPIPS, then by position."""
    distance, lpips = per_pair["identity_distance"], per_pair["std_lpips"]
    order = sorted(range(len(distance)), key=lambda i: (_rank_value(distance[i], True),
                                                        _rank_value(lpips[i], True), i))
    return order[:count]


def evaluate_features(benchmarks: Sequence[Benchmark], out_dirs: Sequence[Path], columns: Sequence[Column],
                      scorers: Scorers, device: torch.device, args: argparse.Namespace,
                      reasons: dict[str, str]) -> int:
    """The features protocol on each benchmark (``inpaint.evaluate``'s opened shard folders), one
    report per output folder; ``reasons`` says why LPIPS, identity or baselines are missing."""
    from inpaint.io.shards import FaceShards
    from inpaint.evaluation.features_report import write_features_report
    from inpaint.metrics.landmarks import unavailable_reason

    if args.split != "test":
        raise ConfigError(f"--masks features scores the {SPLIT} split (test faces); --split {args.split} does not "
                          f"apply: leave it out")
    reason = unavailable_reason()
    if reason:
        raise ConfigError(f"--masks features places holes from dlib's 68 landmarks, but {reason}")
    for bench in benchmarks:
        check_features_data(bench.root)
    autocast = torch.bfloat16 if args.precision == "bf16" else None
    for bench, out in zip(benchmarks, out_dirs):
        faces = FaceShards(bench.root, SPLIT)
        started = time.time()
        feature_set = find_feature_set(faces, args.quiet)
        masks = FeatureMaskSet(feature_set.masks)
        pairs, pair_features = feature_set.pairs(), feature_set.pair_features()
        samples = Path(args.samples) / out.name if args.samples and len(benchmarks) > 1 else args.samples
        scored = []
        for column in columns:
            writer = SampleWriter(samples, column.name, pair_features, pairs) if samples else None
            per_pair = score_pairs(column.generator, faces, masks, pairs, batch_size=args.batch_size, device=device,
                                   scorers=scorers, workers=args.workers, hook=writer,
                                   autocast_dtype=autocast if column.is_model else None,
                                   progress=None if args.quiet else ProgressLine(f"{column.name}: feature pairs",
                                                                                 len(pairs), "pairs"))
            feature_column = FeatureColumn(column.name, column.source, column.info, column.is_model, per_pair)
            feature_column.table = feature_table(per_pair, pair_features)
            scored.append(feature_column)
        shown = grid_column(scored)
        worst = worst_pairs(shown.per_pair)
        collector = GridCollector(range(len(worst)))
        for column in columns:  # six pairs again, keeping the pictures
            score_pairs(column.generator, faces, masks, [pairs[i] for i in worst], batch_size=len(worst), device=device,
                        hook=collector.for_model(column.name), autocast_dtype=autocast if column.is_model else None)
        write_features_report(out, bench, feature_set, scored, shown, worst, collector, reasons,
                              {"elapsed_s": round(time.time() - started, 1), "device": str(device)})
    return 0
