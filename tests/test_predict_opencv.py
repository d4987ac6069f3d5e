"""``inpaint.predict`` with and without OpenCV: a model built on the classical fill needs the
``[baselines]`` extra at inference, every other model does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from eval_support import make_weights
from test_models_prefill import NO_OPENCV

RESIDUAL = ["model.generator.prefill=navier-stokes", "model.generator.residual=true"]


def _predict_without_opencv(weights: Path, photo: Path, mask: Path, out: Path) -> subprocess.CompletedProcess:
    code = NO_OPENCV + ("from inpaint.core.cli import run_cli\nfrom inpaint.predict import main\n"
                        f"run_cli(main, ['--image', {str(photo)!r}, '--mask', {str(mask)!r}, '--out', {str(out)!r}, "
                        f"'--weights', {str(weights)!r}, '--no-face-detect', '--quiet'])")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_without_opencv_predict_works_and_a_fill_based_model_names_the_extra(data_root: Path, tmp_path: Path) -> None:
    face = sorted((data_root / "faces" / "utkface").iterdir())[0]
    photo = tmp_path / "photo.png"
    Image.open(face).convert("RGB").resize((100, 100)).save(photo)
    mask = Image.new("L", (100, 100), 0)
    ImageDraw.Draw(mask).ellipse((30, 30, 60, 60), fill=255)
    mask.save(tmp_path / "mask.png")

    plain = _predict_without_opencv(make_weights(tmp_path / "plain.pt", seed=0), photo, tmp_path / "mask.png",
                                    tmp_path / "plain.png")
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "plain.png").is_file()

    residual = _predict_without_opencv(make_weights(tmp_path / "residual.pt", seed=0, overrides=RESIDUAL), photo,
                                       tmp_path / "mask.png", tmp_path / "residual.png")
    assert residual.returncode == 2
    assert residual.stderr.startswith("error: model.generator.prefill") and "facefill[baselines]" in residual.stderr
    assert len(residual.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "residual.png").exists()
