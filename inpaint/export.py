"""``python -m inpaint.export SOURCE OUT.pt``: ship a trained generator as a small weights file.

The fp16 state dict and its JSON card are what ``inpaint.predict``, ``inpaint.evaluate`` and
``Inpainter.from_pretrained`` load; the card carries the digests that let them be checked.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Sequence

from inpaint.core.cli import OneLineParser, run_cli
from inpaint.io.provenance import ProvenanceWarning


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m inpaint.export",
                      description="Export the generator of a run dir or checkpoint as a small weights file "
                                  "(fp16 state dict + JSON card) for evaluation and inference.")
    p.add_argument("source", help="run dir (newest readable checkpoint) or checkpoint .pt")
    p.add_argument("out", help="weights file to write, e.g. inpaint/weights/model2.pt")
    p.add_argument("--fp32", action="store_true", help="keep float32 instead of float16")
    p.add_argument("--metrics", metavar="METRICS_JSON", help="inpaint.evaluate's metrics.json: record this model's averages")
    p.add_argument("--model-name", help="the model's name in METRICS_JSON (default: the run dir's name)")
    p.add_argument("--cpu-minutes", type=float, metavar="M",
                   help="training cost to record (e.g. user+sys of the training processes from /usr/bin/time)")
    p.add_argument("--train-data", metavar="SHARDS",
                   help="the training shards, when they are no longer where the checkpoint recorded them: their "
                        "training lists must have the digests the checkpoint recorded (the card records them)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from inpaint.evaluation.averages import evaluation_averages  # torch: after the arguments are checked
    from inpaint.io.weights import export_weights, weights_sidecar

    metrics = None
    if args.metrics:
        metrics = evaluation_averages(args.metrics, args.model_name or Path(args.source).name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProvenanceWarning)
        out = export_weights(args.source, args.out, half=not args.fp32, metrics=metrics, cpu_minutes=args.cpu_minutes,
                             train_data=args.train_data)
    for w in caught:  # one line each, like the CLIs' errors, not Python's two-line warning format
        if issubclass(w.category, ProvenanceWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    print(f"wrote {out} and {weights_sidecar(out)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
