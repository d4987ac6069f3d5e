"""``python -m inpaint.predict`` on inputs that used to cost memory, time or the user's files: a
long thin photo with a wide hole, an absurd --feather, --out naming the photo itself, folder mode
with two photos of one stem, and a model whose outputs are not finite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from eval_support import make_weights, run_predict
from inpaint import predict
from inpaint.core.errors import CheckpointError
from inpaint.inference.crop import context_box
from inpaint.inference.inpainter import Inpainter

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 64-px smoke generator in the shipped format, its card with the file's sha256."""
    import json

    from inpaint.core.shard_format import sha256_file

    path = make_weights(tmp_path_factory.mktemp("weights") / "smoke.pt", seed=0)
    card = json.loads(path.with_suffix(".json").read_text())
    card["sha256"] = sha256_file(path)
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


def _photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _mask(path: Path, size: tuple[int, int], box: tuple[int, int, int, int]) -> Path:
    m = np.zeros((size[1], size[0]), dtype=np.uint8)
    m[box[1]:box[3], box[0]:box[2]] = 255
    Image.fromarray(m).save(path)
    return path


#: Runs a command under an 8 GB address-space limit (so a regression fails fast instead of
#: swapping the machine) and prints the peak resident memory of that command, in kB.
PEAK_RSS = textwrap.dedent("""
    import resource, subprocess, sys
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    code = subprocess.run(sys.argv[1:]).returncode
    print("peak_kb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
    sys.exit(code)
""")


def test_a_wide_hole_in_a_long_thin_photo_stays_small_in_memory(weights: Path, tmp_path: Path) -> None:
    size = (20000, 20)
    photo = _photo(tmp_path / "thin.png", size)
    mask = _mask(tmp_path / "mask.png", size, (100, 4, 19900, 16))
    out = tmp_path / "out.png"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "inpaint.predict", "--image", str(photo),
                             "--mask", str(mask), "--out", str(out), "--weights", str(weights), "--no-face-detect",
                             "--device", "cpu"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_gb = int(result.stderr.split("peak_kb")[-1].split()[0]) / 2**20
    assert peak_gb < 3.0, f"peak RSS {peak_gb:.2f} GB"
    before, after = np.asarray(Image.open(photo)), np.asarray(Image.open(out))
    hole = np.asarray(Image.open(mask)) > 127
    assert after.shape == before.shape and np.array_equal(after[~hole], before[~hole])
    print(f"peak RSS {peak_gb:.2f} GB, {time.monotonic() - started:.1f} s")


def test_the_context_square_never_outgrows_the_photo() -> None:
    hole = np.zeros((20, 20000), dtype=bool)
    hole[4:16, 100:19900] = True
    box = context_box(hole)
    assert box.side <= 20000 and box.left <= 100 and box.right >= 19900 and box.top <= 4 and box.bottom >= 16
    tall = context_box(hole.T.copy())
    assert tall.side <= 20000


def test_a_square_inside_the_photo_is_seen_exactly_as_before() -> None:
    """Padding at the model's scale changes nothing when the square needs no padding."""
    import torch.nn.functional as F

    from inpaint.inference.crop import extract

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    hole = np.zeros((300, 400), dtype=bool)
    hole[120:170, 180:240] = True
    inpainter = Inpainter(lambda masked, mask: masked, 64)
    prepared = inpainter.prepare(Image.fromarray(rgb), hole)
    box = prepared.box
    assert box.left >= 0 and box.top >= 0 and box.right <= 400 and box.bottom <= 300
    crop = torch.from_numpy(np.ascontiguousarray(extract(rgb, box))).permute(2, 0, 1)[None].float()
    crop = F.interpolate(crop, size=(64, 64), mode="bicubic", antialias=True, align_corners=False)
    assert torch.equal(prepared.image, (crop.clamp(0, 255) / 127.5 - 1.0)[0])


def test_a_square_past_the_border_keeps_the_pixels_outside_the_hole() -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (90, 300, 3), dtype=np.uint8)
    hole = np.zeros((90, 300), dtype=bool)
    hole[2:40, 250:298] = True
    inpainter = Inpainter(lambda masked, mask: torch.zeros_like(masked), 64)
    out = np.asarray(inpainter.inpaint(Image.fromarray(rgb), hole))
    assert inpainter.prepare(Image.fromarray(rgb), hole).box.top < 0  # the square runs past the top
    assert np.array_equal(out[~hole], rgb[~hole])
    assert np.all(np.abs(out[21, 274].astype(int) - 128) <= 1)  # deep in the hole: the model's grey


