"""Inpainting real photos of any size with a generator trained on fixed-size face crops.

Per photo: choose a square context box (:mod:`inpaint.inference.crop`), resize it to the model's
size, run the generator (several photos per batch), resize the result back and blend it into the
hole only (:mod:`inpaint.inference.compose`). Preparation and finishing are separate steps so
folder mode can batch the model calls across photos and still report each photo's own failure.

It is also the Python API: ``Inpainter.from_pretrained("quarter-residual").repair(photo, mask)``
takes a PIL image or a numpy array (and a mask as either, white or True = hole) and gives the
repaired photo back in the same form, with ``python -m inpaint.predict``'s conventions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from inpaint.core.errors import CheckpointError, ConfigError
from inpaint.inference.compose import auto_feather, paste_hole
from inpaint.inference.crop import Box, Part, context_box, inside_part
from inpaint.models.types import Generator
from inpaint.render.visual import to_uint8

if TYPE_CHECKING:
    from inpaint.inference.loading import InferenceModel

FaceFinder = Callable[[np.ndarray], list[tuple[int, int, int, int]]]
Photo = TypeVar("Photo", Image.Image, np.ndarray)

#: Why the context box was not chosen around a detected face, when no detector ran.
NO_DETECTOR = "not searched: dlib's face detector is not installed (pip install 'facefill[identity]')"


@dataclass
class Prepared:
    """One photo ready for the model."""

    rgb: np.ndarray              # (H,W,3) uint8, the photo's colour pixels
    alpha: np.ndarray | None     # (H,W) uint8 alpha channel kept as is, or None
    mode: str                    # mode to save in ("RGB", "RGBA", "L", "LA")
    hole: np.ndarray             # (H,W) bool, True = hole
    box: Box
    image: torch.Tensor          # (3,S,S) in [-1, 1], the box resized to the model size
    mask: torch.Tensor           # (1,S,S) in {0, 1}
    faces: list[tuple[int, int, int, int]] | None = field(default=None)  # detected (l, t, r, b); None: not searched


def split_photo(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(RGB pixels, alpha or None, output mode): greyscale photos stay greyscale and transparency
    is carried through untouched."""
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        out_mode = "LA" if mode == "LA" else "RGBA"
        return np.asarray(rgba)[..., :3].copy(), np.asarray(rgba)[..., 3].copy(), out_mode
    out_mode = "L" if mode in ("L", "1") else "RGB"
    return np.asarray(img.convert("RGB")).copy(), None, out_mode


def join_photo(rgb: np.ndarray, alpha: np.ndarray | None, mode: str) -> Image.Image:
    """Inverse of :func:`split_photo`."""
    img = Image.fromarray(rgb, "RGB")
    if mode in ("L", "LA"):
        img = img.convert("L")
    if alpha is not None:
        img.putalpha(Image.fromarray(alpha, "L"))
    return img


