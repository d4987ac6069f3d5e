"""Scoring a "perfect model" that returns the ground truth, and the report it produces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inpaint.core.buckets import BUCKET_LABELS
from inpaint.evaluation import demographics, protocol
from inpaint.evaluation.report import Evaluation, write_report
from inpaint.evaluation.runner import Scorers
from inpaint.evaluation.model_eval import evaluate_generator


class Oracle:
    """Returns the ground truth of each pair, in the order the runner visits them; checks on every
    call that the masked input really is that ground truth with the hole blanked."""

    def __init__(self, images: list[torch.Tensor]) -> None:
        self.images, self.next = images, 0

    def __call__(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        truth = torch.stack(self.images[self.next:self.next + len(masked)])
        self.next += len(masked)
        assert torch.equal(masked, truth * (1 - mask)), "runner fed pairs out of order"
        return truth


def test_perfect_model_scores_zero_error_and_report_lists_buckets_and_groups(shards64: Path, tmp_path: Path) -> None:
    from inpaint.io.shards import FaceShards, MaskShards, read_index
    from inpaint.metrics.identity import try_face_describer
    from inpaint.metrics.lpips import try_load_lpips

    index = read_index(shards64)
    faces, masks = FaceShards(shards64, "test"), MaskShards(shards64, "test")
    balanced = FaceShards(shards64, "eval_balanced")
    pairs = protocol.build_pairs(len(faces), masks.buckets, len(balanced), pairs_per_bucket=2, seed=0,
                                 fingerprint=protocol.shards_fingerprint(index))
    describer, identity_reason = try_face_describer()
    lpips, lpips_reason = try_load_lpips()
    expected = [faces[f]["image"] for _, f, _ in pairs.flat()] + [balanced[f]["image"] for f, _ in pairs.balanced]
    oracle = Oracle(expected)

    result = evaluate_generator("oracle", oracle, faces, masks, balanced, pairs, batch_size=5,
                                device=torch.device("cpu"), scorers=Scorers(lpips=lpips, identity=describer), quiet=True)
    assert oracle.next == len(expected)
    average = result.buckets["Average"]
    assert average["n"] == 12
    assert average["std_l1"] == 0.0 and average["std_hole_l1"] == 0.0 and average["ref_l1"] == 0.0
    assert average["std_ssim"] == pytest.approx(1.0, abs=1e-6)
    if lpips is not None:
        assert average["std_lpips"] == pytest.approx(0.0, abs=1e-6)
    if describer is not None:
        assert average["identity_distance"] == 0.0 and average["identity_same"] == 1.0

    # Every race × gender cell of the balanced split appears, with its pair count.
    cells = demographics.group_columns(balanced.labels)["race_gender"]
    present = {c: int((cells == c).sum()) for c in set(cells)}
    assert {g: row["n"] for g, row in result.demographics["race_gender"].items()} == present

    written = write_report(Evaluation([result], {"bucket_counts": {}, "pairs_file": "pairs.json"},
                                      lpips_reason=lpips_reason, identity_reason=identity_reason), tmp_path)
    report = written["report.md"].read_text()
    l1_table = report.split("### L1, standard convention")[1].split("###")[0]
    for label in (*BUCKET_LABELS, "Average"):
        assert f"| {label} | 0.0000 |" in l1_table
    race_gender = report.split("by race × gender")[1].split("###")[0]
    for cell, n in present.items():
        assert f"| {cell} | {n} |" in race_gender
    data = json.loads(written["metrics.json"].read_text())
    assert set(data["models"][0]["buckets"]) == {*BUCKET_LABELS, "Average"}
    rows = written["metrics.csv"].read_text().splitlines()
    assert rows[0].startswith("model,split,grouping,group")
    assert any(r.startswith("oracle,test,bucket,Average,12,std_l1,standard,0") for r in rows)


def test_worse_model_scores_worse_in_every_bucket(shards64: Path) -> None:
    """A model that fills holes with grey must lose to the oracle everywhere, more so in bigger holes."""
    from inpaint.io.shards import FaceShards, MaskShards

    faces, masks = FaceShards(shards64, "test"), MaskShards(shards64, "test")
    pairs = protocol.build_pairs(len(faces), masks.buckets, 0, pairs_per_bucket=4, seed=0)
    result = evaluate_generator("grey", lambda masked, mask: torch.zeros_like(masked), faces, masks, None, pairs,
                                batch_size=8, device=torch.device("cpu"), scorers=Scorers(), quiet=True)
    l1 = [result.buckets[label]["std_l1"] for label in BUCKET_LABELS]
    assert all(v > 0 for v in l1)
    assert l1[-1] > l1[0]
    assert result.buckets["Average"]["std_lpips"] is None  # no LPIPS scorer given: reported as unavailable
    assert np.isclose(result.buckets["Average"]["std_l1"], np.mean(l1))
