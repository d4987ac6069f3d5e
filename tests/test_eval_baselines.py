"""Classical fills as evaluation columns, and fairness as gain over Navier–Stokes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inpaint.buckets import BUCKET_LABELS
from inpaint.cli import run_cli
from inpaint.errors import ConfigError
from inpaint.evaluate import main
from inpaint.evaluation import fairness
from eval_support import make_weights

REPO = Path(__file__).resolve().parents[1]
FAST = ["--pairs-per-bucket", "2", "--no-identity", "--quiet", "--batch-size", "8", "--grid-per-bucket", "0"]


def _psnr_std_by_hand(shards: Path, pairs: list[list[int]]) -> float:
    """Mean standard-convention PSNR of OpenCV's Navier–Stokes fill (radius 5), computed here from
    the shards with cv2 and numpy only: the composite is the fill inside the hole, the face outside."""
    import cv2

    from inpaint.data import FaceShards, MaskShards

    faces, masks = FaceShards(shards, "test"), MaskShards(shards, "test")
    values = []
    for f, m in pairs:
        truth = np.round((faces[f]["image"].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
        hole = masks[m]["mask"].numpy()[0] > 0.5
        masked = truth.copy()
        masked[hole] = 128  # the models' zeroed input, (0 + 1) · 127.5 in uint8
        filled = cv2.inpaint(masked, hole.astype(np.uint8), 5, cv2.INPAINT_NS)
        comp = np.where(hole[..., None], filled, truth).astype(np.float64) / 255.0
        gt = faces[f]["image"].numpy().transpose(1, 2, 0).astype(np.float64) / 2 + 0.5
        values.append(10 * np.log10(1.0 / np.mean((comp - gt) ** 2)))
    return float(np.mean(values))


def test_baselines_alone_are_columns_in_both_conventions_with_gains(shards64: Path, tmp_path: Path) -> None:
    """The acceptance command of issue 13 (no model, default --out), through the real entry point."""
    proc = subprocess.run([sys.executable, "-m", "inpaint.evaluate", "--baseline", "navier-stokes", "--baseline", "telea",
                           "--data", str(shards64), *FAST], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "navier-stokes: average over 12 pairs" in proc.stdout and "telea: average over 12 pairs" in proc.stdout
    out = tmp_path / "evaluation"
    data = json.loads((out / "metrics.json").read_text())
    ns, telea = data["models"]
    assert (ns["name"], telea["name"]) == ("navier-stokes", "telea")
    assert ns["kind"] == telea["kind"] == "baseline" and ns["radius"] == 5
    pairs = json.loads((out / "pairs.json").read_text())

    # The column is OpenCV's fill scored on the saved pairs: checked against a computation by hand.
    for b, label in enumerate(BUCKET_LABELS):
        assert ns["buckets"][label]["std_psnr"] == pytest.approx(_psnr_std_by_hand(shards64, pairs["buckets"][b]["pairs"]), abs=0.02)
    avg_ns, avg_telea = ns["buckets"]["Average"], telea["buckets"]["Average"]
    for key in ("ref_l1", "ref_psnr", "std_l1", "std_psnr", "std_ssim", "std_lpips"):
        assert avg_ns[key] is not None and avg_telea[key] is not None
    assert avg_ns["std_psnr"] != avg_telea["std_psnr"]
    assert avg_ns["ref_psnr"] < avg_ns["std_psnr"]  # [-1, 1] range costs ~6 dB in the reference convention
    assert ns["demographics"]["race_gender"] and telea["demographics"]["race_gender"]

    # Fairness: Telea's gain over Navier–Stokes per race × gender cell, with intervals and flags.
    assert "gain_over_baseline" not in ns
    gains = telea["gain_over_baseline"]
    assert gains["baseline"] == "navier-stokes" and gains["min_faces"] == 20
    assert set(gains["cells"]) == set(telea["demographics"]["race_gender"])
    for cell, row in gains["cells"].items():
        assert row["n"] == telea["demographics"]["race_gender"][cell]["n"]
        assert row["few_faces"] == (row["n"] < 20)
        for key in ("ref_psnr", "std_psnr", "std_lpips"):
            g = row[key]
            assert g["low"] - 1e-9 <= g["gain"] <= g["high"] + 1e-9
        # The gain is the difference of the two columns' cell means (PSNR: model − baseline).
        assert row["std_psnr"]["gain"] == pytest.approx(telea["demographics"]["race_gender"][cell]["std_psnr"]
                                                        - ns["demographics"]["race_gender"][cell]["std_psnr"], abs=1e-9)
        assert row["std_lpips"]["gain"] == pytest.approx(ns["demographics"]["race_gender"][cell]["std_lpips"]
                                                         - telea["demographics"]["race_gender"][cell]["std_lpips"], abs=1e-9)
        assert "identity_same" not in row  # --no-identity: no identity gain, not a made-up zero
    assert gains["spread"]["std_psnr"]["gap"] >= 0

    report = (out / "report.md").read_text()
    assert "| Hole ratio | navier-stokes | telea |" in report
    assert "- Classical baselines: **navier-stokes**" in report
    assert "## Fairness as gain over navier-stokes" in report and "### telea: gain over navier-stokes" in report
    assert "⚠" in report  # shards64 cells hold fewer than 20 faces


def test_without_opencv_an_explicit_baseline_is_a_one_line_error_naming_the_extra(
        shards64: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # "import cv2" now raises ImportError
    with pytest.raises(ConfigError, match=r"facefill\[baselines\]"):
        main(["--baseline", "navier-stokes", "--data", str(shards64), "--out", str(tmp_path / "out"), *FAST])
    assert not (tmp_path / "out").exists()

    with pytest.raises(SystemExit) as exit_:  # what `python -m inpaint.evaluate` does with it
        run_cli(main, ["--baseline", "telea", "--data", str(shards64), "--out", str(tmp_path / "out"), *FAST])
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: classical fill needs OpenCV") and stderr.count("\n") == 1
    assert "facefill[baselines]" in stderr

    # Not asked for explicitly: the default Navier–Stokes column is left out, and the report says why.
    assert main(["--data", str(shards64), "--checkpoint", str(make_weights(tmp_path / "m.pt", seed=0)),
                 "--out", str(tmp_path / "no_cv2"), "--no-demographics", *FAST]) == 0
    report = (tmp_path / "no_cv2" / "report.md").read_text()
    assert "- Classical baselines: **none** — OpenCV is not installed: pip install 'facefill[baselines]'" in report
    assert [m["name"] for m in json.loads((tmp_path / "no_cv2" / "metrics.json").read_text())["models"]] == ["m"]


def test_gain_interval_is_a_seeded_paired_bootstrap() -> None:
    rng = np.random.default_rng(0)
    n = 400
    base = {"ref_psnr": rng.normal(20, 3, n), "std_psnr": rng.normal(26, 3, n), "std_lpips": rng.uniform(0.05, 0.3, n),
            "identity_same": rng.integers(0, 2, n).astype(float)}
    noise = rng.normal(0, 1.0, n)
    model = {"ref_psnr": base["ref_psnr"] + 0.5 + noise, "std_psnr": base["std_psnr"] - 0.2 + noise,
             "std_lpips": base["std_lpips"] + 0.01, "identity_same": np.full(n, np.nan)}
    cells = np.array(["a"] * 390 + ["b"] * 10, dtype=object)
    result = fairness.cell_gains(model, base, cells, ["a", "b", "c"], seed=3)
    a, b = result["cells"]["a"], result["cells"]["b"]
    assert set(result["cells"]) == {"a", "b"} and (a["n"], b["n"]) == (390, 10)
    assert not a["few_faces"] and b["few_faces"]
    d = noise[:390] + 0.5
    assert a["ref_psnr"]["gain"] == pytest.approx(d.mean())
    # Paired: the interval follows the spread of the per-face differences (σ≈1), not of the faces (σ≈3).
    half = 1.96 * d.std(ddof=1) / np.sqrt(390)
    assert a["ref_psnr"]["low"] == pytest.approx(d.mean() - half, abs=0.03)
    assert a["ref_psnr"]["high"] == pytest.approx(d.mean() + half, abs=0.03)
    assert a["std_lpips"]["gain"] == pytest.approx(-0.01) and a["std_lpips"]["high"] == pytest.approx(-0.01)
    assert "identity_same" not in a  # unavailable metric: no gain at all
    assert fairness.cell_gains(model, base, cells, ["a", "b", "c"], seed=3) == result  # seeded
    assert fairness.cell_gains(model, base, cells, ["a", "b", "c"], seed=4)["cells"]["a"]["ref_psnr"]["low"] != a["ref_psnr"]["low"]
    spread = result["spread"]["ref_psnr"]
    assert spread["gap"] == pytest.approx(abs(a["ref_psnr"]["gain"] - b["ref_psnr"]["gain"])) and spread["few_faces"]


def test_several_shard_folders_get_one_report_each(shards64: Path, tmp_path: Path) -> None:
    import shutil

    copy = shutil.copytree(shards64, tmp_path / "copy")
    out = tmp_path / "out"
    assert main(["--baseline", "navier-stokes", "--data", str(shards64), "--data", str(copy), "--out", str(out),
                 "--no-demographics", *FAST]) == 0
    first = json.loads((out / shards64.name / "metrics.json").read_text())
    second = json.loads((out / "copy" / "metrics.json").read_text())
    assert first["protocol"]["data"] == str(shards64) and second["protocol"]["data"] == str(copy)
    assert first["models"][0]["buckets"] == second["models"][0]["buckets"]  # same faces, same pairs, same numbers
    assert (out / "copy" / "pairs.json").is_file() and (out / "copy" / "report.md").is_file()
    with pytest.raises(ConfigError, match="--pairs is the pair list of one shard folder"):
        main(["--baseline", "telea", "--data", str(shards64), "--data", str(copy), "--pairs", str(out / "copy" / "pairs.json"),
              "--out", str(tmp_path / "x"), *FAST])
