"""What ``python -m inpaint.predict`` does once its command line has parsed: one photo
(:mod:`inpaint.inference.photos`) or a folder of them (:mod:`inpaint.inference.folder`)."""

from __future__ import annotations

import argparse

from inpaint.core.errors import ConfigError


def predict(args: argparse.Namespace) -> int:
    """Run the mode the options name; a mix of both modes, or half of one, is a ConfigError."""
    single = [args.image, args.mask, args.out]
    folder = [args.image_dir, args.mask_dir, args.out_dir]
    if any(single) and any(folder):
        raise ConfigError("use either --image/--mask/--out or --image-dir/--mask-dir/--out-dir, not both")
    if any(single):
        if not all(single):
            raise ConfigError("one photo needs all of --image PHOTO, --mask MASK and --out OUT")
        from inpaint.inference.photos import predict_photo

        return predict_photo(args)
    if not all(folder):
        raise ConfigError("give --image PHOTO --mask MASK --out OUT, or --image-dir DIR --mask-dir DIR --out-dir DIR")
    from inpaint.inference.folder import predict_photo_folder

    return predict_photo_folder(args)
