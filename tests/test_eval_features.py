"""The "features" mask set: holes over the eyes, the nose and the mouth, placed from
dlib's 68 landmarks on the balanced faces, and ``python -m inpaint.evaluate --masks features``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval_support import make_weights
from inpaint.core.errors import ConfigError, DataError
from inpaint.evaluate import main

pytest.importorskip("dlib", reason="the [identity] extra (dlib-bin) is not installed")


def _balanced_faces(shards: Path) -> list[np.ndarray]:
    from inpaint.io.shards import FaceShards
    from inpaint.render.visual import to_uint8

    faces = FaceShards(shards, "eval_balanced")
    return [to_uint8(faces[i]["image"][None])[0] for i in range(len(faces))]


def _inside(mask: np.ndarray, point: np.ndarray) -> bool:
    x, y = (int(round(v)) for v in point)
    return bool(mask[y, x])


def test_masks_cover_their_own_feature_and_not_the_others_on_real_faces(shards64: Path) -> None:
    from inpaint.evaluation.feature_masks import FEATURES, feature_masks
    from inpaint.metrics.landmarks import LEFT_EYE, MOUTH, RIGHT_EYE, LandmarkFinder

    finder = LandmarkFinder()
    faces = _balanced_faces(shards64)
    assert len(faces) >= 10
    detected = 0
    for image in faces:
        found = finder.find(image)
        detected += found.detected
        points = found.points
        assert points.shape == (68, 2) and found.inter_ocular() > 0.2 * image.shape[1]
        masks = feature_masks(points, *image.shape[:2])
        assert tuple(masks) == FEATURES
        eyes = [points[list(RIGHT_EYE)].mean(0), points[list(LEFT_EYE)].mean(0)]
        nose_tip, mouth = points[30], points[list(MOUTH)].mean(0)
        assert all(_inside(masks["eyes"], e) for e in eyes)
        assert _inside(masks["nose"], nose_tip) and _inside(masks["mouth"], mouth)
        assert not _inside(masks["eyes"], mouth) and not _inside(masks["eyes"], nose_tip)
        assert not any(_inside(masks["mouth"], e) for e in eyes) and not _inside(masks["mouth"], nose_tip)
        assert not any(_inside(masks["nose"], e) for e in eyes) and not _inside(masks["nose"], mouth)
        for name, mask in masks.items():
            assert mask.dtype == bool and 0.01 < mask.mean() < 0.35, (name, mask.mean())
        # Disjoint-ish: the nose bridge starts between the eyes and the philtrum is shared by the nose
        # and mouth margins, but most of each hole is its own; eyes and mouth never touch.
        assert not (masks["eyes"] & masks["mouth"]).any()
        for a, b in (("eyes", "nose"), ("nose", "mouth")):
            assert (masks[a] & masks[b]).sum() < 0.4 * min(masks[a].sum(), masks[b].sum()), (a, b)
        again = feature_masks(finder.find(image).points, *image.shape[:2])  # deterministic
        assert all(np.array_equal(masks[k], again[k]) for k in FEATURES)
    assert detected >= len(faces) - 2  # dlib finds almost every aligned crop on the upsampled copy

    # No face at all: the whole image becomes the face box, and that is recorded.
    flat = np.full((64, 64, 3), 128, dtype=np.uint8)
    fallback = finder.find(flat)
    assert not fallback.detected and fallback.points.shape == (68, 2)


def test_landmarks_without_the_extra_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from inpaint.metrics import identity
    from inpaint.metrics import landmarks
    for module in (identity, landmarks):
        monkeypatch.setattr(module, "models_dir", lambda: None)
    assert "facefill[identity]" in landmarks.unavailable_reason()
    with pytest.raises(ConfigError, match=r"facefill\[identity\]"):
        landmarks.LandmarkFinder()


def _per_feature_identity(per_pair: dict, features: list[str], name: str) -> dict[str, float]:
    dist = np.array(per_pair[name]["identity_distance"], dtype=float)
    feats = np.array(features)
    return {f: float(np.mean(dist[feats == f] < 0.6)) for f in ("eyes", "nose", "mouth")}


def test_evaluate_features_scores_every_column_per_feature_with_identity_and_worst_grid(shards64: Path,
                                                                                        tmp_path: Path) -> None:
    weights = make_weights(tmp_path / "tiny.pt", seed=3)
    out = tmp_path / "feat"
    assert main(["--masks", "features", "--checkpoint", str(weights), "--baseline", "navier-stokes",
                 "--data", str(shards64), "--out", str(out), "--quiet", "--batch-size", "16"]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    faces = metrics["protocol"]["faces"]
    assert metrics["protocol"]["masks"] == "features" and faces == len(_balanced_faces(shards64))
    landmarks = metrics["features"]["landmarks"]
    assert landmarks["detected"] + landmarks["fell_back"] == faces
    assert [m["name"] for m in metrics["models"]] == ["navier-stokes", "tiny"]
    pairs = metrics["features"]["pairs"]
    assert len(pairs) == 3 * faces
    features = [p["feature"] for p in pairs]
    per_pair = metrics["features"]["per_pair"]
    for model in metrics["models"]:
        table = model["features"]
        assert list(table) == ["eyes", "nose", "mouth", "Average"]
        for feature in ("eyes", "nose", "mouth"):
            row = table[feature]
            assert row["n"] == faces
            assert 5 < row["std_psnr"] < 60 and 0 < row["std_ssim"] <= 1 and 0 <= row["std_lpips"] < 1
            assert 0 <= row["identity_same"] <= 1
        kept = _per_feature_identity(per_pair, features, model["name"])
        assert all(table[f]["identity_same"] == pytest.approx(kept[f]) for f in kept)  # the stored distances
        assert table["Average"]["identity_same"] == pytest.approx(np.mean(list(kept.values())))
    # A random tiny model fills its holes with noise: far below the classical fill in PSNR and LPIPS.
    ns, tiny = (m["features"]["Average"] for m in metrics["models"])
    assert ns["std_psnr"] > tiny["std_psnr"] and ns["std_lpips"] < tiny["std_lpips"]

    # The six worst pairs of the first model (by identity distance), and their grid.
    worst = metrics["features"]["worst"]
    assert worst["column"] == "tiny" and len(worst["pairs"]) == 6
    tiny_dist = np.array(per_pair["tiny"]["identity_distance"])
    assert [p["identity_distance"] for p in worst["pairs"]] == pytest.approx(sorted(tiny_dist, reverse=True)[:6])
    grid = Image.open(out / metrics["features"]["grid"])
    assert metrics["features"]["grid"] == "features_worst.png"
    assert grid.height > 6 * 2 * 64 and grid.width > 4 * 2 * 64  # 6 rows; input, 2 columns, truth at 2× scale

    report = (out / "report.md").read_text()
    assert "| Feature | navier-stokes | tiny |" in report
    assert all(f"| {f} |" in report for f in ("eyes", "nose", "mouth", "Average"))
    assert "Identity kept" in report and "features_worst.png" in report
    assert not list(out.rglob("*.tmp-*"))


def test_features_with_baselines_only_shows_the_best_classical_fill(shards64: Path, tmp_path: Path) -> None:
    out = tmp_path / "classical"
    assert main(["--masks", "features", "--baseline", "navier-stokes", "--baseline", "telea", "--no-identity",
                 "--data", str(shards64), "--out", str(out), "--samples", str(tmp_path / "samples"), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    faces = metrics["protocol"]["faces"]
    for name in ("navier-stokes", "telea"):  # --samples: every composite, one folder per feature
        assert [len(list((tmp_path / "samples" / name / f).glob("*.png"))) for f in ("eyes", "nose", "mouth")] == [faces] * 3
    averages = {m["name"]: m["features"]["Average"] for m in metrics["models"]}
    assert set(averages) == {"navier-stokes", "telea"}
    assert all(a["identity_same"] is None for a in averages.values())  # --no-identity: not computed
    best = min(averages, key=lambda n: averages[n]["std_lpips"])  # no identity: ranked by LPIPS
    assert metrics["features"]["worst"]["column"] == best
    assert (out / "features_worst.png").is_file()
    assert "Identity: **unavailable** — skipped (--no-identity)" in (out / "report.md").read_text()


def test_features_bad_inputs_are_clear_errors(shards64: Path, tmp_path: Path) -> None:
    common = ["--masks", "features", "--baseline", "navier-stokes", "--out", str(tmp_path / "out"), "--quiet"]
    # Shards without an eval_balanced split (no labelled faces): named, with the fix.
    no_balanced = tmp_path / "shards"
    no_balanced.mkdir()
    index = json.loads((shards64 / "index.json").read_text())
    index["counts"]["faces"]["eval_balanced"] = 0
    index["shards"] = [s for s in index["shards"] if s.get("split") != "eval_balanced"]
    for shard in index["shards"]:
        (no_balanced / shard["file"]).symlink_to(shards64 / shard["file"])
    (no_balanced / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match="eval_balanced"):
        main([*common, "--data", str(no_balanced)])
    assert not (tmp_path / "out").exists()
