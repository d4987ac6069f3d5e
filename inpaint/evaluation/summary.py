"""Turning per-pair metrics into the numbers of the tables: means per bucket, per group, spreads.

The metric catalogue lives here so report.md, metrics.json and metrics.csv all label a number the
same way — the two conventions differ by a lot and must never be confused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from inpaint.core.buckets import BUCKET_LABELS
from inpaint.metrics.identity import SAME_PERSON_THRESHOLD

AVERAGE = "Average"


@dataclass(frozen=True)
class MetricInfo:
    key: str
    title: str
    convention: str  # "reference", "standard" or "identity"
    higher_is_better: bool
    fmt: str


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("ref_l1", "L1, reference convention (raw output vs ground truth in [-1, 1], whole image)", "reference", False, "{:.4f}"),
    MetricInfo("ref_psnr", "PSNR dB, reference convention (raw output, [-1, 1], 10·log10(1/MSE))", "reference", True, "{:.2f}"),
    MetricInfo("std_l1", "L1, standard convention (composite vs ground truth in [0, 1], whole image)", "standard", False, "{:.4f}"),
    MetricInfo("std_hole_l1", "L1 in the hole, standard convention (composite, [0, 1], hole pixels only)", "standard", False, "{:.4f}"),
    MetricInfo("std_psnr", "PSNR dB, standard convention (composite, [0, 1], 10·log10(1/MSE))", "standard", True, "{:.2f}"),
    MetricInfo("std_ssim", "SSIM, standard convention (composite, [0, 1], 11×11 Gaussian σ 1.5)", "standard", True, "{:.4f}"),
    MetricInfo("std_lpips", "LPIPS, standard convention (composite, AlexNet v0.1)", "standard", False, "{:.4f}"),
    MetricInfo("identity_distance", "Identity distance (dlib face descriptor, ground truth vs composite)", "identity", False, "{:.4f}"),
    MetricInfo("identity_same", f"Same person (share of pairs with identity distance < {SAME_PERSON_THRESHOLD})", "identity", True, "{:.1%}"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


def _mean(values: np.ndarray) -> float | None:
    """Mean, or None when the metric was not computed (all NaN)."""
    if values.size == 0 or np.all(np.isnan(values)):
        return None
    return float(np.nanmean(values))


def group_means(per_pair: Mapping[str, np.ndarray], groups: Sequence[str] | np.ndarray,
                order: Sequence[str]) -> dict[str, dict[str, float | int | None]]:
    """``{group: {"n": pairs, metric: mean}}`` for each group of ``order`` present in ``groups``."""
    groups = np.asarray(groups)
    table: dict[str, dict[str, float | int | None]] = {}
    for name in order:
        sel = groups == name
        if not sel.any():
            continue
        row: dict[str, float | int | None] = {"n": int(sel.sum())}
        for m in METRICS:
            row[m.key] = _mean(np.asarray(per_pair[m.key])[sel])
        table[name] = row
    return table


def bucket_table(per_pair: Mapping[str, np.ndarray], pair_buckets: Sequence[int]) -> dict[str, dict[str, float | int | None]]:
    """Rows per bucket label plus ``Average``: the mean of the bucket means, as the reference
    tables average their rows (equal to the pair mean when every bucket holds as many pairs)."""
    labels = np.array([BUCKET_LABELS[b] for b in pair_buckets]) if len(pair_buckets) else np.array([], dtype=str)
    table = group_means(per_pair, labels, BUCKET_LABELS)
    average: dict[str, float | int | None] = {"n": int(sum(r["n"] for r in table.values()))}  # type: ignore[misc]
    for m in METRICS:
        vals = [r[m.key] for r in table.values() if r[m.key] is not None]
        average[m.key] = float(np.mean(vals)) if vals else None
    table[AVERAGE] = average
    return table


def spread(table: Mapping[str, Mapping[str, float | int | None]]) -> dict[str, dict[str, object]]:
    """Per metric: the best and worst group and the gap between them (always ≥ 0)."""
    result: dict[str, dict[str, object]] = {}
    for m in METRICS:
        vals = {g: row[m.key] for g, row in table.items() if row.get(m.key) is not None and not math.isnan(row[m.key])}  # type: ignore[arg-type]
        if len(vals) < 2:
            continue
        ordered = sorted(vals, key=lambda g: vals[g], reverse=m.higher_is_better)  # type: ignore[arg-type,return-value]
        best, worst = ordered[0], ordered[-1]
        result[m.key] = {"best": best, "best_value": vals[best], "worst": worst, "worst_value": vals[worst],
                         "gap": abs(float(vals[best]) - float(vals[worst]))}  # type: ignore[arg-type]
    return result


def available_metrics(tables: Sequence[Mapping[str, Mapping[str, float | int | None]]]) -> list[MetricInfo]:
    """Metrics with at least one computed value in any of ``tables`` (LPIPS or identity may be
    unavailable everywhere)."""
    return [m for m in METRICS if any(row.get(m.key) is not None for t in tables for row in t.values())]
