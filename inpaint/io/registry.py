"""Shipped weights by name: ``"quarter-residual"`` → ``inpaint/weights/quarter-residual.pt``.

People who repair a photo from Python should not need to know where the package keeps its files,
so every weights file packaged in ``inpaint/weights/`` (a ``<name>.pt`` with its card
``<name>.json`` beside it, :class:`inpaint.io.weights.WeightsCard`) is reachable by its name. The
list is the folder itself, not a table to keep in step with it: exporting weights there with
``python -m inpaint.export`` registers them. Standard library only; the weights are
loaded by whoever asks for them (:meth:`inpaint.inference.inpainter.Inpainter.from_pretrained`).

``python -m inpaint.io.registry`` lists them with what their cards say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from inpaint.core.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # the shipped weights: inpaint/weights/


@dataclass(frozen=True)
class ShippedWeights:
    """One packaged weights file and its card."""

    name: str
    path: Path   # <name>.pt: the generator's state dict
    card: Path   # <name>.json: config and provenance

    def read_card(self) -> dict[str, Any]:
        """The card as a dict ({} when it cannot be read: loading the weights says why)."""
        try:
            record = json.loads(self.card.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}


def shipped_weights(folder: Path = WEIGHTS_DIR) -> dict[str, ShippedWeights]:
    """Every ``<name>.pt`` in ``folder`` that has its ``<name>.json`` card, by name, sorted."""
    if not folder.is_dir():
        return {}
    return {pt.stem: ShippedWeights(pt.stem, pt, pt.with_suffix(".json"))
            for pt in sorted(folder.glob("*.pt")) if pt.with_suffix(".json").is_file()}


def find_weights(name: str, folder: Path = WEIGHTS_DIR) -> ShippedWeights:
    """The shipped weights called ``name``; a one-line CheckpointError listing the known names otherwise."""
    known = shipped_weights(folder)
    if name in known:
        return known[name]
    listed = ", ".join(known) if known else f"none: {folder} holds no <name>.pt with its <name>.json"
    raise CheckpointError(f"no shipped weights named {name!r} (known: {listed}); for weights of your own, "
                          "give their file or run dir instead of a name")


def describe(weights: ShippedWeights) -> str:
    """One line: name, architecture, training length and the averages the card records."""
    card = weights.read_card()
    cfg = card.get("config") or {}
    size = (cfg.get("data") or {}).get("size")
    parts = [f"{weights.name}: config {cfg.get('name', '?')}" + (f", {size} px" if size else "")]
    if card.get("images_seen"):
        parts.append(f"trained on {card['images_seen']:,} images")
    average = ((card.get("metrics") or {}).get("average") or {})
    scores = [f"{label} {average[key]:{fmt}}" for key, label, fmt in
              (("std_psnr", "PSNR", ".2f"), ("std_ssim", "SSIM", ".3f"), ("std_lpips", "LPIPS", ".4f"))
              if isinstance(average.get(key), (int, float))]
    if scores:
        parts.append(f"{', '.join(scores)} on {average.get('n', '?')} test pairs")
    return "; ".join(parts) + f" ({weights.path})"


def main(argv: Sequence[str] | None = None) -> int:
    from inpaint.core.cli import OneLineParser

    OneLineParser(prog="python -m inpaint.io.registry",
                  description="List the shipped weights that Inpainter.from_pretrained(NAME) and "
                              "python -m inpaint.predict --weights NAME accept.").parse_args(argv)
    known = shipped_weights()
    if not known:
        print(f"no shipped weights in {WEIGHTS_DIR}")
    for weights in known.values():
        print(describe(weights))
    return 0


if __name__ == "__main__":
    from inpaint.core.cli import run_cli

    run_cli(main)
