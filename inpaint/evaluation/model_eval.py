"""Scoring one generator on the whole protocol: the test pairs per bucket, then the balanced split
per demographic group. The library entry point behind ``python -m inpaint.evaluate``, usable with
any callable generator (a checkpoint, a baseline, a ground-truth oracle in tests)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from inpaint.core.buckets import BUCKET_LABELS
from inpaint.evaluation import demographics, protocol, summary
from inpaint.evaluation.grid import GridCollector
from inpaint.evaluation.report import ModelResult
from inpaint.evaluation.runner import NON_FINITE, Generator, Scorers, score_pairs
from inpaint.evaluation.samples import SampleWriter, chain_hooks
from inpaint.core.progress_line import ProgressLine


def evaluate_generator(name: str, generator: Generator, faces: Any, masks: Any, balanced: Any | None,
                       pairs: protocol.PairList, *, batch_size: int, device: torch.device, scorers: Scorers,
                       workers: int = 0, collector: GridCollector | None = None, samples_dir: str | None = None,
                       quiet: bool = False, autocast_dtype: torch.dtype | None = None) -> ModelResult:
    """Per-bucket table (and per-group tables when ``balanced`` is given) of one generator.

    ``collector`` keeps the grid samples and ``samples_dir`` receives every composite as PNG.
    """
    flat = pairs.flat()
    pair_buckets = [b for b, _, _ in flat]
    test_pairs = [(f, m) for _, f, m in flat]
    writer = SampleWriter(samples_dir, name, [BUCKET_LABELS[b] for b in pair_buckets], test_pairs) if samples_dir else None
    hook = chain_hooks(collector.for_model(name) if collector else None, writer)
    per_pair = score_pairs(generator, faces, masks, test_pairs, batch_size=batch_size, device=device, scorers=scorers,
                           workers=workers, hook=hook, autocast_dtype=autocast_dtype,
                           progress=None if quiet else ProgressLine(f"{name}: test pairs", len(test_pairs), "pairs"))
    result = ModelResult(name=name, source="", info={}, buckets=summary.bucket_table(per_pair, pair_buckets))
    if balanced is not None and pairs.balanced:
        groups = demographics.group_columns(balanced.labels)
        faces_idx = np.array([f for f, _ in pairs.balanced])
        bwriter = SampleWriter(samples_dir, name, ["balanced"] * len(pairs.balanced), pairs.balanced) if samples_dir else None
        bal = score_pairs(generator, balanced, masks, pairs.balanced, batch_size=batch_size, device=device, scorers=scorers,
                          workers=workers, hook=bwriter, autocast_dtype=autocast_dtype,
                          progress=None if quiet else ProgressLine(f"{name}: balanced pairs", len(pairs.balanced), "pairs"))
        orders = demographics.group_orders()
        result.balanced_per_pair = bal
        result.balanced_cells = groups["race_gender"][faces_idx]
        for kind, column in groups.items():
            table = summary.group_means(bal, column[faces_idx], orders[kind])
            result.demographics[kind] = table
            result.spreads[kind] = summary.spread(table)
    result.non_finite = non_finite_count(per_pair, result.balanced_per_pair)
    return result


def non_finite_count(*per_pairs: dict[str, np.ndarray]) -> dict[str, int] | None:
    """``{"pairs": k, "scored": n}`` when the outputs of k of the n pairs scored (over all
    ``per_pairs``: test and balanced) held NaN or inf, else None."""
    flags = np.concatenate([p[NON_FINITE] for p in per_pairs if p and NON_FINITE in p] or [np.zeros(0)])
    if not np.any(flags):
        return None
    return {"pairs": int(np.count_nonzero(flags)), "scored": int(flags.size)}
