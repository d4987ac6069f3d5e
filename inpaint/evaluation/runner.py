"""Scoring a generator on a list of (face, mask) pairs: per-pair metrics, nothing averaged yet.

The generator is any callable ``(masked_image, mask) -> output`` on (B,3,H,W) / (B,1,H,W)
tensors in [-1, 1] with 1 = hole, so checkpoints, baselines and a ground-truth oracle are all
scored by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from inpaint.metrics import image as metrics
from inpaint.metrics.identity import SAME_PERSON_THRESHOLD, FaceDescriber
from inpaint.core.progress_line import ProgressLine
from inpaint.metrics.lpips import LPIPS
from inpaint.models.types import Generator
from inpaint.render.visual import to_uint8

#: Called per batch with (pair positions, masked input, mask, composite, ground truth), images in
#: [-1, 1] on the CPU; used to keep grid samples and to write ``--samples`` PNGs.
BatchHook = Callable[[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]

METRIC_KEYS = ("ref_l1", "ref_psnr", "std_l1", "std_hole_l1", "std_psnr", "std_ssim", "std_lpips",
               "identity_distance", "identity_same")
#: Per-pair flag beside the metrics: 1.0 where the generator's output held NaN or inf. Those pairs'
#: metrics are NaN (left out of every mean), and the report says why rather than blaming an option.
NON_FINITE = "non_finite"


@dataclass
class Scorers:
    """The metrics that need weights or optional packages; ``None`` means "unavailable"."""

    lpips: LPIPS | None = None
    identity: FaceDescriber | None = None


class PairDataset(Dataset):
    """(image, mask, position) for each pair, reading faces and masks lazily from the shards."""

    def __init__(self, faces: Dataset, masks: Dataset, pairs: Sequence[tuple[int, int]]) -> None:
        self.faces, self.masks, self.pairs = faces, masks, list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        face, mask = self.pairs[i]
        return self.faces[face]["image"], self.masks[mask]["mask"], i, face


def module_generator(model: torch.nn.Module) -> Generator:
    """Wrap an ``nn.Module`` generator as a plain callable."""
    return lambda masked, mask: model(masked, mask)


def score_pairs(generator: Generator, faces: Dataset, masks: Dataset, pairs: Sequence[tuple[int, int]], *,
                batch_size: int = 16, device: torch.device | str = "cpu", scorers: Scorers | None = None,
                workers: int = 0, hook: BatchHook | None = None, progress: ProgressLine | None = None,
                autocast_dtype: torch.dtype | None = None) -> dict[str, np.ndarray]:
    """Per-pair metrics (arrays of length ``len(pairs)``, keys :data:`METRIC_KEYS`; NaN where a
    scorer is unavailable or the output was not finite) and the :data:`NON_FINITE` flag.

    Reference convention: raw output vs ground truth in [-1, 1]. Standard convention: composite
    vs ground truth in [0, 1]. Identity: dlib descriptor distance between the ground truth and the
    composite, both rounded to uint8; ground-truth descriptors are cached per face, since a face
    recurs across buckets.
    """
    scorers = scorers or Scorers()
    device = torch.device(device)
    n = len(pairs)
    out = {k: np.full(n, np.nan, dtype=np.float64) for k in METRIC_KEYS}
    out[NON_FINITE] = np.zeros(n, dtype=np.float64)
    loader = DataLoader(PairDataset(faces, masks, pairs), batch_size=batch_size, shuffle=False,
                        num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=False)
    gt_descriptors: dict[int, np.ndarray] = {}
    done = 0
    if progress:
        progress.update(0)
    with torch.inference_mode():
        for image, mask, positions, face_ids in loader:
            image = image.to(device, non_blocking=True)
            mask = mask.to(device, non_blocking=True)
            masked = image * (1.0 - mask)
            if autocast_dtype is not None:
                with torch.autocast(device.type, dtype=autocast_dtype):
                    output = generator(masked, mask)
            else:
                output = generator(masked, mask)
            output = output.float()
            if output.shape != image.shape:
                raise ValueError(f"generator returned {tuple(output.shape)} for input {tuple(image.shape)}")
            idx = positions.numpy()
            for key, value in metrics.reference_metrics(output, image).items():
                out[f"ref_{key}"][idx] = value.double().cpu().numpy()
            for key, value in metrics.standard_metrics(output, image, mask).items():
                out[f"std_{key}"][idx] = value.double().cpu().numpy()
            comp = metrics.composite(output, image, mask).clamp(-1.0, 1.0)
            if scorers.lpips is not None:
                out["std_lpips"][idx] = scorers.lpips(comp, image).double().cpu().numpy()
            if scorers.identity is not None:
                gt_u8 = to_uint8(image)
                faces_np = face_ids.numpy()
                missing = [j for j, f in enumerate(faces_np) if int(f) not in gt_descriptors]
                if missing:
                    for j, d in zip(missing, scorers.identity.describe(gt_u8[missing])):
                        gt_descriptors[int(faces_np[j])] = d
                comp_desc = scorers.identity.describe(to_uint8(comp))
                gt_desc = np.stack([gt_descriptors[int(f)] for f in faces_np])
                dist = np.linalg.norm(comp_desc - gt_desc, axis=1)
                out["identity_distance"][idx] = dist
                out["identity_same"][idx] = (dist < SAME_PERSON_THRESHOLD).astype(np.float64)
            broken = idx[~torch.isfinite(output).flatten(1).all(dim=1).cpu().numpy()]
            if broken.size:  # whatever the scorers made of NaN (black pixels, say) is no score
                for key in METRIC_KEYS:
                    out[key][broken] = np.nan
                out[NON_FINITE][broken] = 1.0
            if hook is not None:
                hook(idx, masked.float().cpu(), mask.float().cpu(), comp.float().cpu(), image.float().cpu())
            done += len(idx)
            if progress:
                progress.update(done)
    return out
