"""Identity preservation: is the repaired face still the same person?

Uses dlib's ResNet face descriptor (128-d; the model behind the ``face_recognition`` library,
customary same-person threshold 0.6) from the optional ``[identity]`` extra: ``dlib-bin``
(prebuilt dlib) and ``face-recognition-models`` (the model files). The model files are located
with :func:`importlib.util.find_spec` without importing that package, because its ``__init__``
needs ``pkg_resources``, which new Pythons no longer ship. Without the extra, callers get a reason
string and report identity as unavailable.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

#: The customary same-person threshold of dlib's descriptor (``face_recognition``'s tolerance).
SAME_PERSON_THRESHOLD = 0.6
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
INSTALL_HINT = "pip install 'facefill[identity]' (dlib-bin and face-recognition-models)"


def models_dir() -> Path | None:
    """Folder of the ``face_recognition_models`` data files, found without importing the package."""
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if folder.is_dir():
            return folder
    return None


def _import_dlib() -> Any:
    import dlib  # noqa: PLC0415 - optional dependency, imported only when asked for

    return dlib


def unavailable_reason(files: tuple[str, ...] = ()) -> str:
    """Empty when dlib and the model files it needs (``files`` of face-recognition-models; by
    default the descriptor's) are there, else why not, naming the extra to install."""
    try:
        _import_dlib()
    except ImportError as exc:
        return f"dlib is not installed ({exc}): {INSTALL_HINT}"
    folder = models_dir()
    if folder is None:
        return f"face-recognition-models is not installed: {INSTALL_HINT}"
    for name in files or (DESCRIPTOR_FILE, LANDMARKS_FILE):
        if not (folder / name).is_file():
            return f"{folder / name} is missing: reinstall face-recognition-models ({INSTALL_HINT})"
    return ""


class FaceDescriber:
    """dlib face descriptors of aligned face crops.

    The evaluation faces are already aligned crops, so the whole image is the face box and the
    5-point landmark model only fixes the descriptor's own alignment; no detector runs (it misses
    faces in small crops and would make the distance depend on detection luck).
    """

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        dlib = _import_dlib()
        folder = models_dir()
        assert folder is not None
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(folder / LANDMARKS_FILE))
        self._encoder = dlib.face_recognition_model_v1(str(folder / DESCRIPTOR_FILE))

    def describe(self, images: np.ndarray) -> np.ndarray:
        """(N,H,W,3) uint8 RGB aligned crops → (N,128) float64 descriptors."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"describe needs (N,H,W,3) uint8 RGB images, got {images.shape} {images.dtype}")
        dlib = self._dlib
        crops, shapes = [], []
        for image in images:
            image = np.ascontiguousarray(image)
            h, w = image.shape[:2]
            box = dlib.rectangle(0, 0, w - 1, h - 1)
            crops.append(image)
            shapes.append(self._landmarks(image, box))
        out = np.empty((len(crops), 128), dtype=np.float64)
        for i, (image, shape) in enumerate(zip(crops, shapes)):
            out[i] = np.asarray(self._encoder.compute_face_descriptor(image, shape))
        return out

    def distance(self, images_a: np.ndarray, images_b: np.ndarray) -> np.ndarray:
        """Euclidean descriptor distance per pair of crops, (N,)."""
        return np.linalg.norm(self.describe(images_a) - self.describe(images_b), axis=1)

    def close(self) -> None:
        """Release resources (a no-op here; the process-pool variant stops its workers)."""


_WORKER_DESCRIBER: FaceDescriber | None = None


def _worker_init() -> None:
    global _WORKER_DESCRIBER
    _WORKER_DESCRIBER = FaceDescriber()


def _worker_describe(images: np.ndarray) -> np.ndarray:
    assert _WORKER_DESCRIBER is not None
    return _WORKER_DESCRIBER.describe(images)


class ParallelFaceDescriber(FaceDescriber):
    """The same descriptors computed by a pool of worker processes.

    dlib computes one descriptor at a time on one core (~10/s for 128-px crops), which makes
    identity the slowest metric of an evaluation; on a many-core GPU node a pool brings it back
    in line with the generator. Workers are spawned (not forked) so no torch/OpenMP state is
    inherited.
    """

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        super().__init__()
        self.workers = workers
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_worker_init)

    def describe(self, images: np.ndarray) -> np.ndarray:
        if len(images) < 2:
            return super().describe(images)
        chunks = np.array_split(images, min(self.workers, len(images)))
        return np.concatenate(list(self._pool.map(_worker_describe, chunks)))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def try_face_describer(workers: int = 1) -> tuple[FaceDescriber | None, str]:
    """(describer, "") when the extra is installed, else (None, reason); ``workers`` > 1 gives a
    process pool (close it with ``.close()``)."""
    reason = unavailable_reason()
    if reason:
        return None, reason
    try:
        return (ParallelFaceDescriber(workers) if workers > 1 else FaceDescriber()), ""
    except RuntimeError as exc:  # a model file that dlib cannot parse
        return None, str(exc)


class FaceDetector:
    """dlib's HOG frontal face detector (no model file needed), for finding the face around a hole."""

    def __init__(self) -> None:
        self._detector = _import_dlib().get_frontal_face_detector()

    def detect(self, image: np.ndarray, upsample: int = 0, max_side: int = 1024) -> list[tuple[int, int, int, int]]:
        """Face boxes (left, top, right, bottom) of an (H,W,3) uint8 RGB image, largest first.

        Large photos are searched at ``max_side`` px (HOG detection time grows with the pixel
        count, and faces worth repairing are not tiny), boxes mapped back to full resolution.
        """
        height, width = image.shape[:2]
        scale = min(1.0, max_side / float(max(height, width)))
        if scale < 1.0:
            from PIL import Image

            small = Image.fromarray(image).resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR)
            image = np.asarray(small)
        rects = self._detector(np.ascontiguousarray(image), upsample)
        boxes = [(int(r.left() / scale), int(r.top() / scale), int(r.right() / scale), int(r.bottom() / scale)) for r in rects]
        return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


def try_face_detector() -> FaceDetector | None:
    """The detector when dlib is installed, else None (callers fall back to a box around the hole)."""
    try:
        return FaceDetector()
    except ImportError:
        return None
