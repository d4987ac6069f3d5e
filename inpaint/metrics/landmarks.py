"""Facial landmarks of aligned face crops: dlib's 68-point model (the iBUG 300-W layout).

The evaluation places holes over the eyes, the nose and the mouth (those are the holes a
new user tries first, and the ones a classical fill turns into smooth skin), so it needs to know
where they are on every face. The model file ships with ``face-recognition-models``, the same
optional ``[identity]`` extra as the face descriptors in :mod:`inpaint.metrics.identity`; without it the
caller gets a :class:`~inpaint.core.errors.ConfigError` naming the extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from inpaint.core.errors import ConfigError
from inpaint.metrics import identity
from inpaint.metrics.identity import models_dir

LANDMARKS_68_FILE = "shape_predictor_68_face_landmarks.dat"

# Point ranges of the 68-point layout (0-based, as dlib numbers them). "Right" is the subject's.
JAW = range(0, 17)
BROWS = range(17, 27)
NOSE = range(27, 36)
RIGHT_EYE = range(36, 42)
LEFT_EYE = range(42, 48)
MOUTH = range(48, 68)

#: Side of the copy that the detector and the shape predictor see. dlib's HOG detector only finds
#: faces of about 80 px and more, and the evaluation crops are 64 or 128 px; on a 256-px copy both
#: sizes are in its range, and the predictor places points finer than the original's pixels.
DETECT_SIDE = 256
#: Detector pyramid upsampling of that copy. Measured on the 290 balanced faces at 128 px: 1 finds
#: 286 (0 finds 284) at ~50 ms a face, ~15 s for the split on one quiet core.
DETECT_UPSAMPLE = 1


def _import_dlib() -> Any:
    import dlib  # noqa: PLC0415 - optional dependency, imported only when asked for

    return dlib


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the eye centres of (68,2) landmarks: the face's own scale."""
    points = np.asarray(points, dtype=np.float64)
    return float(np.linalg.norm(points[list(RIGHT_EYE)].mean(axis=0) - points[list(LEFT_EYE)].mean(axis=0)))


def unavailable_reason() -> str:
    """Empty when landmarks can be found, else why not (naming the extra to install)."""
    return identity.unavailable_reason((LANDMARKS_68_FILE,))


@dataclass(frozen=True)
class Landmarks:
    """The 68 points of one face, (x, y) in pixels of the image they were found on (pixel centres
    at integer coordinates), and whether dlib's detector found the face."""

    points: np.ndarray
    detected: bool

    def inter_ocular(self) -> float:
        """Distance between the two eye centres (see :func:`inter_ocular`)."""
        return inter_ocular(self.points)


class LandmarkFinder:
    """dlib's HOG face detector and 68-point shape predictor, for aligned face crops.

    The detector runs on an upsampled copy (see :data:`DETECT_SIDE`). When it finds no face, which
    happens on a few aligned crops (profiles, hands over the face), the whole image is taken as the
    face box: the crops are aligned, so that box is close to what the detector returns (on the
    faces it does find, points from the whole-image box lie a median 1 % of the inter-ocular
    distance from the detected ones). :attr:`Landmarks.detected` records which happened.
    """

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise ConfigError(f"facial landmarks need dlib's 68-point model, but {reason}")
        dlib = _import_dlib()
        folder = models_dir()
        assert folder is not None
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(folder / LANDMARKS_68_FILE))

    def find(self, image: np.ndarray) -> Landmarks:
        """The landmarks of one (H,W,3) uint8 RGB aligned face crop."""
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(f"find needs an (H,W,3) uint8 RGB image, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        big = np.ascontiguousarray(np.asarray(Image.fromarray(image).resize((DETECT_SIDE, DETECT_SIDE), Image.BICUBIC)))
        rects = list(self._detector(big, DETECT_UPSAMPLE))
        detected = bool(rects)
        box = (max(rects, key=lambda r: r.area()) if detected
               else self._dlib.rectangle(0, 0, DETECT_SIDE - 1, DETECT_SIDE - 1))
        shape = self._predictor(big, box)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        # Pixel centres sit at i + 0.5 in continuous coordinates, in both images.
        scale = np.array([width / DETECT_SIDE, height / DETECT_SIDE])
        return Landmarks(points=(points + 0.5) * scale - 0.5, detected=detected)
