"""``python -m inpaint.evaluate``: score trained models and classical fills on the fixed protocol.

Writes ``report.md``, ``metrics.json``, ``metrics.csv``, ``pairs.json`` and ``grid.png`` into
``--out``. Every model and every baseline is scored on the same pairs (drawn from ``--seed`` or
read from ``--pairs``), so the columns of a table are comparable. The classical fills are columns
by default whenever their libraries are installed (Navier–Stokes with OpenCV, biharmonic with
scikit-image), and each model is read against the best of them on each metric: without that
beside them, a model's numbers mislead. So do scores on faces or masks a model was trained on:
evaluate warns (one line per model) when the scored pairs hold any.
"""

from __future__ import annotations

from typing import Sequence

from inpaint.core.cli import run_cli
from inpaint.evaluation.options import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help and a mistyped option answer before torch loads
    from inpaint.evaluation.benchmark import evaluate

    return evaluate(args)


if __name__ == "__main__":
    run_cli(main)
