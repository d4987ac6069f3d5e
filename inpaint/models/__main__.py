"""``python -m inpaint.models --config model2``: parameter counts and forward GFLOPs per image,
to compare architectures and sanity-check a config before spending GPU hours on it."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from inpaint.core.cli import OneLineParser, run_cli
from inpaint.core.config import Config, load_config
from inpaint.models import build_discriminator, build_generator, count_parameters


def forward_gflops(model: nn.Module, *inputs: torch.Tensor) -> float:
    """GFLOPs of one forward pass (2 FLOPs per multiply-add, as FlopCounterMode counts), divided by
    the batch size."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() / 1e9 / inputs[0].shape[0]


def model_summary(cfg: Config, size: int | None = None) -> dict[str, Any]:
    """Parameter counts and per-image forward GFLOPs of G and D at ``size`` (default data.size)."""
    size = size or cfg.data.size
    generator = build_generator(cfg.model).eval()
    discriminator = build_discriminator(cfg.model).eval()
    image = torch.zeros(1, 3, size, size)
    mask = torch.zeros(1, 1, size, size)
    return {
        "name": cfg.name, "size": size,
        "g_params": count_parameters(generator), "d_params": count_parameters(discriminator),
        "g_gflops": forward_gflops(generator, image, mask), "d_gflops": forward_gflops(discriminator, image, mask),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m inpaint.models", description=__doc__)
    parser.add_argument("--config", nargs="+", default=["model1", "model2", "model3"],
                        help="config files or packaged names (default: model1 model2 model3)")
    parser.add_argument("--size", type=int, default=None, help="image size in px (default: the config's data.size)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (repeatable)")
    args = parser.parse_args(argv)
    overrides = args.overrides + ([f"data.size={args.size}"] if args.size else [])
    configs = [load_config(name, overrides) for name in args.config]  # all errors before output
    w = max(10, *(len(cfg.name) for cfg in configs))
    print(f"{'config':<{w}} {'px':>4} {'G params':>12} {'D params':>11} {'G GFLOP/img':>12} {'D GFLOP/img':>12}")
    for cfg in configs:
        s = model_summary(cfg)
        print(f"{s['name']:<{w}} {s['size']:>4} {s['g_params']:>12,} {s['d_params']:>11,} {s['g_gflops']:>12.2f} {s['d_gflops']:>12.3f}")
    print("GFLOP = forward pass, 2 FLOPs per multiply-add; a training step costs about 3x forward")
    return 0


if __name__ == "__main__":
    run_cli(main)
