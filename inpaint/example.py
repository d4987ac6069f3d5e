"""``python -m inpaint.example``: repair one held-out face of a packed folder, side by side with
the best classical fill, so the quick start ends on a repaired face and not on a checkpoint.

The face is the first of the folder's test split (never trained on, by the split's design) in its
original resolution, read from the source path the packer recorded; the hole is a test mask of
the chosen hole-ratio bucket, resized to the photo. It goes through the same code as
``python -m inpaint.predict`` (:class:`inpaint.inference.inpainter.Inpainter`), and the picture
shows masked input | biharmonic fill | the model | the original, with the PSNR of each fill.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

from inpaint.core.buckets import BUCKET_LABELS
from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.errors import DataError

DEFAULT_DATA = Path("data/shards/64")
DEFAULT_OUT = Path("runs/example")
DEFAULT_BUCKET = BUCKET_LABELS[2]


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m inpaint.example",
                      description="Repair one held-out face of a packed folder with the shipped model, beside the "
                                  "classical fill, and say where the pictures are.",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shard folder written by python -m data_prep.pack")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for masked.png, repaired.png, side_by_side.png")
    p.add_argument("--bucket", default=DEFAULT_BUCKET, choices=BUCKET_LABELS, help="hole-ratio bucket of the test mask")
    p.add_argument("--weights", default=None, metavar="FILE|NAME",
                   help="weights file, checkpoint or shipped name (default: predict's shipped model)")
    return p


def source_pair(data: Path, bucket: str) -> tuple[Path, Path]:
    """The original photo of the folder's first test face and the source file of its first test
    mask in ``bucket``, from the paths and roots the packer recorded."""
    import h5py

    from inpaint.core.shard_format import read_index

    index = read_index(data)
    roots = index.get("args") or {}
    wanted = BUCKET_LABELS.index(bucket)
    face = mask = None
    for shard in index.get("shards", []):
        if shard.get("split") != "test" or shard.get("kind") not in ("faces", "masks"):
            continue
        path = data / shard["file"]
        try:
            with h5py.File(path, "r") as f:
                if shard["kind"] == "faces" and face is None and len(f["paths"]):
                    face = Path(roots.get("faces", "")) / f["paths"][0].decode()
                elif shard["kind"] == "masks" and mask is None:
                    rows = [i for i, b in enumerate(f["bucket"][()]) if int(b) == wanted]
                    mask = Path(roots.get("masks", "")) / f["paths"][rows[0]].decode() if rows else None
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: cannot read it ({exc}); re-run python -m data_prep.pack") from None
    if face is None or mask is None:
        raise DataError(f"{data}: no test {'face' if face is None else f'mask in bucket {bucket}'}; "
                        "pack with python -m data_prep.pack (its test split is never trained on)")
    for what, path in (("face", face), ("mask", mask)):
        if not path.is_file():
            raise DataError(f"{path}: the test {what} recorded by {data}/index.json is gone; point the packer at the "
                            "data again (python -m data_prep.pack) or pass --data")
    return face, mask


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import numpy as np
    from PIL import Image

    from inpaint.classical import fill_biharmonic
    from inpaint.inference.inpainter import Inpainter
    from inpaint.inference.masks import open_photo
    from inpaint.inference.source import resolve_source
    from inpaint.render.visual import save_image

    face_path, mask_path = source_pair(args.data, args.bucket)
    photo = open_photo(face_path).convert("RGB")
    mask_img = Image.open(mask_path).convert("L").resize(photo.size, Image.NEAREST)
    hole = np.asarray(mask_img) > 127
    if not hole.any() or hole.all():
        raise DataError(f"{mask_path}: resized to the photo it leaves no usable hole; choose another --bucket")
    inpainter = Inpainter.from_weights(resolve_source(args.weights, None), "cpu")
    repaired = np.asarray(inpainter.inpaint(photo, hole))
    original = np.asarray(photo)
    classical = (fill_biharmonic(original / 255.0, hole) * 255.0).round().astype(np.uint8)
    masked = original.copy()
    masked[hole] = 255

    def psnr(fill: np.ndarray) -> float:
        mse = float(np.mean((fill.astype(np.float64) - original) ** 2)) / 255.0 ** 2
        return 10 * np.log10(1.0 / max(mse, 1e-12))

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_image(Image.fromarray(masked), out / "masked.png")
    written = save_image(Image.fromarray(repaired), out / "repaired.png")
    side = Image.fromarray(np.concatenate([masked, classical, repaired, original], axis=1))
    pair = save_image(side, out / "side_by_side.png")
    model_name = Path(inpainter.model.path).stem if inpainter.model else "model"
    print(f"test face {face_path.name}, mask {mask_path.name} ({hole.mean():.0%} hole, bucket {args.bucket}): "
          f"PSNR biharmonic {psnr(classical):.2f} dB, {model_name} {psnr(repaired):.2f} dB")
    print(f"repaired face: {os.fspath(written)}")
    print(f"masked | biharmonic | {model_name} | original: {os.fspath(pair)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
