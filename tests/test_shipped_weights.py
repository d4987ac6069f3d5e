"""The weights ``inpaint.predict`` uses by default: shipped only with a measured win over the
classical fill, and that win still there when they are scored again on held-out faces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inpaint.predict import DEFAULT_WEIGHTS
from inpaint.weights import WeightsCard, load_generator, weights_sidecar

NS = "navier-stokes"


@pytest.fixture(scope="module")
def card() -> WeightsCard:
    assert DEFAULT_WEIGHTS.is_file(), f"{DEFAULT_WEIGHTS} is what predict loads by default"
    return WeightsCard.read(weights_sidecar(DEFAULT_WEIGHTS))


def test_the_card_records_a_win_over_navier_stokes_within_the_cpu_budget(card: WeightsCard) -> None:
    from inpaint.config import resolve_config

    model, cfg = load_generator(DEFAULT_WEIGHTS)  # the recorded sha256 matches the file
    assert cfg == resolve_config(card.config) and not model.training  # keys added to the schema since: defaults
    assert card.dtype == "float16" and card.images_seen and card.step
    assert card.cpu_minutes is not None and card.cpu_minutes <= 150
    ours, ns = card.metrics["average"], card.metrics["baselines"][NS]
    assert ours["n"] == ns["n"] >= 300  # 50 pairs per bucket, the same pairs
    assert ours["std_psnr"] > ns["std_psnr"] and ours["std_lpips"] < ns["std_lpips"]


@pytest.fixture(scope="module")
def held_out(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test-split faces and test masks at the weights' size, packed the way users pack them."""
    from data_prep.pack import main as pack_main

    out = tmp_path_factory.mktemp("shards128")
    assert pack_main(["--faces", str(data_root / "faces"), "--masks", str(data_root / "masks"),
                      "--out", str(out), "--size", "128", "--limit", "600", "--mask-limit", "900",
                      "--test-masks-per-bucket", "10", "--workers", "1", "--seed", "0"]) in (0, None)
    return out


def test_scored_again_on_held_out_faces_it_still_beats_navier_stokes(held_out: Path, tmp_path: Path) -> None:
    """Through ``inpaint.evaluate`` itself on 60 pairs of test-split faces and test masks (faces the
    model never trained on; another pack and another draw than the card's 300 pairs)."""
    from inpaint.evaluate import main as evaluate_main

    assert evaluate_main(["--checkpoint", str(DEFAULT_WEIGHTS), "--baseline", NS, "--data", str(held_out),
                          "--out", str(tmp_path), "--pairs-per-bucket", "10", "--seed", "1", "--device", "cpu",
                          "--no-identity", "--no-demographics", "--grid-per-bucket", "0", "--quiet"]) in (0, None)
    report = json.loads((tmp_path / "metrics.json").read_text())
    averages = {m["kind"] if m.get("kind") == "baseline" else "model": m["buckets"]["Average"] for m in report["models"]}
    ours, ns = averages["model"], averages["baseline"]
    assert ours["n"] == ns["n"] == 60
    assert ours["std_psnr"] > ns["std_psnr"], (ours, ns)
    assert ours["std_lpips"] < ns["std_lpips"], (ours, ns)
