"""report.md read by a person: one summary table first (method × average PSNR,
SSIM, LPIPS, identity, and each model's gain over the best classical fill), a PNG of PSNR and LPIPS
per hole-ratio bucket, best/worst groups in the tables instead of a bullet per metric, and empty
race × gender cells named. metrics.json keeps its keys: other code reads them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval_support import make_weights
from inpaint.evaluate import main

FAST = ["--pairs-per-bucket", "2", "--no-identity", "--quiet", "--batch-size", "8", "--grid-per-bucket", "0"]


@pytest.fixture(scope="module")
def evaluation(shards64: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two smoke models and the two default classical fills on the 64-px shards, with the balanced
    breakdown (whose 13 faces leave some race × gender cells empty)."""
    out = tmp_path_factory.mktemp("eval")
    a, b = make_weights(out / "model_a.pt", seed=1), make_weights(out / "model_b.pt", seed=2)
    assert main(["--checkpoint", str(a), "--checkpoint", str(b), "--data", str(shards64), "--out", str(out / "report"),
                 *FAST]) == 0
    return out / "report"


def _table_after(report: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table after ``heading``."""
    lines = report[report.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return [rows[0]] + rows[2:]  # header, then the body (without the --- line)


def test_the_report_opens_with_one_summary_table_of_averages_and_gains(evaluation: Path) -> None:
    report = (evaluation / "report.md").read_text()
    data = json.loads((evaluation / "metrics.json").read_text())
    assert re.findall(r"^## .*", report, re.M)[0] == "## Summary"
    header, *body = _table_after(report, "## Summary")
    assert header == ["Method", "Kind", "PSNR std (dB) ↑", "PSNR ref (dB) ↑", "SSIM ↑", "LPIPS ↓"]
    assert "Same person: unavailable — skipped (--no-identity)" in report  # a column without values is named, not shown
    rows = {row[0]: row for row in body}
    for model in data["models"]:
        avg = model["buckets"]["Average"]
        row = rows[model["name"]]
        assert row[1] == ("classical fill" if model["kind"] == "baseline" else "model")
        assert row[2].strip("*") == f"{avg['std_psnr']:.2f}" and row[4].strip("*") == f"{avg['std_ssim']:.4f}"
        assert row[5].strip("*") == f"{avg['std_lpips']:.4f}" and row[3].strip("*") == f"{avg['ref_psnr']:.2f}"
    best = data["best_classical"]
    assert rows[best["std_psnr"]["baseline"]][2] == f"**{best['std_psnr']['average']:.2f}**"  # the bar, in bold
    for name in ("model_a", "model_b"):
        gains = next(m for m in data["models"] if m["name"] == name)["gain_over_best_classical"]
        gain_row = rows[f"{name}: gain over the best classical fill"]
        average = gains["buckets"]["Average"]
        assert gain_row[2] == f"{average['std_psnr']:+.2f} ({gains['baselines']['std_psnr']})"
        assert gain_row[5] == f"{average['std_lpips']:+.4f} ({gains['baselines']['std_lpips']})"


def test_a_png_of_psnr_and_lpips_per_bucket_per_method(evaluation: Path) -> None:
    report = (evaluation / "report.md").read_text()
    assert "![PSNR and LPIPS per hole-ratio bucket, one line per method](bucket_plot.png)" in report
    picture = np.asarray(Image.open(evaluation / "bucket_plot.png").convert("RGB")).astype(int)
    assert picture.shape[1] >= 1000 and picture.shape[0] >= 260  # two panels side by side
    from inpaint.render.chart import COLOURS

    for colour in COLOURS[:4]:  # one line per method, in the legend's colours
        drawn = (np.abs(picture - np.array(colour)).max(axis=-1) < 12).sum()
        assert drawn > 100, colour


def test_best_and_worst_groups_are_rows_and_empty_cells_are_named(evaluation: Path) -> None:
    report = (evaluation / "report.md").read_text()
    assert not re.search(r"^- .*: best .*, worst ", report, re.M)       # no bullet per metric any more
    assert not re.search(r"^- .*: largest gain .*, smallest ", report, re.M)
    header, *body = _table_after(report, "### model_a: by race × gender")
    cells = {row[0]: row for row in body}
    assert cells["Asian male"][1:3] == ["0", "no faces"]  # empty in this 13-face balanced split
    assert cells["Others female"][1:3] == ["0", "no faces"]
    best, worst = cells["**best**"], cells["**worst**"]
    groups = {row[0] for row in body if row[1] not in ("", "0")}
    assert all(name in groups for name in best[2:] + worst[2:] if name != "–")
    gain_header, *gain_body = _table_after(report, "### model_a: gain over the best classical fill per race × gender cell")
    gain_cells = {row[0]: row for row in gain_body}
    assert gain_cells["Asian male"][1:3] == ["0", "no faces"]
    assert "**largest gain**" in gain_cells and "**smallest gain**" in gain_cells


def test_metrics_json_keeps_its_keys(evaluation: Path) -> None:
    data = json.loads((evaluation / "metrics.json").read_text())
    assert set(data) == {"format", "created", "protocol", "metrics", "lpips", "identity", "best_classical", "models",
                         "elapsed_s", "device", "baselines"}
    model = next(m for m in data["models"] if m["name"] == "model_a")
    assert set(model) == {"name", "source", "kind", "config_name", "config", "buckets", "demographics", "spreads",
                          "gain_over_best_classical", "training_overlap"}
    assert "Asian male" not in model["demographics"]["race_gender"]  # empty cells stay out of the numbers
