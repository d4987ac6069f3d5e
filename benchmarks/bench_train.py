"""Training throughput of Models 1–3: images/s of a full G+D step and GFLOPs/image.

    python benchmarks/bench_train.py                    # CPU: batch 4; CUDA: the grid below
    python benchmarks/bench_train.py --models model2 --full

One step is the trainer's (inpaint.training.step.train_step): G forward, D on real and fake in one
batch, D loss + backward + Adam step, then D (frozen) on the fake, the generator loss (global/hole
L1, adversarial, perceptual for Model 3) + backward + Adam step (fused Adam on CUDA). Inputs are synthetic tensors already on the device, so this
measures the models, not the data loader.

On CUDA, per model: fp32 vs bf16 autocast × channels_last off/on at batch 4, then a batch sweep
(doubling until out of memory or no gain) with the best of those, then bf16 + channels_last with
torch.compile at batch 4 (and at the best batch if compile helped); ``--full`` adds compile to
every combination. Peak GPU memory
per row. fp32 rows use PyTorch's default TF32 convolutions on Ampere and newer.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpaint.core.config import Config, load_config  # noqa: E402
from inpaint.core.errors import CheckpointError  # noqa: E402
from inpaint.losses.objective import GeneratorLoss, discriminator_loss  # noqa: E402
from inpaint.models import build_discriminator, build_generator  # noqa: E402
from inpaint.training.networks import TrainingModels  # noqa: E402
from inpaint.training.step import train_step  # noqa: E402


@dataclass(frozen=True)
class Setting:
    batch: int
    precision: str = "fp32"  # fp32 | bf16
    channels_last: bool = False
    compile: bool = False

    def label(self) -> str:
        return f"{self.precision:<5} {'CL' if self.channels_last else '--':<3} {'compile' if self.compile else '-':<8}"


class TrainStep:
    """One G+D training step on a fixed model pair: the trainer's own
    (:func:`inpaint.training.step.train_step`, grad scaler included), with the networks, Adam
    and precision of ``setting``; ``__call__(image, mask)`` runs it."""

    def __init__(self, cfg: Config, device: torch.device, setting: Setting, fused_adam: bool | None = None) -> None:
        self.device, self.setting = device, setting
        self.generator = build_generator(cfg.model).to(device)
        self.discriminator = build_discriminator(cfg.model).to(device)
        self.loss = GeneratorLoss(cfg.loss).to(device)
        if setting.channels_last:
            for module in (self.generator, self.discriminator, self.loss):
                module.to(memory_format=torch.channels_last)
        fused = device.type == "cuda" if fused_adam is None else fused_adam
        opt = dict(lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), fused=fused or None)
        amp_dtype = torch.bfloat16 if setting.precision == "bf16" else None
        # like the trainer (inpaint/training/networks.py): train.compile compiles the generator only
        g_train = torch.compile(self.generator) if setting.compile else self.generator
        self.models = TrainingModels(
            self.generator, self.discriminator, g_train, self.discriminator,
            torch.optim.Adam(self.generator.parameters(), **opt), torch.optim.Adam(self.discriminator.parameters(), **opt),
            torch.amp.GradScaler(device.type, enabled=False), amp_dtype, setting.channels_last, self.loss, discriminator_loss)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = train_step(self.models, image, mask)
        return {"d": losses.pop("d_loss"), "total": losses.pop("g_total"), **losses}


def synthetic_batch(batch: int, size: int, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    for i in range(batch):  # a rectangle of 10–40 % of the image per sample
        h, w = (int(size * f) for f in torch.empty(2).uniform_(0.3, 0.65, generator=gen))
        y, x = (int(v) for v in torch.randint(0, size - max(h, w), (2,), generator=gen))
        mask[i, :, y:y + h, x:x + w] = 1
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return image.to(device).contiguous(memory_format=fmt), mask.to(device).contiguous(memory_format=fmt)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_gflops_per_image(cfg: Config, device: torch.device, size: int) -> tuple[float, float]:
    """(G forward, full training step) GFLOPs per image, counted at batch 2."""
    step = TrainStep(cfg, device, Setting(batch=2))
    image, mask = synthetic_batch(2, size, device, False)
    with FlopCounterMode(display=False) as fwd:
        with torch.no_grad():
            step.generator(image * (1 - mask), mask)
    with FlopCounterMode(display=False) as full:
        step(image, mask)
    return fwd.get_total_flops() / 2e9, full.get_total_flops() / 2e9


def measure(cfg: Config, device: torch.device, size: int, setting: Setting, min_time: float, warmup: int) -> dict[str, Any]:
    """img/s over at least ``min_time`` seconds after ``warmup`` steps, compile time, peak memory."""
    torch.manual_seed(0)
    step = TrainStep(cfg, device, setting)
    image, mask = synthetic_batch(setting.batch, size, device, setting.channels_last)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    step(image, mask)  # first step: compilation, cudnn autotuning, allocations
    sync(device)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        step(image, mask)
    sync(device)
    steps, t0 = 0, time.perf_counter()
    while True:
        out = step(image, mask)
        steps += 1
        if steps % 5 == 0 or device.type == "cpu":
            sync(device)
            if time.perf_counter() - t0 >= min_time:
                break
    sync(device)
    elapsed = time.perf_counter() - t0
    if not torch.isfinite(out["total"]):
        raise RuntimeError(f"non-finite loss under {setting}")
    peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f}" if device.type == "cuda" else "-"
    return {"img_s": steps * setting.batch / elapsed, "step_ms": 1000 * elapsed / steps, "first_s": first, "peak_gib": peak}


def sweep_batches(row: Callable[[Setting], dict[str, Any]], base: Setting, base_rate: float, max_batch: int) -> dict[Setting, dict[str, Any]]:
    """Double the batch from ``base`` until out of memory, ``max_batch``, or < 3 % gain."""
    results: dict[Setting, dict[str, Any]] = {}
    best_rate, batch = base_rate, base.batch
    while batch * 2 <= max_batch:
        batch *= 2
        setting = Setting(batch, base.precision, base.channels_last)
        result = None
        try:
            result = row(setting)
        except torch.OutOfMemoryError:
            pass  # free the memory outside the handler, once the traceback has let go of it
        if result is None:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            print(f"{'':<7} {batch:>5} {setting.label()} out of memory")
            break
        results[setting] = result
        if result["img_s"] < best_rate * 1.03:
            break
        best_rate = result["img_s"]
    return results


def cuda_settings(full: bool) -> tuple[list[Setting], list[Setting]]:
    """(eager rows, compiled rows) at batch 4. Compiled rows run after the batch sweep: a slow
    compile must not cost the figures that need no compiler."""
    grid = [Setting(4, p, cl) for p, cl in itertools.product(("fp32", "bf16"), (False, True))]
    if full:
        return grid, [Setting(4, s.precision, s.channels_last, True) for s in grid]
    return grid, [Setting(4, "bf16", True, True)]


def load_bench_config(name: str, size: int) -> Config:
    """The model's config; random VGG weights only if the real ones are absent (timing is the same)."""
    cfg = load_config(name, [f"data.size={size}"])
    if cfg.loss.perceptual > 0:
        try:
            GeneratorLoss(cfg.loss)
        except CheckpointError:
            print(f"note: {name}: VGG16 weights not found, timing the perceptual loss with random weights")
            cfg = cfg.with_values("loss", perceptual_allow_random=True)
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["model1", "model2", "model3"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--min-time", type=float, default=None, help="seconds timed per row (default 3 on CUDA, 10 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps after the first (default 10 CUDA, 1 CPU)")
    parser.add_argument("--full", action="store_true", help="CUDA: compile on/off for every precision/layout")
    parser.add_argument("--max-batch", type=int, default=1024, help="CUDA batch sweep upper bound")
    parser.add_argument("--grid", action="store_true", help="run the CUDA grid on a CPU too (slow; checks the code path)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    min_time = args.min_time if args.min_time is not None else (3.0 if on_cuda else 10.0)
    warmup = args.warmup if args.warmup is not None else (10 if on_cuda else 1)
    if on_cuda:
        torch.backends.cudnn.benchmark = True
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    warnings.filterwarnings("ignore", message=".*RANDOM VGG16.*")
    print(f"# bench_train: {where}, torch {torch.__version__}, {args.size} px, synthetic inputs")
    print(f"{'model':<7} {'batch':>5} {'prec':<5} {'CL':<3} {'compile':<8} {'img/s':>9} {'ms/step':>9} "
          f"{'1st step s':>10} {'peak GiB':>8} {'G GF/img':>8} {'step GF/img':>11} {'TFLOP/s':>8}")
    summary: list[str] = []
    for name in args.models:
        cfg = load_bench_config(name, args.size)
        g_gf, step_gf = training_gflops_per_image(cfg, device, args.size)

        def row(setting: Setting) -> dict[str, Any]:
            r = measure(cfg, device, args.size, setting, min_time, warmup)
            print(f"{name:<7} {setting.batch:>5} {setting.label()} {r['img_s']:>9.1f} {r['step_ms']:>9.1f} "
                  f"{r['first_s']:>10.1f} {r['peak_gib']:>8} {g_gf:>8.2f} {step_gf:>11.1f} "
                  f"{r['img_s'] * step_gf / 1000:>8.2f}", flush=True)
            return r

        if not (on_cuda or args.grid):
            summary.append(f"{name}: {row(Setting(4))['img_s']:.2f} img/s at batch 4 (fp32)")
            continue
        eager, compiled_rows = cuda_settings(args.full)
        results = {s: row(s) for s in eager}
        base = max(results, key=lambda s: results[s]["img_s"])
        swept = sweep_batches(row, base, results[base]["img_s"], args.max_batch)
        results.update(swept)
        results.update({s: row(s) for s in compiled_rows})
        best_batch = max([base, *swept], key=lambda s: results[s]["img_s"]).batch
        compiled = Setting(base.batch, base.precision, base.channels_last, True)
        if best_batch != base.batch and compiled in results and results[compiled]["img_s"] > results[base]["img_s"]:
            at_best = Setting(best_batch, base.precision, base.channels_last, True)  # compile helped at batch 4
            results[at_best] = row(at_best)
        best = max(results, key=lambda s: results[s]["img_s"])
        summary.append(f"{name}: best {results[best]['img_s']:.0f} img/s at batch {best.batch} "
                       f"({' '.join(best.label().split())}), peak {results[best]['peak_gib']} GiB")
    print("img/s = training images per second of a full G+D step; GF = GFLOP (2 per multiply-add); "
          "step GF/img counts G and D forward+backward and the losses")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
