"""The command line of ``python -m inpaint.evaluate``, apart from the evaluation itself.

Torch-free on purpose (numpy at most): ``--help`` and a mistyped option answer before the
evaluation's imports load torch, OpenCV and LPIPS, which take seconds to a minute on a busy node.
New options of ``inpaint.evaluate`` go here.
"""

from __future__ import annotations

import argparse

from inpaint.core.cli import OneLineParser
from inpaint.evaluation import protocol

#: ``inpaint.classical.METHODS`` and ``inpaint.evaluation.baselines.DEFAULT_BASELINES``, named here
#: because those modules import torch (tests/test_cli.py checks they agree).
METHODS = ("navier-stokes", "telea", "biharmonic")
DEFAULT_BASELINES = ("navier-stokes", "biharmonic")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m inpaint.evaluate", description="Score trained models per hole-ratio bucket and per demographic group, on identical pairs.",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run-dir", action="append", default=[], metavar="DIR",
                   help="a training run dir (its newest checkpoint); repeat to compare runs")
    p.add_argument("--checkpoint", action="append", default=[], metavar="FILE",
                   help="a checkpoint .pt or shipped weights file; repeat to compare")
    p.add_argument("--baseline", action="append", default=[], choices=METHODS, metavar="METHOD",
                   help=f"a classical fill scored as a column ({', '.join(METHODS)}); repeatable (OpenCV and "
                        f"scikit-image, installed with facefill). Without it, {' and '.join(DEFAULT_BASELINES)} are added "
                        "whenever their library is importable, and models are read against the best of them")
    p.add_argument("--no-baseline", action="store_true",
                   help="do not add the classical fills by default (then no gains over them are reported)")
    p.add_argument("--data", required=True, action="append", metavar="SHARDS",
                   help="shard folder (with index.json) at the models' size; repeat to score every column on each "
                        "folder (one report per folder, in OUT/<folder name>/)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: <run-dir>/eval for one run dir, else ./evaluation)")
    p.add_argument("--masks", default="holes", choices=("holes", "features"),
                   help="holes: free-form test masks per hole-ratio bucket; features: one hole over the eyes, one "
                        "over the nose, one over the mouth of every eval_balanced face, placed from dlib's 68 "
                        "landmarks (needs the [identity] extra): identity kept per feature and features_worst.png")
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="faces and masks to pair: the test split, or the validation split of shards packed with "
                        "--val-fraction (for choosing models without looking at the test split; no demographics)")
    p.add_argument("--pairs-per-bucket", type=int, default=protocol.DEFAULT_PAIRS_PER_BUCKET, metavar="N",
                   help="test pairs drawn per hole-ratio bucket (fewer when a bucket holds fewer test masks)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair list")
    p.add_argument("--pairs", default=None, metavar="FILE", help="reuse a saved pairs.json instead of drawing one")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="pairs per generator call")
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the models and LPIPS run (auto: the GPU when one is visible)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="generator precision (bf16 on GPU only)")
    p.add_argument("--lpips-weights", default=None, metavar="DIR",
                   help="folder with alexnet_imagenet_features.pth and lpips_alex_v0.1_lin.pth "
                        "(default: $FACEFILL_WEIGHTS, ../shared/weights, torch hub cache)")
    p.add_argument("--no-identity", action="store_true", help="skip the dlib identity distance (the slowest metric)")
    p.add_argument("--identity-workers", type=int, default=1, metavar="N",
                   help="processes computing dlib face descriptors (~10/s each on one core)")
    p.add_argument("--no-demographics", action="store_true", help="skip the eval_balanced breakdown")
    p.add_argument("--grid-per-bucket", type=int, default=1, help="grid rows per bucket (0: no grid.png)")
    p.add_argument("--samples", default=None, metavar="DIR", help="also write every composite as PNG here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p