def _pad_to_model(crop: torch.Tensor, hole: torch.Tensor, part: Part, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``crop`` and ``hole`` (the box's part inside the photo, at the model's scale) padded to the
    model's square: the photo's edge pixels repeated, and no hole."""
    pad = (part.model_left, size - part.model_right, part.model_top, size - part.model_bottom)
    if not any(pad):
        return crop, hole
    return F.pad(crop, pad, mode="replicate"), F.pad(hole, pad, value=0.0)


def check_feather(feather: int | None, shape: tuple[int, int], option: str = "--feather") -> None:
    """A ConfigError for a feather wider than the photo's smaller side: its ramp could never reach
    full strength, so the hole would keep most of its damage, and computing it takes one pass over
    the hole per pixel of width (100000 took minutes)."""
    if feather is not None and feather > min(shape):
        raise ConfigError(f"{option} {feather} px is wider than the photo's smaller side ({min(shape)} px): "
                          f"give {option} {min(shape)} or less (leave it out for one model pixel)")


def non_finite_message(model: InferenceModel | None) -> str:
    """The error for a model output holding NaN or inf."""
    where = f"the model from {model.path}" if model is not None else "the model"
    return (f"{where} produced NaN or inf for this photo (the result would be a black hole): its weights are "
            "broken or overflow at this precision; use other weights (or --device cpu)")


#: Memory layout of the generator and its inputs at inference: oneDNN's convolutions on a CPU then
#: skip reordering every activation to and from their blocked layout (quarter-residual at 128 px,
#: 2 threads: 81-88 -> 68-72 ms a face). Whoever builds the generator converts it to this layout.
MODEL_LAYOUT = torch.channels_last


class Inpainter:
    """Runs a generator of input size ``size`` on photos of any size.

    ``no_faces_reason`` says why no face is searched for when ``find_faces`` is None (the option
    that turned it off, or the missing library), for :meth:`explain`.
    """

    def __init__(self, generator: Generator, size: int, device: torch.device | str = "cpu",
                 find_faces: FaceFinder | None = None, feather: int | None = None,
                 no_faces_reason: str = NO_DETECTOR, model: InferenceModel | None = None) -> None:
        self.generator, self.size, self.device = generator, int(size), torch.device(device)
        self.find_faces, self.feather, self.no_faces_reason = find_faces, feather, no_faces_reason
        #: The model behind ``generator`` (config, source, training length) when built from weights.
        self.model = model

    # construction ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name: str, device: torch.device | str = "cpu", face_detect: bool = True,
                        feather: int | None = None) -> "Inpainter":
        """Shipped weights by name (``python -m inpaint.io.registry`` lists them, e.g.
        ``"quarter-residual"``); an unknown name is a CheckpointError listing the known ones."""
        from inpaint.io.registry import find_weights

        return cls.from_weights(find_weights(name).path, device, face_detect, feather)

    @classmethod
    def from_weights(cls, source: str | os.PathLike, device: torch.device | str = "cpu", face_detect: bool = True,
                     feather: int | None = None) -> "Inpainter":
        """A run dir (its newest checkpoint), a checkpoint ``.pt`` or a weights file with its card.
        ``face_detect``: choose the context around a detected face when dlib (the ``[identity]``
        extra) is installed; without it, or with False, a square around the hole."""
        from inpaint.metrics.identity import try_face_detector
        from inpaint.inference.loading import open_model

        device = torch.device(device)
        model = open_model(source, device)
        detector = try_face_detector() if face_detect else None
        reason = NO_DETECTOR if face_detect else "not searched (face detection off)"
        module = model.module
        return cls(lambda masked, mask: module(masked, mask), model.size, device,
                   find_faces=detector.detect if detector else None, feather=feather, no_faces_reason=reason, model=model)

    # one call ----------------------------------------------------------------------------------
    def repair(self, photo: Photo | str | os.PathLike, mask: Image.Image | np.ndarray | str | os.PathLike,
               hole: str = "white") -> Photo | Image.Image:
        """The photo with its hole inpainted, as what came in: a PIL image for an image or a path,
        a uint8 array for an array ((H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey). ``mask``: an
        image, a path, or an array (bool: True = hole; uint8: bright = hole) of the photo's size;
        ``hole="black"`` for masks painted black. Pixels outside the hole keep their values."""
        from inpaint.core.errors import DataError
        from inpaint.inference.masks import check_hole, load_hole, open_photo

        if isinstance(photo, np.ndarray):
            if photo.dtype != np.uint8 or photo.ndim not in (2, 3) or (photo.ndim == 3 and photo.shape[2] not in (3, 4)):
                raise DataError(f"the photo is a {photo.dtype} array of shape {photo.shape}: give a uint8 (H, W, 3) RGB, "
                                "(H, W, 4) RGBA or (H, W) grey array, e.g. (x * 255).round().astype(np.uint8)")
            img = Image.fromarray(photo)
        elif isinstance(photo, Image.Image):
            img = photo
        else:
            img = open_photo(photo)
        if isinstance(mask, (str, os.PathLike)):
            holes = load_hole(mask, img.size, hole)
        else:
            holes = check_hole(mask, img.size, hole, "the mask")
        repaired = self.inpaint(img, holes)
        return np.asarray(repaired) if isinstance(photo, np.ndarray) else repaired

    # the steps ---------------------------------------------------------------------------------
    def prepare(self, img: Image.Image, hole: np.ndarray) -> Prepared:
        rgb, alpha, mode = split_photo(img)
        if hole.shape != rgb.shape[:2]:
            raise ValueError(f"hole {hole.shape} and photo {rgb.shape[:2]} differ in size")
        check_feather(self.feather, hole.shape)
        faces = self.find_faces(rgb) if self.find_faces is not None else None
        box = context_box(hole, faces or [])
        part = inside_part(box, *hole.shape, self.size)
        crop = torch.from_numpy(np.ascontiguousarray(rgb[part.top:part.bottom, part.left:part.right])).permute(2, 0, 1)[None].float()
        crop_hole = torch.from_numpy(np.ascontiguousarray(hole[part.top:part.bottom, part.left:part.right])).float()[None, None]
        if part.shape != part.model_shape:
            antialias = box.side > self.size
            crop = F.interpolate(crop, size=part.model_shape, mode="bicubic", antialias=antialias, align_corners=False)
            # A model pixel is hole if any photo pixel under it is: the model must regenerate it.
            crop_hole = (F.interpolate(crop_hole, size=part.model_shape, mode="area") > 0).float() if antialias \
                else (F.interpolate(crop_hole, size=part.model_shape, mode="nearest") > 0).float()
        # Past the photo's border: edge replication (known context, never hole), added at the
        # model's size so a square much larger than the photo costs no memory.
        crop, crop_hole = _pad_to_model(crop, crop_hole, part, self.size)
        image = (crop.clamp(0, 255) / 127.5 - 1.0)[0]
        return Prepared(rgb, alpha, mode, hole, box, image, crop_hole[0], faces)

    def explain(self, prepared: Prepared) -> str:
        """Which region the model saw, and why: "face found at …", none found, or not searched."""
        box = prepared.box
        square = f"the {box.side}×{box.side}-px square at ({box.left}, {box.top})"
        scale = f" (seen at {self.size} px)"
        if prepared.faces is None:
            return f"face {self.no_faces_reason}; inpainted {square} around the hole{scale}"
        if box.face is not None:
            face = box.face
            return f"face found at ({face[0]}, {face[1]})–({face[2]}, {face[3]}); inpainted {square} around it{scale}"
        if prepared.faces:
            return (f"face found, but away from the hole ({len(prepared.faces)} found); inpainted {square} "
                    f"around the hole{scale}")
        return f"no face found; inpainted {square} around the hole{scale}"

    @torch.inference_mode()
    def generate(self, batch: Sequence[Prepared]) -> torch.Tensor:
        """Raw generator outputs (B,3,S,S) in [-1, 1] on the CPU, one model call for the batch."""
        image = torch.stack([p.image for p in batch]).to(self.device).contiguous(memory_format=MODEL_LAYOUT)
        mask = torch.stack([p.mask for p in batch]).to(self.device)
        output = self.generator(image * (1.0 - mask), mask).float()
        # Clamping would turn inf into ±1 unseen: a photo whose output is not finite anywhere gets
        # NaN throughout, which finish() refuses.
        broken = ~torch.isfinite(output).flatten(1).all(dim=1)
        output = output.masked_fill(broken[:, None, None, None], float("nan"))
        return output.clamp(-1.0, 1.0).cpu()

    def finish(self, prepared: Prepared, output: torch.Tensor) -> Image.Image:
        """Resize one output back to its box and blend it into the photo's hole. An output with NaN
        or inf is a CheckpointError: written out it would be a black hole."""
        if not bool(torch.isfinite(output).all()):
            raise CheckpointError(non_finite_message(self.model))
        box = prepared.box
        height, width = prepared.hole.shape
        part = inside_part(box, height, width, self.size)
        # Only the model pixels over the photo are resized back: the square may be far larger.
        out = output[None][:, :, part.model_top:part.model_bottom, part.model_left:part.model_right]
        if part.model_shape != part.shape:
            out = F.interpolate(out, size=part.shape, mode="bicubic", align_corners=False, antialias=box.side < self.size)
        generated = prepared.rgb.copy()
        generated[part.top:part.bottom, part.left:part.right] = to_uint8(out)[0]
        feather = self.feather if self.feather is not None else auto_feather(box.side, self.size)
        rgb = paste_hole(prepared.rgb, generated, prepared.hole, feather)
        return join_photo(rgb, prepared.alpha, prepared.mode)

    def inpaint(self, img: Image.Image, hole: np.ndarray) -> Image.Image:
        """One photo, start to finish."""
        prepared = self.prepare(img, hole)
        return self.finish(prepared, self.generate([prepared])[0])

