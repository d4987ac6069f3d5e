"""Classical fills as evaluation columns, the best classical fill per metric, and each model's
gain over it per hole-ratio bucket and per race × gender cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inpaint.core.buckets import BUCKET_LABELS
from inpaint.core.cli import run_cli
from inpaint.core.errors import ConfigError
from inpaint.evaluate import main
from inpaint.evaluation import fairness
from eval_support import make_weights

REPO = Path(__file__).resolve().parents[1]
FAST = ["--pairs-per-bucket", "2", "--no-identity", "--quiet", "--batch-size", "8", "--grid-per-bucket", "0"]
#: The metrics the best classical fill is chosen on (identity too when dlib scored it), higher = better?
BEST_ON = {"std_psnr": True, "std_ssim": True, "std_lpips": False, "std_l1": False, "std_hole_l1": False,
           "ref_psnr": True}


def _truth_and_hole(faces, masks, f: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    truth = np.round((faces[f]["image"].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
    return truth, masks[m]["mask"].numpy()[0] > 0.5


def _psnr_std_by_hand(shards: Path, pairs: list[list[int]], method: str = "navier-stokes") -> float:
    """Mean standard-convention PSNR of a classical fill, computed here from the shards with cv2 /
    scikit-image and numpy only: the composite is the fill inside the hole, the face outside."""
    import cv2
    from skimage.restoration import inpaint_biharmonic

    from inpaint.io.shards import FaceShards, MaskShards

    faces, masks = FaceShards(shards, "test"), MaskShards(shards, "test")
    values = []
    for f, m in pairs:
        truth, hole = _truth_and_hole(faces, masks, f, m)
        gt = faces[f]["image"].numpy().transpose(1, 2, 0).astype(np.float64) / 2 + 0.5
        if method == "navier-stokes":
            masked = truth.copy()
            masked[hole] = 128  # the models' zeroed input, (0 + 1) · 127.5 in uint8
            filled = cv2.inpaint(masked, hole.astype(np.uint8), 5, cv2.INPAINT_NS).astype(np.float64) / 255.0
        else:
            known = gt.copy()
            known[hole] = 0.0
            filled = np.clip(inpaint_biharmonic(known, hole, channel_axis=-1), 0, 1)
        comp = np.where(hole[..., None], filled, gt)
        values.append(10 * np.log10(1.0 / np.mean((comp - gt) ** 2)))
    return float(np.mean(values))



def _evaluated(shards: Path, weights: Path, out: Path) -> tuple[str, dict]:
    """``inpaint.evaluate`` of ``weights`` (per bucket only) into ``out``: its report and metrics."""
    assert main(["--data", str(shards), "--checkpoint", str(weights), "--out", str(out), "--no-demographics", *FAST]) == 0
    return (out / "report.md").read_text(), json.loads((out / "metrics.json").read_text())

def test_baselines_alone_are_columns_in_both_conventions_and_the_best_is_named_per_metric(
        shards64: Path, tmp_path: Path) -> None:
    """The acceptance command (no model, default --out), through the real entry point."""
    proc = subprocess.run([sys.executable, "-m", "inpaint.evaluate", "--baseline", "navier-stokes", "--baseline", "telea",
                           "--baseline", "biharmonic", "--data", str(shards64), *FAST], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    for name in ("navier-stokes", "telea", "biharmonic"):
        assert f"{name}: average over 12 pairs" in proc.stdout
    assert "vs best classical" not in proc.stdout  # no model, no gain
    out = tmp_path / "evaluation"
    data = json.loads((out / "metrics.json").read_text())
    ns, telea, bh = data["models"]
    assert (ns["name"], telea["name"], bh["name"]) == ("navier-stokes", "telea", "biharmonic")
    assert ns["kind"] == telea["kind"] == bh["kind"] == "baseline" and ns["radius"] == 5 and "scikit-image" in bh
    pairs = json.loads((out / "pairs.json").read_text())

    # The columns are OpenCV's and scikit-image's fills scored on the saved pairs: checked by hand.
    by_hand = {"navier-stokes": [], "biharmonic": []}
    for b, label in enumerate(BUCKET_LABELS):
        for column in (ns, bh):
            value = _psnr_std_by_hand(shards64, pairs["buckets"][b]["pairs"], column["name"])
            assert column["buckets"][label]["std_psnr"] == pytest.approx(value, abs=0.02)
            by_hand[column["name"]].append(value)
    avg_ns, avg_telea = ns["buckets"]["Average"], telea["buckets"]["Average"]
    for key in ("ref_l1", "ref_psnr", "std_l1", "std_psnr", "std_ssim", "std_lpips"):
        assert avg_ns[key] is not None and avg_telea[key] is not None and bh["buckets"]["Average"][key] is not None
    assert avg_ns["std_psnr"] != avg_telea["std_psnr"]
    assert avg_ns["ref_psnr"] < avg_ns["std_psnr"]  # [-1, 1] range costs ~6 dB in the reference convention
    assert ns["demographics"]["race_gender"] and bh["demographics"]["race_gender"]

    # The best classical fill per metric: PSNR decided by the by-hand averages of the two fills,
    # every metric by the columns' averages (PSNR, SSIM higher; LPIPS, L1 lower is better).
    best = data["best_classical"]
    psnr = {name: float(np.mean(values)) for name, values in by_hand.items()}  # Average = mean of the bucket rows
    psnr["telea"] = avg_telea["std_psnr"]
    ranked = sorted(psnr, key=psnr.__getitem__, reverse=True)
    assert psnr[ranked[0]] - psnr[ranked[1]] > 0.05  # a clear winner on these pairs, beyond rounding
    assert best["std_psnr"]["baseline"] == ranked[0]
    assert best["std_psnr"]["average"] == pytest.approx(psnr[ranked[0]], abs=0.02)
    for key, higher in BEST_ON.items():
        averages = {m["name"]: m["buckets"]["Average"][key] for m in (ns, telea, bh)}
        winner = (max if higher else min)(averages, key=averages.__getitem__)
        assert best[key] == {"baseline": winner, "average": averages[winner]}
    assert "identity_same" not in best  # --no-identity: nothing to choose on
    assert all("gain_over_best_classical" not in m for m in data["models"])  # baselines are not gained over

    report = (out / "report.md").read_text()
    assert "| Hole ratio | navier-stokes | telea | biharmonic |" in report
    assert "- Classical baselines: **navier-stokes**" in report and "**biharmonic** (`skimage.restoration.inpaint_biharmonic`)" in report
    assert "## Best classical fill per metric" in report
    assert f"| PSNR std ↑ | {best['std_psnr']['baseline']} | {best['std_psnr']['average']:.2f} |" in report
    assert f"| LPIPS ↓ | {best['std_lpips']['baseline']} | {best['std_lpips']['average']:.4f} |" in report


def test_a_model_is_read_against_the_best_classical_fill_per_bucket_and_per_cell(
        shards64: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --baseline, Navier–Stokes and biharmonic are both scored (OpenCV and scikit-image
    are in [dev]); the model's gains are over whichever of them is best on each metric."""
    weights = make_weights(tmp_path / "m.pt", seed=0)
    out = tmp_path / "out"
    assert main(["--checkpoint", str(weights), "--data", str(shards64), "--out", str(out), *FAST]) == 0
    stdout = capsys.readouterr().out
    data = json.loads((out / "metrics.json").read_text())
    assert [m["name"] for m in data["models"]] == ["navier-stokes", "biharmonic", "m"]
    assert data["baselines"]["scored"] == ["navier-stokes", "biharmonic"]
    columns = {m["name"]: m for m in data["models"]}
    model = columns["m"]
    best = data["best_classical"]
    for key, higher in BEST_ON.items():
        averages = {name: columns[name]["buckets"]["Average"][key] for name in ("navier-stokes", "biharmonic")}
        assert best[key]["baseline"] == (max if higher else min)(averages, key=averages.__getitem__)

    gains = model["gain_over_best_classical"]
    assert gains["baselines"] == {key: entry["baseline"] for key, entry in best.items()}
    # Per bucket: the model's mean minus the best fill's (the other way round for LPIPS and L1).
    for label in (*BUCKET_LABELS, "Average"):
        for key, higher in BEST_ON.items():
            ours, theirs = model["buckets"][label][key], columns[best[key]["baseline"]]["buckets"][label][key]
            assert gains["buckets"][label][key] == pytest.approx((ours - theirs) if higher else (theirs - ours), abs=1e-9)
    # Per race × gender cell: the same difference of cell means, inside its paired-bootstrap interval.
    cells = model["demographics"]["race_gender"]
    assert set(gains["cells"]) == set(cells) and gains["min_faces"] == 20
    for cell, row in gains["cells"].items():
        assert row["n"] == cells[cell]["n"] and row["few_faces"] == (row["n"] < 20)
        for key in ("std_psnr", "std_ssim", "std_lpips", "ref_psnr"):
            theirs = columns[best[key]["baseline"]]["demographics"]["race_gender"][cell][key]
            expected = cells[cell][key] - theirs if BEST_ON[key] else theirs - cells[cell][key]
            assert row[key]["gain"] == pytest.approx(expected, abs=1e-9)
            assert row[key]["low"] - 1e-9 <= row[key]["gain"] <= row[key]["high"] + 1e-9
        assert "identity_same" not in row  # --no-identity: no identity gain, not a made-up zero
    assert gains["spread"]["std_psnr"]["gap"] >= 0
    assert all("gain_over_best_classical" not in columns[name] for name in ("navier-stokes", "biharmonic"))

    # One stdout line per model naming the gain and the fill it is over.
    line = next(x for x in stdout.splitlines() if x.startswith("m vs best classical: "))
    psnr = gains["buckets"]["Average"]["std_psnr"]
    assert f"std_psnr {psnr:+.2f} dB ({best['std_psnr']['baseline']})" in line
    assert f"std_lpips {gains['buckets']['Average']['std_lpips']:+.4f} ({best['std_lpips']['baseline']})" in line

    report = (out / "report.md").read_text()
    assert "## Best classical fill per metric" in report
    assert "### m: gain over the best classical fill per hole-ratio bucket" in report
    assert f"| Average | {psnr:+.2f} |" in report
    assert f"PSNR std (dB) vs {best['std_psnr']['baseline']}" in report
    assert "## Fairness as gain over the best classical fill" in report
    assert "### m: gain over the best classical fill per race × gender cell" in report
    assert "⚠" in report  # shards64 cells hold fewer than 20 faces

    # What a weights card records from this report (export --metrics): the gain over the best fill too.
    from inpaint.evaluation.averages import evaluation_averages

    card_metrics = evaluation_averages(out / "metrics.json", "m")
    assert card_metrics["best_classical"] == best
    assert card_metrics["gain_over_best_classical"] == gains["buckets"]["Average"]
    assert set(card_metrics["baselines"]) == {"navier-stokes", "biharmonic"}


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

    # Not asked for explicitly: the default Navier–Stokes column is left out, biharmonic (scikit-image)
    # is still scored and is then the best classical fill on every metric; the report says why.
    weights = make_weights(tmp_path / "m.pt", seed=0)
    report, data = _evaluated(shards64, weights, tmp_path / "no_cv2")
    assert "- Classical baselines: **biharmonic** (`skimage.restoration.inpaint_biharmonic`) — navier-stokes left out: " \
           "OpenCV is not installed; pip install 'facefill[baselines]'" in report
    assert [m["name"] for m in data["models"]] == ["biharmonic", "m"]
    assert {entry["baseline"] for entry in data["best_classical"].values()} == {"biharmonic"}
    assert "cells" not in data["models"][1]["gain_over_best_classical"]  # --no-demographics: per bucket only

    # Neither library: no column, no gain, and the report says why.
    for module in ("skimage", "skimage.restoration"):  # an imported submodule would be found without its parent
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError, match=r"needs scikit-image.*facefill\[baselines\]"):
        main(["--baseline", "biharmonic", "--data", str(shards64), "--out", str(tmp_path / "out"), *FAST])
    report, data = _evaluated(shards64, weights, tmp_path / "none")
    assert "- Classical baselines: **none** — navier-stokes, biharmonic left out: OpenCV and scikit-image are not " \
           "installed; pip install 'facefill[baselines]'" in report
    assert [m["name"] for m in data["models"]] == ["m"] and data["best_classical"] == {}
    assert "gain_over_best_classical" not in data["models"][0] and "no classical fill" in data["gain_reason"]


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
