"""Step time of the smoke model on the two-node SLURM cluster vs two processes on one machine vs
one process, measured side by side (CPU, gloo, same shards, seed and global batch).

    sudo python benchmarks/bench_multinode.py                 # packs 120 faces at 32 px itself
    sudo python benchmarks/bench_multinode.py --size 64 --steps 30 --global-batch 16

Needs root: it starts the two-node cluster of tests/slurm_two_nodes.py (two network namespaces
joined by a veth, one slurmd each) and stops it at the end. The three runs, one after the other:

1. one process: ``python -m inpaint.train`` with batch B;
2. one machine, two processes: ``torchrun --standalone --nproc-per-node 2`` with B/2 each;
3. two nodes, one process each: ``python -m jobs.submit --executor slurm --nodes 2`` with B/2 each.

A step's time is the median gap between consecutive ``metrics.jsonl`` records (one per step),
the first ``--warmup`` steps left out; start-up (imports, rendezvous) is reported apart. Both
"nodes" share this machine's cores, so the figures say what the launch and the collectives cost,
not what a second real machine would add.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def step_times(run: Path, warmup: int) -> tuple[float, int]:
    """(median seconds per step after ``warmup`` steps, steps recorded)."""
    times = [json.loads(line)["time"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    gaps = [b - a for a, b in zip(times, times[1:])][warmup:]
    return statistics.median(gaps), len(times)


def train_args(data: Path, steps: int, batch: int, size: int) -> list[str]:
    return ["--data", str(data), "--max-steps", str(steps), "--device", "cpu", "--set", f"data.size={size}",
            "--set", "data.workers=0", "--set", f"train.batch_size={batch}", "--set", "train.log_every_steps=1",
            "--set", "train.checkpoint_every_steps=1000", "--set", "train.epochs=1000"]


def run_local(run: Path, argv: list[str], threads: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    t0 = time.monotonic()
    subprocess.run(argv + ["--run-dir", str(run)], env=env, cwd=ROOT, check=True, capture_output=True, timeout=1800)
    return time.monotonic() - t0


def run_two_nodes(cluster, run: Path, args: list[str], workdir: Path) -> float:
    from jobs.chain_state import ENDED, read_chain_state

    profile = workdir / "two-nodes.yaml"
    profile.write_text(f"scheduler: slurm\nnetwork_interface: {cluster.ifname}\n")
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "jobs.submit", "--executor", "slurm", "--profile", str(profile),
                    "--nodes", "2", "--ncpus", "1", "--queue", cluster.partition, "--model", "smoke",
                    "--run-dir", str(run), *args], env=cluster.env, cwd=ROOT, check=True, capture_output=True,
                   timeout=120)
    while not (read_chain_state(run) and read_chain_state(run).state in ENDED):
        time.sleep(0.2)
    assert read_chain_state(run).state == "done", read_chain_state(run)
    return time.monotonic() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, help="packed shards (default: pack 120 faces of ../shared/data)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--global-batch", type=int, default=8)
    a = p.parse_args()
    from slurm_two_nodes import start_two_nodes, stop_two_nodes

    work = Path(tempfile.mkdtemp(prefix="facefill-bench-multinode-"))
    work.chmod(0o755)
    data = a.data
    if data is None:
        data = work / "shards"
        faces = ROOT.parent / "shared" / "data" / "faces"
        subprocess.run([sys.executable, "-m", "data_prep.pack", "--faces", str(faces), "--masks", "generate",
                        "--mask-count", "60", "--limit", "120", "--size", str(a.size), "--out", str(data),
                        "--test-masks-per-bucket", "2", "--min-per-cell", "1", "--workers", "1"],
                       cwd=ROOT, check=True, capture_output=True, timeout=600)
    half = a.global_batch // 2
    rows = []
    trainer = [sys.executable, "-m", "inpaint.train", "--config", "smoke"]
    wall = run_local(work / "one", trainer + train_args(data, a.steps, a.global_batch, a.size), threads=2)
    rows.append(("1 process, batch %d" % a.global_batch, work / "one", wall, f"{' '.join(trainer[1:])} ..."))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                "inpaint.train", "--config", "smoke"]
    wall = run_local(work / "two-procs", torchrun + train_args(data, a.steps, half, a.size), threads=1)
    rows.append((f"1 node x 2 processes, batch {half} each", work / "two-procs", wall, "torchrun --standalone ..."))
    cluster = start_two_nodes(work / "cluster")
    try:
        wall = run_two_nodes(cluster, work / "two-nodes", train_args(data, a.steps, half, a.size), work)
    finally:
        stop_two_nodes(cluster)
    rows.append((f"2 nodes x 1 process, batch {half} each", work / "two-nodes", wall, "jobs.submit --nodes 2 ..."))
    print(f"smoke model, {a.size} px, global batch {a.global_batch}, {a.steps} steps, CPU, gloo; "
          f"{os.cpu_count()} cores shared by everything")
    print(f"{'run':40} {'s/step':>8} {'img/s':>7} {'wall s':>7}")
    for label, run, wall, _ in rows:
        step_s, _ = step_times(run, a.warmup)
        print(f"{label:40} {step_s:8.3f} {a.global_batch / step_s:7.1f} {wall:7.1f}")


if __name__ == "__main__":
    main()
