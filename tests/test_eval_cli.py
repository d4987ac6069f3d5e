"""``python -m inpaint.evaluate`` end to end on 64-px shards with smoke-size weights files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from inpaint.core.buckets import BUCKET_LABELS
from inpaint.core.errors import CheckpointError, ConfigError, DataError
from inpaint.evaluate import main
from eval_support import make_weights

REPO = Path(__file__).resolve().parents[1]


def test_two_models_get_one_column_each_on_identical_pairs(shards64: Path, tmp_path: Path) -> None:
    a = make_weights(tmp_path / "model_a.pt", seed=1)
    b = make_weights(tmp_path / "model_b.pt", seed=2)
    common = ["--data", str(shards64), "--pairs-per-bucket", "2", "--no-identity", "--quiet", "--batch-size", "8"]
    assert main(["--checkpoint", str(a), "--checkpoint", str(b), "--out", str(tmp_path / "both"),
                 "--samples", str(tmp_path / "samples"), *common]) == 0
    assert main(["--checkpoint", str(b), "--out", str(tmp_path / "only_b"), "--no-demographics", "--no-baseline", *common]) == 0

    # Same pairs whatever the models, the run and the flags.
    assert (tmp_path / "both" / "pairs.json").read_bytes() == (tmp_path / "only_b" / "pairs.json").read_bytes()
    both = json.loads((tmp_path / "both" / "metrics.json").read_text())
    only_b = json.loads((tmp_path / "only_b" / "metrics.json").read_text())
    # The classical fills are columns by default (OpenCV and scikit-image are in [dev]), first: the
    # anchors the models are read against.
    assert [m["name"] for m in both["models"]] == ["navier-stokes", "biharmonic", "model_a", "model_b"]
    assert [m["name"] for m in only_b["models"]] == ["model_b"]  # --no-baseline
    assert both["models"][3]["buckets"] == only_b["models"][0]["buckets"]  # model_b scored identically
    assert both["models"][2]["buckets"]["Average"]["std_l1"] != both["models"][3]["buckets"]["Average"]["std_l1"]
    assert both["models"][0]["buckets"]["Average"]["std_l1"] < both["models"][2]["buckets"]["Average"]["std_l1"]
    assert [bool(m.get("gain_over_best_classical")) for m in both["models"]] == [False, False, True, True]
    assert "best_classical" in both and only_b["best_classical"] == {}
    assert both["lpips"]["available"] and not both["identity"]["available"]
    assert both["protocol"]["balanced_pairs"] > 0 and only_b["protocol"]["balanced_pairs"] == 0
    assert only_b["models"][0]["demographics"] == {}

    report = (tmp_path / "both" / "report.md").read_text()
    assert "| Hole ratio | navier-stokes | biharmonic | model_a | model_b |" in report
    assert "### model_b: gain over the best classical fill per race × gender cell" in report
    assert "Classical baselines: **none** — skipped (--no-baseline)" in (tmp_path / "only_b" / "report.md").read_text()
    assert "Identity: **unavailable** — skipped (--no-identity)" in report
    assert all(f"| {label} |" in report for label in (*BUCKET_LABELS, "Average"))

    grid = Image.open(tmp_path / "both" / "grid.png")
    assert grid.width > 6 * 64 and grid.height > 6 * 64  # 6 columns (input, 2 baselines, 2 models, truth), 6 bucket rows
    for name in ("navier-stokes", "biharmonic", "model_a", "model_b"):
        written = list((tmp_path / "samples" / name).rglob("*.png"))
        assert len(written) == 12 + both["protocol"]["balanced_pairs"]  # every composite, test and balanced
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_bad_inputs_are_clear_errors_and_write_nothing(shards64: Path, tmp_path: Path) -> None:
    weights_128 = make_weights(tmp_path / "big.pt", seed=0, overrides=["data.size=128"])
    out = ["--out", str(tmp_path / "out"), "--quiet"]
    cases = [
        (["--data", str(shards64)], ConfigError, "nothing to evaluate"),
        (["--data", str(shards64), "--checkpoint", str(weights_128)], ConfigError, "128-px model but the shards"),
        (["--data", str(shards64), "--checkpoint", str(tmp_path / "missing.pt")], CheckpointError, "does not exist"),
        (["--data", str(tmp_path / "nowhere"), "--checkpoint", str(weights_128)], DataError, "nowhere"),
        (["--data", str(shards64), "--checkpoint", str(weights_128), "--pairs", str(tmp_path / "no.json")], DataError, "no.json"),
    ]
    for argv, error, message in cases:
        with pytest.raises(error, match=message):
            main([*argv, *out])
    assert not (tmp_path / "out").exists()  # nothing written for a failed evaluation

    # Through the real entry point: one line on stderr, exit status 2.
    proc = subprocess.run([sys.executable, "-m", "inpaint.evaluate", "--data", str(shards64), *out],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: nothing to evaluate") and proc.stderr.count("\n") == 1


def test_every_option_says_what_it_does_in_help() -> None:
    from inpaint.evaluation.options import build_parser

    parser = build_parser()
    silent = [a.option_strings[-1] for a in parser._actions if a.option_strings and not a.help]
    assert silent == []
    text = parser.format_help()
    for option in ("--pairs-per-bucket", "--batch-size", "--device", "--baseline", "--no-baseline"):
        assert option in text
