"""``jobs.submit --then-evaluate``: the evaluation part scores every classical fill the node can
(evaluate's default: Navier–Stokes with OpenCV, biharmonic with scikit-image), and its walltime is
sized for each of them, biharmonic at its own CPU cost."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from jobs.options import build_parser, parse, resolve
from jobs.walltime import EVAL_PAIRS

ARGV = ["--executor", "local", "--model", "2", "--then-evaluate"]
#: scikit-image's biharmonic fill of one 128-px face on one core (~40 ms, 2-5x Navier-Stokes).
BIHARMONIC_S = 0.04


def _resolve_without(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *missing: str):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    try:
        return resolve(parse([*ARGV, "--run-dir", str(tmp_path / "run")]), check_paths=False)
    finally:
        monkeypatch.setattr(importlib.util, "find_spec", real)


def test_the_evaluation_walltime_counts_the_biharmonic_column_where_scikit_image_is_installed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    both = _resolve_without(monkeypatch, tmp_path)  # OpenCV and scikit-image are in [dev]
    no_skimage = _resolve_without(monkeypatch, tmp_path, "skimage")
    neither = _resolve_without(monkeypatch, tmp_path, "skimage", "cv2")
    # No --baseline in the command: the node scores what it has, and a node without a library
    # scores fewer columns instead of failing; the walltime is sized for what is installed here.
    assert both.evaluate_argv() == no_skimage.evaluate_argv() == neither.evaluate_argv()
    assert "--baseline" not in both.evaluate_argv() and "--no-baseline" not in both.evaluate_argv()
    assert neither.eval_walltime_s < no_skimage.eval_walltime_s < both.eval_walltime_s
    # The biharmonic column costs at least its own CPU time over the whole protocol, on one core.
    assert both.eval_walltime_s - no_skimage.eval_walltime_s >= EVAL_PAIRS * BIHARMONIC_S
    help_text = " ".join(build_parser().format_help().split())
    assert "biharmonic" in help_text and "scikit-image" in help_text