def test_a_feather_wider_than_the_photo_is_refused_at_once(weights: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(tmp_path / "photo.png", (200, 150))
    mask = _mask(tmp_path / "mask.png", (200, 150), (60, 40, 140, 110))
    started = time.monotonic()
    code, _, err = run_predict(["--image", str(photo), "--mask", str(mask), "--out", str(tmp_path / "out.png"),
                         "--weights", str(weights), "--no-face-detect", "--feather", "100000"], capsys)
    assert code == 2 and err.startswith("error: --feather 100000") and "150" in err and err.count("\n") == 1, err
    assert time.monotonic() - started < 30 and not (tmp_path / "out.png").exists()
    code, _, err = run_predict(["--image", str(photo), "--mask", str(mask), "--out", str(tmp_path / "out.png"),
                         "--weights", str(weights), "--no-face-detect", "--feather", "150"], capsys)
    assert code == 0, err


def test_out_naming_the_photo_or_the_mask_is_refused(weights: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(tmp_path / "photo.png", (120, 100))
    mask = _mask(tmp_path / "mask.png", (120, 100), (40, 30, 70, 60))
    original = photo.read_bytes()
    for out in (photo, tmp_path / "." / "photo.png", mask):
        code, _, err = run_predict(["--image", str(photo), "--mask", str(mask), "--out", str(out), "--weights", str(weights)], capsys)
        assert code == 2 and err.startswith("error: --out") and "overwrite" in err and err.count("\n") == 1, err
    assert photo.read_bytes() == original


def test_out_dir_naming_the_image_dir_is_refused(weights: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir(), masks.mkdir()
    _photo(photos / "a.png", (120, 100))
    _mask(masks / "a.png", (120, 100), (40, 30, 70, 60))
    original = (photos / "a.png").read_bytes()
    for out_dir, opt in ((photos, "--image-dir"), (masks, "--mask-dir")):
        code, _, err = run_predict(["--image-dir", str(photos), "--mask-dir", str(masks), "--out-dir", str(out_dir),
                             "--weights", str(weights)], capsys)
        assert code == 2 and err.startswith("error: --out-dir") and opt in err and err.count("\n") == 1, err
    assert (photos / "a.png").read_bytes() == original


def test_two_photos_of_one_stem_are_both_refused_and_counted(weights: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    photos, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "out"
    photos.mkdir(), masks.mkdir()
    _photo(photos / "a.png", (120, 100), seed=1)
    _photo(photos / "a.jpg", (120, 100), seed=2)
    _photo(photos / "b.png", (120, 100), seed=3)
    for stem in ("a", "b"):
        _mask(masks / f"{stem}.png", (120, 100), (40, 30, 70, 60))
    code, stdout, err = run_predict(["--image-dir", str(photos), "--mask-dir", str(masks), "--out-dir", str(out),
                              "--weights", str(weights), "--quiet"], capsys)
    assert code == 1
    assert "wrote 1 of 3 photos" in stdout, stdout
    listed = {line.split(":")[0].strip(): line for line in err.splitlines() if line.startswith("  ")}
    assert "2 failed" in err and set(listed) == {"a.png", "a.jpg"}, err
    assert all("a.png" in line and "a.jpg" in line and "stem" in line for line in listed.values()), err
    assert sorted(p.name for p in out.iterdir()) == ["b.png"]
    assert "stem" in predict.build_parser().format_help()


def test_a_model_that_outputs_nan_or_inf_is_an_error_not_a_black_hole(tmp_path: Path) -> None:
    from inpaint.inference.folder import predict_folder

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    hole = np.zeros((100, 120), dtype=bool)
    hole[30:60, 40:70] = True
    for bad in (float("nan"), float("inf"), -float("inf")):
        inpainter = Inpainter(lambda masked, mask, bad=bad: torch.full_like(masked, bad), 64)
        with pytest.raises(CheckpointError, match="NaN or inf") as exc:
            inpainter.repair(rgb, hole)
        assert "\n" not in str(exc.value)

    photos, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "out"
    photos.mkdir(), masks.mkdir()
    for stem in ("a", "b"):
        _photo(photos / f"{stem}.png", (120, 100))
        _mask(masks / f"{stem}.png", (120, 100), (40, 30, 70, 60))

    def half_broken(masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        output = torch.zeros_like(masked)
        output[0, 0, 5, 5] = float("nan")  # the first photo of the batch only
        return output

    written, failures, _, _ = predict_folder(Inpainter(half_broken, 64), photos, masks, out, "white", 4, quiet=True)
    assert written == 1 and [(p.name, "NaN or inf" in why) for p, why in failures] == [("a.png", True)]
    assert sorted(p.name for p in out.iterdir()) == ["b.png"]
