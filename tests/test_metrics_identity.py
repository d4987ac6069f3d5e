"""Identity distance with dlib's face descriptor on real UTKFace crops (the optional extra)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from inpaint.metrics import identity
def _faces(data_root: Path, n: int) -> np.ndarray:
    folder = data_root / "faces" / "utkface"
    names = sorted(os.listdir(folder))[:n]
    return np.stack([np.asarray(Image.open(folder / name).convert("RGB").resize((128, 128), Image.BICUBIC)) for name in names])


def test_identity_separates_same_person_from_different_people(data_root: Path) -> None:
    pytest.importorskip("dlib", reason="the [identity] extra (dlib-bin) is not installed")
    describer, reason = identity.try_face_describer()
    assert describer is not None, reason
    faces = _faces(data_root, 4)
    blurred = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(1.0))) for f in faces])
    assert np.all(describer.distance(faces, faces) == 0.0)
    same = describer.distance(faces, blurred)
    different = describer.distance(faces, np.roll(faces, 1, axis=0))
    assert same.mean() < identity.SAME_PERSON_THRESHOLD < different.mean()


def test_identity_unavailable_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dlib() -> None:
        raise ImportError("No module named 'dlib'")

    monkeypatch.setattr(identity, "_import_dlib", no_dlib)
    describer, reason = identity.try_face_describer()
    assert describer is None
    assert "dlib is not installed" in reason and "facefill[identity]" in reason
    assert identity.try_face_detector() is None


def test_worker_pool_gives_the_same_descriptors(data_root: Path) -> None:
    pytest.importorskip("dlib", reason="the [identity] extra (dlib-bin) is not installed")
    faces = _faces(data_root, 4)
    single, _ = identity.try_face_describer()
    pooled, reason = identity.try_face_describer(workers=2)
    assert isinstance(pooled, identity.ParallelFaceDescriber), reason
    try:
        assert np.array_equal(pooled.describe(faces), single.describe(faces))
    finally:
        pooled.close()
