"""What ``python -m inpaint.predict`` tells a first-time user: whether a face was
found and which region the model saw, and that a smoke model is plumbing, not quality."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from eval_support import make_weights, run_predict
from test_predict import _mask, _photo, with_sha256


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_sha256(make_weights(tmp_path_factory.mktemp("weights") / "smoke.pt", seed=0))


def _with_card(weights: Path, out: Path, name: str, images: int) -> Path:
    """A copy of ``weights`` whose card says another config name and training length."""
    out.write_bytes(weights.read_bytes())
    card = json.loads(weights.with_suffix(".json").read_text())
    card["config"]["name"] = name
    card["images_seen"] = images
    out.with_suffix(".json").write_text(json.dumps(card))
    return out


def test_a_smoke_model_is_called_plumbing_and_a_trained_one_is_not(data_root: Path, smoke: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(data_root, tmp_path / "photo.png", (120, 100))
    mask = _mask(tmp_path / "mask.png", (120, 100), (40, 30, 70, 60))
    common = ["--image", str(photo), "--mask", str(mask), "--out", str(tmp_path / "out.png"), "--no-face-detect"]
    code, out, err = run_predict([*common, "--weights", str(smoke)], capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "smoke model" in line]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {smoke} is a smoke model (config smoke")
    assert "plumbing" in lines[0] and "noise" in lines[0]

    short = _with_card(smoke, tmp_path / "short.pt", "quarter", 600)
    code, out, err = run_predict([*common, "--weights", str(short)], capsys)
    assert code == 0 and "smoke model (trained on 600 images)" in err

    trained = _with_card(smoke, tmp_path / "trained.pt", "quarter", 24_000)
    code, out, err = run_predict([*common, "--weights", str(trained)], capsys)
    assert code == 0 and "warning" not in err, err


def test_it_says_whether_a_face_was_found_and_which_square_the_model_saw(data_root: Path, smoke: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dlib", reason="the face detector is dlib's (the [identity] extra)")
    photo = _photo(data_root, tmp_path / "photo.png")                      # a 300-px face in a 600x400 scene
    on_face = _mask(tmp_path / "face.png", (600, 400), (270, 170, 330, 230))
    common = ["--image", str(photo), "--out", str(tmp_path / "out.png"), "--weights", str(smoke)]
    code, out, err = run_predict([*common, "--mask", str(on_face)], capsys)
    assert code == 0, err
    assert out.startswith("face found at (") and "around it (seen at 64 px)" in out, out

    code, out, err = run_predict([*common, "--mask", str(on_face), "--no-face-detect"], capsys)
    assert code == 0, err
    assert out.startswith("face not searched (--no-face-detect); inpainted the ") and "around the hole" in out

    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 200), (40, 90, 160)).save(blank)                # nothing but sky
    sky_hole = _mask(tmp_path / "sky.png", (300, 200), (100, 60, 160, 120))
    code, out, err = run_predict(["--image", str(blank), "--mask", str(sky_hole), "--out", str(tmp_path / "sky-out.png"),
                           "--weights", str(smoke)], capsys)
    assert code == 0, err
    assert out.startswith("no face found; inpainted the 122×122-px square at (70, 30) around the hole"), out


def test_weights_by_name(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(data_root, tmp_path / "photo.png", (160, 160))
    mask = _mask(tmp_path / "mask.png", (160, 160), (60, 60, 100, 100))
    code, out, err = run_predict(["--image", str(photo), "--mask", str(mask), "--out", str(tmp_path / "out.png"),
                           "--weights", "quarter-residual", "--no-face-detect"], capsys)
    assert code == 0, err
    assert "smoke" not in err and (tmp_path / "out.png").is_file()
    code, out, err = run_predict(["--image", str(photo), "--mask", str(mask), "--out", str(tmp_path / "out.png"),
                           "--weights", "quarter-residul"], capsys)
    assert code == 2 and err.startswith("error: ") and "quarter-residul" in err
