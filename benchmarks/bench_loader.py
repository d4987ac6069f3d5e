"""Random-access throughput of the shard reader, and the storage layout it was chosen by.

    python benchmarks/bench_loader.py [--faces N] [--size 128] [--reads 5000]

Packs N faces (and masks) once, rewrites the face and mask data under several HDF5 layouts
(chunk = 1 sample vs 64 samples; no compression, lzf, gzip) and encodings, and reports, for
each, the file size and samples/s of ``FaceShards``/``MaskShards`` random access in one process,
against indexing the same data held in a numpy array (with the same tensor conversion).
Target: >= 5,000 face samples/s single process at 128 px. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpaint.core.shard_format import sha256_file  # noqa: E402
from data_prep.pack import main as pack_main  # noqa: E402
from data_prep.sources import default_data_root  # noqa: E402
from inpaint.io.shards import FaceShards, MaskShards  # noqa: E402


def rate(fn, n: int, reads: int, seed: int = 0) -> float:
    order = np.random.default_rng(seed).integers(0, n, reads)
    for i in order[:200]:  # warm the page cache and open handles
        fn(int(i))
    start = time.perf_counter()
    for i in order:
        fn(int(i))
    return reads / (time.perf_counter() - start)


def relayout(src: Path, dst: Path, kind: str, chunk: int, compression: str | None) -> None:
    """Copy a packed folder, rewriting the kind's image datasets with another chunking/compression."""
    shutil.copytree(src, dst)
    index = json.loads((dst / "index.json").read_text())
    key = "images" if kind == "faces" else "masks"
    for entry in index["shards"]:
        if entry["kind"] != kind:
            continue
        path = dst / entry["file"]
        rewritten = path.with_name(path.name + ".relayout")
        opts = {"gzip": {"compression": "gzip", "compression_opts": 4}, "lzf": {"compression": "lzf"}}.get(
            compression or "", {})
        with h5py.File(path, "r") as src_f, h5py.File(rewritten, "w") as f:  # a new file: no freed space left
            f.attrs.update(src_f.attrs)
            for name in src_f:
                if name == key:
                    data = src_f[key][()]
                    f.create_dataset(key, data=data, chunks=(min(chunk, len(data)), *data.shape[1:]), **opts)
                else:
                    src_f.copy(src_f[name], f, name)
        rewritten.replace(path)
        entry["sha256"] = sha256_file(path)
    (dst / "index.json").write_text(json.dumps(index))


def folder_mb(root: Path, kind: str) -> float:
    return sum(p.stat().st_size for p in root.glob(f"{kind}-*.h5")) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=3000)
    ap.add_argument("--masks", type=int, default=3000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--reads", type=int, default=5000)
    ns = ap.parse_args()
    data = default_data_root()
    tmp = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        base = tmp / "raw"
        common = ["--faces", str(data / "faces"), "--masks", str(data / "masks"), "--size", str(ns.size),
                  "--limit", str(ns.faces), "--mask-limit", str(ns.masks), "--workers", "2",
                  "--test-masks-per-bucket", "50", "--shard-size", "1000"]
        t0 = time.perf_counter()
        pack_main([*common, "--out", str(base)])
        print(f"packed {ns.faces} faces + {ns.masks} masks at {ns.size} px in {time.perf_counter() - t0:.1f} s\n")

        faces = FaceShards(base, "train", in_memory=True)
        array = np.concatenate([m for m in faces._memory])
        labels = faces.labels

        def from_numpy(i: int) -> dict:
            t = torch.from_numpy(array[i]).permute(2, 0, 1).to(torch.float32).div_(127.5).sub_(1.0)
            return {"image": t, "labels": torch.from_numpy(labels[i].astype(np.int64)), "index": i}

        n = len(faces)
        print(f"faces, random access, one process, {ns.reads} reads of {n} samples at {ns.size} px")
        print(f"{'layout':34s} {'MB':>8s} {'samples/s':>10s}")
        print(f"{'numpy array in RAM (reference)':34s} {array.nbytes / 1e6:8.1f} {rate(from_numpy, n, ns.reads):10.0f}")
        print(f"{'FaceShards in_memory=True':34s} {'':8s} {rate(faces.__getitem__, n, ns.reads):10.0f}")
        for chunk in (1, 64):
            for comp in (None, "lzf", "gzip"):
                name = f"raw-c{chunk}-{comp or 'none'}"
                relayout(base, tmp / name, "faces", chunk, comp)
                ds = FaceShards(tmp / name, "train")
                print(f"{'h5 chunk=' + str(chunk) + ' ' + (comp or 'none'):34s} {folder_mb(tmp / name, 'faces'):8.1f} "
                      f"{rate(ds.__getitem__, n, ns.reads):10.0f}")
                shutil.rmtree(tmp / name)
        for enc in ("png", "jpeg"):
            out = tmp / enc
            pack_main([*common, "--out", str(out), "--encoding", enc])
            ds = FaceShards(out, "train")
            print(f"{'encoded ' + enc + (' q95' if enc == 'jpeg' else ''):34s} {folder_mb(out, 'faces'):8.1f} "
                  f"{rate(ds.__getitem__, n, ns.reads):10.0f}")

        masks = MaskShards(base, "train", in_memory=True)
        marr = np.concatenate(masks._memory)
        m = len(masks)
        print(f"\nmasks, random access, one process, {ns.reads} reads of {m} samples")
        print(f"{'numpy array in RAM (reference)':34s} {marr.nbytes / 1e6:8.1f} "
              f"{rate(lambda i: torch.from_numpy(marr[i]).to(torch.float32).unsqueeze_(0), m, ns.reads):10.0f}")
        for comp in (None, "lzf", "gzip"):
            name = f"masks-{comp or 'none'}"
            relayout(base, tmp / name, "masks", 1, comp)
            ds = MaskShards(tmp / name, "train")
            print(f"{'h5 chunk=1 ' + (comp or 'none'):34s} {folder_mb(tmp / name, 'masks'):8.1f} "
                  f"{rate(ds.__getitem__, m, ns.reads):10.0f}")
            shutil.rmtree(tmp / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
