"""Fairness as gain over the best classical fill, per race × gender cell, with bootstrap intervals.

A raw per-group spread mostly measures the faces, not the model: a classical fill alone scores
differently on different groups of people. What a learned model adds is its *gain* over the
classical fill on the same pairs, so the breakdown that says whether a model serves some groups
worse is the spread of those gains. The fill is, per metric, the best classical fill scored
(``inpaint.evaluation.baselines.best_classical``): a gain over a weaker fill would flatter the
model. Every balanced face is scored by each model and by the fills on the identical (face, mask)
pair, so a gain is a per-face difference and its interval comes from resampling faces (a paired
bootstrap, seeded so the report is reproducible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from inpaint.evaluation.demographics import group_orders
from inpaint.evaluation.summary import METRIC_BY_KEY


@dataclass(frozen=True)
class GainMetric:
    key: str          # per-pair metric key (see inpaint.evaluation.summary.METRICS)
    title: str
    fmt: str

    @property
    def sign(self) -> int:
        """+1 when higher is better (the catalogue says which): gains are always "positive = better
        than the baseline"."""
        return 1 if METRIC_BY_KEY[self.key].higher_is_better else -1


#: The metrics a model is compared with the best classical fill on (identity only when dlib scored it).
GAIN_METRICS: tuple[GainMetric, ...] = (
    GainMetric("std_psnr", "PSNR std (dB)", "{:+.2f}"),
    GainMetric("std_ssim", "SSIM", "{:+.4f}"),
    GainMetric("std_lpips", "LPIPS (fill − model)", "{:+.4f}"),
    GainMetric("std_l1", "L1 std (fill − model)", "{:+.4f}"),
    GainMetric("std_hole_l1", "hole L1 std (fill − model)", "{:+.4f}"),
    GainMetric("ref_psnr", "PSNR ref (dB)", "{:+.2f}"),
    GainMetric("identity_same", "same-person rate (% points)", "{:+.1%}"),
)
GAIN_BY_KEY = {m.key: m for m in GAIN_METRICS}
#: Cells with fewer faces than this are flagged: their interval is wide and their gain is noise-prone.
MIN_FACES = 20
RESAMPLES = 2000
CONFIDENCE = 0.95


def paired_bootstrap(diffs: np.ndarray, rng: np.random.Generator, resamples: int = RESAMPLES,
                     confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the mean of per-face differences, resampling faces with replacement."""
    n = len(diffs)
    if n == 0:
        return math.nan, math.nan
    means = diffs[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def cell_gains(model: Mapping[str, np.ndarray], baseline: Mapping[str, np.ndarray], cells: np.ndarray,
               order: Sequence[str], seed: int = 0, resamples: int = RESAMPLES,
               min_faces: int = MIN_FACES) -> dict[str, Any]:
    """Per cell of ``order`` present in ``cells``: the mean gain of ``model`` over ``baseline``
    (per-pair metric arrays on the same balanced pairs; ``baseline`` may take each metric from
    another fill) and its bootstrap interval, plus the spread of the gains across cells. Metrics
    missing from either mapping are left out.

    Each cell draws its resamples from ``(seed, cell position)``: the same resampled faces for
    every metric of the cell, and a cell's interval does not move when another cell changes.
    """
    cells = np.asarray(cells)
    table: dict[str, dict[str, Any]] = {}
    for position, cell in enumerate(order):
        sel = np.flatnonzero(cells == cell)
        if sel.size == 0:
            continue
        row: dict[str, Any] = {"n": int(sel.size), "few_faces": bool(sel.size < min_faces)}
        for metric in GAIN_METRICS:
            if metric.key not in model or metric.key not in baseline:
                continue
            diffs = metric.sign * (np.asarray(model[metric.key], dtype=np.float64)[sel]
                                   - np.asarray(baseline[metric.key], dtype=np.float64)[sel])
            diffs = diffs[~np.isnan(diffs)]  # a pair one of the two could not be scored on is dropped
            if diffs.size == 0:
                continue  # metric unavailable (no LPIPS weights, no dlib)
            low, high = paired_bootstrap(diffs, np.random.default_rng([seed, position]), resamples)
            row[metric.key] = {"gain": float(diffs.mean()), "low": low, "high": high}
        table[cell] = row
    return {"cells": table, "spread": gain_spread(table)}


def gain_spread(table: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric: the cell with the largest and the smallest gain and the gap between them."""
    result: dict[str, dict[str, Any]] = {}
    for metric in GAIN_METRICS:
        gains = {cell: row[metric.key]["gain"] for cell, row in table.items() if metric.key in row}
        if len(gains) < 2:
            continue
        best = max(gains, key=gains.__getitem__)
        worst = min(gains, key=gains.__getitem__)
        result[metric.key] = {"best": best, "best_gain": gains[best], "worst": worst, "worst_gain": gains[worst],
                              "gap": gains[best] - gains[worst],
                              "few_faces": bool(table[best]["few_faces"] or table[worst]["few_faces"])}
    return result


def gains_over_best(result: Any, results: Sequence[Any], best: Mapping[str, Mapping[str, Any]],
                    seed: int = 0) -> dict[str, Any]:
    """The per-cell gain block of ``result`` (a :class:`~inpaint.evaluation.report.ModelResult`)
    over the best classical fill of each metric (``best``: ``{metric: {"baseline": name, ...}}``),
    from the per-pair balanced metrics; empty when the balanced split was not scored."""
    by_name = {r.name: r for r in results if r.info.get("kind") == "baseline"}
    reference = {key: by_name[chosen["baseline"]].balanced_per_pair[key] for key, chosen in best.items()
                 if key in by_name[chosen["baseline"]].balanced_per_pair}
    if not result.balanced_per_pair or not reference:
        return {}
    order = group_orders()["race_gender"]
    return {"grouping": "race_gender", "seed": seed, "resamples": RESAMPLES, "confidence": CONFIDENCE,
            "min_faces": MIN_FACES, **cell_gains(result.balanced_per_pair, reference, result.balanced_cells, order, seed)}
