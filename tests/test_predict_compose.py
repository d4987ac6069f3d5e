"""Context box and feathered compositing of the inference pipeline."""

from __future__ import annotations

import numpy as np

from inpaint.inference.compose import auto_feather, feather_alpha, paste_hole
from inpaint.inference.crop import context_box, extract, hole_bbox


def test_feather_ramps_inside_the_hole_only() -> None:
    hole = np.zeros((20, 20), dtype=bool)
    hole[5:15, 5:15] = True
    alpha = feather_alpha(hole, feather=3)
    assert np.all(alpha[~hole] == 0)
    assert alpha[5, 10] == 0.25 and alpha[6, 10] == 0.5 and alpha[7, 10] == 0.75  # d / (feather + 1)
    assert np.all(alpha[8:12, 8:12] == 1.0)
    assert np.array_equal(feather_alpha(hole, 0), hole.astype(np.float32))
    assert auto_feather(64, 64) == 0 and auto_feather(200, 64) == 4


def test_paste_keeps_outside_bytes_and_blends_the_edge() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    generated = np.full_like(photo, 7)
    hole = np.zeros((30, 40), dtype=bool)
    hole[10:20, 10:30] = True
    out = paste_hole(photo, generated, hole, feather=2)
    assert np.array_equal(out[~hole], photo[~hole])
    assert np.all(out[13:17, 13:27] == 7)  # deep inside: fully generated
    edge = np.rint(photo[10, 20] * (2 / 3) + 7 / 3).astype(np.uint8)
    assert np.array_equal(out[10, 20], edge)  # boundary pixel: 1/3 generated


def test_context_box_holds_the_hole_and_prefers_an_overlapping_face() -> None:
    hole = np.zeros((400, 600), dtype=bool)
    hole[180:260, 300:400] = True
    box = context_box(hole)
    hl, ht, hr, hb = hole_bbox(hole)
    assert box.source == "hole" and box.left <= hl and box.right >= hr and box.top <= ht and box.bottom >= hb
    assert 0 <= box.left and box.right <= 600 and 0 <= box.top and box.bottom <= 400  # fits: stays inside

    face = (250, 100, 450, 300)
    far_face = (0, 0, 60, 60)
    with_face = context_box(hole, [far_face, face])
    assert with_face.source == "face" and with_face.side >= 1.8 * 200
    assert context_box(hole, [far_face]).source == "hole"  # a face away from the hole is ignored

    crop = extract(np.arange(400 * 600).reshape(400, 600), with_face)
    assert crop.shape == (with_face.side, with_face.side)
    # Past the border the photo is edge-replicated, never left as a hole.
    assert not extract(hole, with_face)[: max(0, -with_face.top)].any()


def test_detected_face_sets_the_context_box(data_root) -> None:  # type: ignore[no-untyped-def]
    import os

    import pytest
    from PIL import Image

    pytest.importorskip("dlib", reason="the [identity] extra (dlib-bin) is not installed")
    from inpaint.metrics.identity import try_face_detector

    folder = data_root / "faces" / "utkface"
    canvas = Image.new("RGB", (600, 400), (40, 90, 160))
    canvas.paste(Image.open(folder / sorted(os.listdir(folder))[0]).convert("RGB").resize((300, 300)), (200, 60))
    faces = try_face_detector().detect(np.asarray(canvas))
    assert faces, "dlib finds the face"
    left, top, right, bottom = faces[0]
    assert 180 <= left < right <= 520 and 40 <= top < bottom <= 380  # on the pasted face
    hole = np.zeros((400, 600), dtype=bool)
    hole[200:240, 320:380] = True
    box = context_box(hole, faces)
    assert box.source == "face" and box.side > 300  # the whole face with margin, not just the hole
