"""Inference speed of a generator: single-image latency and batched throughput, with GFLOP/s.

    python benchmarks/bench_infer.py                    # Model 2, 128 px, CPU with 2 threads (+ GPU if present)
    python benchmarks/bench_infer.py --config smoke --size 64 --threads 1

CPU runs in fp32 (bf16 autocast is many times slower on CPUs without native bf16); GPU runs use
bf16 autocast and channels_last at batch 1 and 64. The weights are random: speed does not depend
on them (only the classical fill of a prefill model depends on the hole). Also times the whole photo pipeline (crop, resize, model, paste) on a 600×400 photo.
Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from inpaint.core.config import load_config
from inpaint.inference.inpainter import MODEL_LAYOUT
from inpaint.models import build_generator


def forward_flops(model: torch.nn.Module, size: int) -> int:
    """FLOPs (multiply and add counted separately) of one forward pass at batch 1."""
    image, mask = torch.zeros(1, 3, size, size), torch.zeros(1, 1, size, size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(image, mask)
    return int(counter.get_total_flops())


def time_call(fn: Callable[[], object], repeats: int, warmup: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def load_masks(folder: str, size: int, count: int = 48) -> torch.Tensor:
    """``count`` masks spread over the sorted files of ``folder`` (white = hole), at ``size``."""
    from pathlib import Path

    from PIL import Image

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".bmp"))
    if not files:
        raise SystemExit(f"--masks {folder}: no mask images there")
    picks = [files[i] for i in np.linspace(0, len(files) - 1, min(count, len(files))).round().astype(int)]
    return torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("L").resize((size, size), Image.NEAREST)) > 127)
                        .float()[None] for f in picks])


def inputs(batch: int, size: int, device: torch.device, masks: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images with ``masks`` (N,1,S,S) cycled, or random-pixel holes: a classical fill's
    cost depends on the hole, so a prefill model is timed on real masks."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    if masks is not None:
        mask = masks[torch.arange(batch) % len(masks)]
    else:
        mask = (torch.rand(batch, 1, size, size, generator=g) > 0.7).float()
    return (image * (1 - mask)).to(device), mask.to(device)


def bench_cpu(model: torch.nn.Module, size: int, flops: int, batch: int, repeats: int,
              masks: torch.Tensor | None) -> None:
    """Both memory layouts: predict feeds channels_last (no oneDNN reorder of every activation)."""
    for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        net = model.to(memory_format=fmt)
        with torch.inference_mode():
            masked, mask = inputs(repeats + 2, size, torch.device("cpu"), masks)  # one hole per call (with --masks)
            masked = masked.contiguous(memory_format=fmt)
            rows = itertools.cycle(range(len(masked)))

            def one() -> None:
                i = next(rows)
                net(masked[i:i + 1], mask[i:i + 1])

            t1 = time_call(one, repeats, warmup=2)
            lat = statistics.median(t1)
            print(f"cpu  {layout:13s} batch 1 : {lat * 1000:8.1f} ms/image (median of {repeats}, min {min(t1) * 1000:.1f})   "
                  f"{flops / lat / 1e9:6.1f} GFLOP/s")
            masked, mask = inputs(batch, size, torch.device("cpu"), masks)
            masked = masked.contiguous(memory_format=fmt)
            tb = time_call(lambda: net(masked, mask), max(2, repeats // 2), warmup=1)
            per = statistics.median(tb) / batch
            print(f"cpu  {layout:13s} batch {batch:<2}: {per * 1000:8.1f} ms/image  {1 / per:6.2f} images/s          "
                  f"{flops / per / 1e9:6.1f} GFLOP/s")
    model.to(memory_format=MODEL_LAYOUT)  # as predict runs it


def bench_gpu(model: torch.nn.Module, size: int, flops: int, batches: list[int], repeats: int) -> None:
    device = torch.device("cuda")
    model = model.to(device).to(memory_format=torch.channels_last)
    print(f"gpu  {torch.cuda.get_device_name(device)}, bf16 autocast, channels_last")
    for batch in batches:
        masked, mask = inputs(batch, size, device)
        masked = masked.contiguous(memory_format=torch.channels_last)

        def run() -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                model(masked, mask)

        t = statistics.median(time_call(run, repeats, warmup=3, sync=torch.cuda.synchronize))
        print(f"gpu  batch {batch:<3}: {t * 1000:8.2f} ms/batch  {batch / t:9.1f} images/s  "
              f"{flops * batch / t / 1e12:6.2f} TFLOP/s")


def bench_pipeline(model: torch.nn.Module, size: int, repeats: int, batch: int) -> None:
    """Whole-photo cost: context crop, resize, model, resize back, feathered paste."""
    from PIL import Image

    from inpaint.inference.inpainter import Inpainter
    from inpaint.inference.folder import default_batch_size

    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (400, 600, 3), dtype=np.uint8))
    hole = np.zeros((400, 600), dtype=bool)
    hole[150:250, 250:350] = True
    inp = Inpainter(lambda m, k: model(m, k), size, "cpu")
    with torch.inference_mode():
        t = statistics.median(time_call(lambda: inp.inpaint(photo, hole), repeats, warmup=1))
        print(f"cpu  photo 600×400, hole 100×100: {t * 1000:8.1f} ms end to end (1 photo per model call)")

        def folder_batch(n: int) -> None:  # what predict's folder mode does per --batch-size photos
            prepared = [inp.prepare(photo, hole) for _ in range(n)]
            for p, out in zip(prepared, inp.generate(prepared)):
                inp.finish(p, out)

        default = default_batch_size(torch.device("cpu"))
        for n in sorted({default, batch}):
            t = statistics.median(time_call(lambda: folder_batch(n), max(2, repeats // 2), warmup=1)) / n
            note = " (predict's CPU default)" if n == default else ""
            print(f"cpu  same photo, folder mode batch {n}: {t * 1000:8.1f} ms per photo{note}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="model2")
    p.add_argument("--weights", metavar="FILE", help="time these trained weights (their config) instead of --config")
    p.add_argument("--masks", metavar="DIR", help="real masks (e.g. ../shared/data/masks) instead of random pixels: "
                                                  "batch-1 times are then the median over as many holes as repeats")
    p.add_argument("--size", type=int, default=None, help="image size (default: the config's data.size)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8, help="CPU batch for throughput")
    p.add_argument("--gpu-batches", default="1,64")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-gpu", action="store_true")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.weights:
        from inpaint.io.weights import load_generator

        model, cfg = load_generator(args.weights)
    else:
        cfg = load_config(args.config)
        model = build_generator(cfg.model).eval()
    size = args.size or cfg.data.size
    masks = load_masks(args.masks, size) if args.masks else None
    params = sum(p.numel() for p in model.parameters())
    flops = forward_flops(model, size)
    print(f"{cfg.name} generator at {size} px: {params / 1e6:.2f} M parameters, {flops / 1e9:.1f} GFLOP per image "
          f"(torch {torch.__version__}, {args.threads} CPU threads, fp32 on CPU)")
    bench_cpu(model, size, flops, args.batch, args.repeats, masks)
    bench_pipeline(model, size, max(3, args.repeats // 3), args.batch)
    if torch.cuda.is_available() and not args.no_gpu:
        bench_gpu(model, size, flops, [int(b) for b in args.gpu_batches.split(",")], args.repeats)
    else:
        print("gpu  not available: skipped")


if __name__ == "__main__":
    main()
