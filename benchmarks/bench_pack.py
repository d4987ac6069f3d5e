"""Pack throughput against a bare Pillow loop over the same files, and the packer's peak memory.

    python benchmarks/bench_pack.py [--faces N] [--masks N] [--size 128]

Targets: one worker >= 0.8 x the bare decode+crop+resize loop; ``--workers 2`` >= 1.6 x
one worker; peak memory < 1 GB and flat in the data-set size. Each pack runs in a fresh
subprocess; its own timer (printed by pack) excludes interpreter start-up. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_prep.sources import MASK_SUFFIXES, default_data_root, list_images  # noqa: E402
from data_prep.splits import face_order, spread_evenly  # noqa: E402

_RUNNER = """
import resource, sys, time
from data_prep.pack import main
start = time.perf_counter()
main(sys.argv[1:])
print("BENCH", time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def bare_faces(root: Path, files: list[str], size: int) -> float:
    """images/s of the plain Pillow work pack does per face: open, draft, decode, crop, resize."""
    start = time.perf_counter()
    for name in files:
        with Image.open(root / name) as img:
            img.draft("RGB", (2 * size, 2 * size))
            img = img.convert("RGB")
            w, h = img.size
            s = min(w, h)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            np.asarray(img.resize((size, size), Image.Resampling.LANCZOS, box=box))
    return len(files) / (time.perf_counter() - start)


def bare_masks(root: Path, files: list[str], size: int) -> float:
    start = time.perf_counter()
    for name in files:
        with Image.open(root / name) as img:
            (np.asarray(img.convert("L").resize((size, size), Image.Resampling.NEAREST)) > 127).mean()
    return len(files) / (time.perf_counter() - start)


def run_pack(args: list[str]) -> tuple[float, float, float]:
    """(seconds inside pack, peak RSS MB of the main process, of the largest child)."""
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("BENCH"))
    _, secs, self_kb, child_kb = line.split()
    return float(secs), int(self_kb) / 1024, int(child_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=3000)
    ap.add_argument("--masks", type=int, default=1800)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--memory-faces", type=int, default=12000, help="larger pack for the memory check")
    ns = ap.parse_args()
    data = default_data_root()
    faces = face_order(list_images(data / "faces"))[: ns.faces]
    masks = spread_evenly(list_images(data / "masks", MASK_SUFFIXES), ns.masks)
    tmp = Path(tempfile.mkdtemp(prefix="bench_pack_"))
    try:
        bare_faces(data / "faces", faces[:200], ns.size)  # warm the page cache
        bare_f = bare_faces(data / "faces", faces, ns.size)
        bare_m = bare_masks(data / "masks", masks, ns.size)
        base = ["--faces", str(data / "faces"), "--masks", str(data / "masks"), "--size", str(ns.size),
                "--test-masks-per-bucket", "1", "--min-per-cell", "1"]
        print(f"{len(faces)} UTKFace faces and {len(masks)} NVIDIA masks -> {ns.size} px "
              f"(machine shared with other work: figures are noisy)")
        print(f"bare Pillow loop, faces : {bare_f:8.0f} images/s")
        print(f"bare Pillow loop, masks : {bare_m:8.0f} masks/s")
        rates = {}
        for workers in (1, 2):
            secs, rss, child = run_pack([*base, "--limit", str(ns.faces), "--mask-limit", "12",
                                         "--workers", str(workers), "--out", str(tmp / f"f{workers}")])
            rates[workers] = ns.faces / secs
            print(f"pack faces --workers {workers}: {rates[workers]:8.0f} images/s  "
                  f"(peak RSS main {rss:.0f} MB, largest child {child:.0f} MB)")
        print(f"  single worker / bare loop = {rates[1] / bare_f:.2f} (target >= 0.8)")
        print(f"  2 workers / 1 worker      = {rates[2] / rates[1]:.2f} (target >= 1.6)")
        secs, _, _ = run_pack([*base, "--limit", "12", "--mask-limit", str(ns.masks), "--workers", "1",
                               "--out", str(tmp / "m1")])
        print(f"pack masks --workers 1 : {ns.masks / secs:8.0f} masks/s (incl. 12 faces); "
              f"/ bare = {ns.masks / secs / bare_m:.2f}")
        for n in (ns.memory_faces // 4, ns.memory_faces):
            secs, rss, child = run_pack([*base, "--limit", str(n), "--mask-limit", str(min(n, 12000)),
                                         "--workers", "2", "--out", str(tmp / f"mem{n}")])
            print(f"memory: {n:6d} faces + {min(n, 12000)} masks, 2 workers: main {rss:.0f} MB, "
                  f"largest worker {child:.0f} MB, total <= {rss + 2 * child:.0f} MB ({secs:.1f} s)")
            shutil.rmtree(tmp / f"mem{n}")
        index = json.loads((tmp / "f1" / "index.json").read_text())
        print(f"faces layout: {index['encoding']}, chunk = 1 image, no compression; masks gzip-4, chunk = 1 mask")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
