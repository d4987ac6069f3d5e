"""One lease of a lent GPU, in as few device calls as the 30-minute budget allows.

A lease is short (30 min of device time, 10 min per command, the machine goes back after 30 s
idle), so every step is here, ready to run, and was rehearsed at toy size on the CPU box:

    check        GPU, torch, shards (sha256), the modules the trainer needs; fails fast
    bench        bench_train.py (Model 2 grid + batch sweep) and bench_infer.py, into bench.txt
    train=SECS   Models 1, 2 and 3 side by side on the one GPU, each `python -m inpaint.train
                 --time-limit SECS`: a "walltime" that ends in exit 75 with a checkpoint, the next
                 call resumes from it (the PBS chain's contract). One line per model per part
                 in parts.jsonl: exit code, steps, epochs, wall time, img/s.
    eval         inpaint.evaluate on identical pairs (no identity: dlib is not on the device),
                 export of Model 2 (fp16 + JSON with step, epoch, data, metrics, sha256)
    collect DIR  (here, after the last call) join the returned weights parts into
                 inpaint/weights/model2.pt, check the sha256, unpack the results tarball

Run from the repo root. The plan for one lease (see benchmarks/gpu/README.md):

    python3 benchmarks/gpu/session.py check train=480             # call 1, carry .gpu
    python3 benchmarks/gpu/session.py train=480                   # call 2
    python3 benchmarks/gpu/session.py train=180 eval bench        # call 3, carry .gpu-lpips

The benchmark comes last: if it overruns, training, evaluation and weights are already safe.
After every step the results are packed into $OUT (at most 8 files, 16 MiB each; what is there
comes back even when a command is killed at its time limit): the run logs and tables as one
tarball, the Model 2 weights as 15 MiB parts. `--toy` rehearses all of it on a CPU with tiny
models in a minute or two.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from inpaint.core.atomic import write_bytes  # noqa: E402
from inpaint.io.weights import WeightsCard, weights_sidecar  # noqa: E402
from inpaint.training.metrics_log import read_metrics  # noqa: E402
from inpaint.core.contract import read_status  # noqa: E402

MODELS = ("model1", "model2", "model3")
PART_BYTES = 15 * 2**20  # $OUT returns files of at most 16 MiB
TOY_SET = ["model.widths=[8,16,16]", "model.dmfb_blocks=1", "model.dmfb_inner=8", "model.disc_widths=[8,8,8,8]",
           "data.workers=0", "train.log_every_steps=5", "train.checkpoint_every_steps=20"]


def log(msg: str) -> None:
    print(f"[session {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], env: dict[str, str], out: Path | None = None, check: bool = True) -> int:
    """Run a command from the repo root, echoing it; its output goes to the console and ``out``."""
    log("$ " + " ".join(cmd))
    with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        sink = open(out, "a", encoding="utf-8") if out else None
        try:
            for line in p.stdout:  # type: ignore[union-attr]
                sys.stdout.write(line)
                if sink:
                    sink.write(line)
        finally:
            if sink:
                sink.close()
    if check and p.returncode != 0:
        raise SystemExit(f"session: {' '.join(cmd[:4])} … exited {p.returncode}")
    return p.returncode


class Session:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.runs = (REPO / args.runs).resolve()
        self.data = (REPO / args.data).resolve()
        self.runs.mkdir(parents=True, exist_ok=True)
        self.out = Path(os.environ.get("OUT") or self.runs / "out")
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(args.threads),
                        FACEFILL_WEIGHTS=str((REPO / args.weights).resolve()))
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")]))
        self.device = "cpu" if args.toy else "cuda"

    # --- phases ---------------------------------------------------------------------------
    def check(self) -> None:
        """Everything the later phases rely on, in seconds: a missing piece costs no training time."""
        if not (self.data / "index.json").is_file():
            raise SystemExit(f"session: no shards at {self.data}: run benchmarks/gpu/prepare.sh here and carry .gpu")
        code = ("import torch, h5py, PIL, numpy, yaml; import inpaint.train, inpaint.evaluate, data_prep.verify; "
                "print('torch', torch.__version__, 'cuda', torch.version.cuda, 'h5py', h5py.__version__, "
                "'numpy', numpy.__version__, 'pillow', PIL.__version__); "
                "print('gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none', "
                "'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())")
        run([sys.executable, "-c", code], self.env, self.runs / "check.txt")
        if not self.args.toy:
            run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm", "--format=csv"],
                self.env, self.runs / "check.txt", check=False)
        run([sys.executable, "-m", "data_prep.verify", str(self.data)], self.env, self.runs / "check.txt")
        if not (REPO / self.args.weights / "vgg16_imagenet_features_relu3_3.pth").is_file():
            raise SystemExit(f"session: {self.args.weights}/vgg16_imagenet_features_relu3_3.pth is missing: Model 3 needs it")

    def bench(self) -> None:
        out = self.runs / "bench.txt"
        if self.args.toy:
            run([sys.executable, "benchmarks/bench_train.py", "--models", "smoke", "--size", "64", "--min-time", "1"], self.env, out)
            return
        # Capped: a slow torch.compile must not eat the training slot of the same call.
        run(["timeout", "180", sys.executable, "benchmarks/bench_train.py", "--models", "model2", "--max-batch", "256",
             "--min-time", "2"], self.env, out, check=False)
        run(["timeout", "45", sys.executable, "benchmarks/bench_infer.py", "--repeats", "20"], self.env, out, check=False)

    def train(self, seconds: float) -> None:
        """The three models at once, each with its own time limit; wait for all, then tabulate."""
        parts_file = self.runs / "parts.jsonl"
        part = 1 + sum(1 for _ in open(parts_file)) // len(MODELS) if parts_file.is_file() else 1
        sets = [f"train.batch_size={self.args.batch}", f"optim.lr={self.args.lr}", f"train.epochs={self.args.epochs}",
                "train.log_every_steps=100", f"data.workers={self.args.workers}"]
        if self.args.toy:
            sets += TOY_SET + ["data.workers=0"]
        procs = {}
        for name in MODELS:
            run_dir = self.runs / name
            before = read_status(run_dir)
            cmd = [sys.executable, "-m", "inpaint.train", "--config", name, "--data", str(self.data),
                   "--run-dir", str(run_dir), "--time-limit", str(seconds), "--device", self.device]
            for s in sets:
                cmd += ["--set", s]
            logf = open(self.runs / f"{name}.part{part}.log", "w", encoding="utf-8")
            log(f"part {part}: {name}: $ {' '.join(cmd)}")
            procs[name] = (subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=logf, stderr=subprocess.STDOUT),
                           logf, time.time(), before)
        rows = []
        for name, (proc, logf, t0, before) in procs.items():
            code = proc.wait()
            logf.close()
            wall = time.time() - t0
            after = read_status(self.runs / name)  # {} when the part wrote none
            records = read_metrics(self.runs / name)
            rate = round(float(records[-1]["img_per_s"]), 1) if records else None
            steps_per_epoch = (after.get("total_steps") or 0) / self.args.epochs
            row = {"part": part, "model": name, "exit": code, "wall_s": round(wall, 1),
                   "step_before": before.get("step") or 0, "step": after.get("step"),
                   "total_steps": after.get("total_steps"),
                   "epochs": round(after["step"] / steps_per_epoch, 2) if steps_per_epoch and after.get("step") else 0,
                   "img_per_s": after.get("images_per_s"), "img_per_s_last": rate, "batch": self.args.batch, "lr": self.args.lr,
                   "time_limit_s": seconds, "message": after.get("message")}
            rows.append(row)
            with open(parts_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if code not in (0, 75):
                log(f"{name} failed (exit {code}); the end of its log:")
                sys.stdout.write("".join(open(self.runs / f"{name}.part{part}.log", encoding="utf-8").readlines()[-25:]))
        print(f"\npart {part} (--time-limit {seconds:.0f} s, batch {self.args.batch}, lr {self.args.lr}):")
        print(f"{'model':<8} {'exit':>4} {'wall s':>7} {'steps':>15} {'epochs':>6} {'img/s':>7}")
        for r in rows:
            print(f"{r['model']:<8} {r['exit']:>4} {r['wall_s']:>7.0f} {str(r['step_before']) + '→' + str(r['step']):>15} "
                  f"{r['epochs']:>6.2f} {r['img_per_s_last'] or 0:>7.0f}")

    def eval(self) -> None:
        """Identical pairs for all three, then Model 2's weights with its averages in the sidecar."""
        eval_dir = self.runs / "eval"
        cmd = [sys.executable, "-m", "inpaint.evaluate", "--data", str(self.data), "--out", str(eval_dir),
               "--no-identity", "--device", self.device, "--workers", str(self.args.workers), "--quiet"]
        for name in MODELS:
            if (self.runs / name / "checkpoints").is_dir():
                cmd += ["--run-dir", str(self.runs / name)]
        lpips = REPO / self.args.lpips
        if (lpips / "alexnet_imagenet_features.pth").is_file():
            cmd += ["--lpips-weights", str(lpips)]
        if self.args.toy:
            cmd += ["--pairs-per-bucket", "4"]
        else:
            cmd += ["--batch-size", "128"]
        evaluated = run(cmd, self.env, self.runs / "eval.txt", check=False) == 0
        # The weights come back even if the evaluation failed: they are the scarce part of a lease.
        export = self.runs / "export" / "model2.pt"
        metrics = ["--metrics", str(eval_dir / "metrics.json")] if evaluated else []
        run([sys.executable, "-m", "inpaint.io.weights", "export", str(self.runs / "model2"), str(export), *metrics],
            self.env, self.runs / "eval.txt")
        card = WeightsCard.read(weights_sidecar(export))
        index = json.loads((self.data / "index.json").read_text(encoding="utf-8"))
        card.extra["shards"] = {"encoding": index.get("encoding"), "args": index.get("args"), "counts": index.get("counts")}
        parts = [json.loads(line) for line in open(self.runs / "parts.jsonl", encoding="utf-8")]
        card.extra["training"] = [part for part in parts if part["model"] == "model2"]
        card.write(weights_sidecar(export))
        data = export.read_bytes()
        for i in range(0, len(data), PART_BYTES):
            (self.out / f"model2.pt.part{i // PART_BYTES}").write_bytes(data[i:i + PART_BYTES])
        shutil.copy2(export.with_suffix(".json"), self.out / "model2.json")
        if not evaluated:
            raise SystemExit("session: inpaint.evaluate failed (see eval.txt in session.tar.gz); Model 2's weights were "
                             "exported without metrics: evaluate again here or in the next call")

    def pack(self) -> None:
        """Logs, tables, metrics, the evaluation and the newest sample sheet of each run: one tarball."""
        tar_path = self.out / "session.tar.gz"
        with tarfile.open(tar_path, "w:gz") as tar:
            for path in sorted(self.runs.glob("*.txt")) + sorted(self.runs.glob("*.log")) + [self.runs / "parts.jsonl"]:
                if path.is_file():
                    tar.add(path, arcname=path.name)
            for name in MODELS:
                run_dir = self.runs / name
                for f in ("config.yaml", "metrics.jsonl", "status.json", "train.log"):
                    if (run_dir / f).is_file():
                        tar.add(run_dir / f, arcname=f"{name}/{f}")
                samples = sorted((run_dir / "samples").glob("*.png"))
                if samples:
                    tar.add(samples[-1], arcname=f"{name}/{samples[-1].name}")
            if (self.runs / "eval").is_dir():
                tar.add(self.runs / "eval", arcname="eval")
        log(f"packed {tar_path} ({tar_path.stat().st_size / 2**20:.1f} MiB)")


def collect(files_at: Path, weights_dir: Path = REPO / "inpaint" / "weights", results: Path = REPO / "runs" / "gpu-collected") -> None:
    """Here, after the last call: join ``model2.pt.part*`` (checking the sidecar's sha256) into the
    default weights, and unpack the tarball for the RESULTS.md tables."""
    parts = sorted(files_at.glob("model2.pt.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    meta_path = files_at / "model2.json"
    if parts and meta_path.is_file():
        data = b"".join(p.read_bytes() for p in parts)
        card = WeightsCard.read(meta_path)
        digest = hashlib.sha256(data).hexdigest()
        if digest != card.sha256:
            raise SystemExit(f"session: the joined weights' sha256 {digest[:12]}… differs from model2.json's: fetch the parts again")
        weights_dir.mkdir(parents=True, exist_ok=True)
        write_bytes(weights_dir / "model2.pt", data)
        card.source = f"{card.checkpoint or '?'} of a GPU run (benchmarks/gpu/session.py)"
        card.write(weights_dir / "model2.json")
        log(f"wrote {weights_dir / 'model2.pt'} ({len(data) / 2**20:.1f} MiB, sha256 ok) and model2.json")
    tarball = files_at / "session.tar.gz"
    if tarball.is_file():
        results.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(results, filter="data")
        log(f"unpacked {tarball} into {results}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("steps", nargs="+", help="check | bench | train=SECONDS | eval | collect DIR")
    p.add_argument("--data", default=".gpu/shards/128")
    p.add_argument("--weights", default=".gpu/weights", help="folder with the VGG16 weights (FACEFILL_WEIGHTS)")
    p.add_argument("--lpips", default=".gpu-lpips", help="folder with the LPIPS-alex weights")
    p.add_argument("--runs", default="runs/gpu")
    p.add_argument("--batch", type=int, default=16, help="per-model batch (reference 4; recorded in parts.jsonl)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("--workers", type=int, default=4, help="loader processes per model")
    p.add_argument("--threads", type=int, default=2, help="OMP threads per process")
    p.add_argument("--toy", action="store_true", help="tiny models on the CPU: rehearse every step here")
    args = p.parse_args(argv)
    if args.steps[0] == "collect":
        if len(args.steps) != 2:
            p.error("collect takes one folder: the files_at folder of the last device call")
        collect(Path(args.steps[1]))
        return 0
    for step in args.steps:  # all checked before anything runs: a typo must cost no device time
        name, _, value = step.partition("=")
        if not (name == "train" and value.replace(".", "", 1).isdigit() or name in ("check", "bench", "eval") and not value):
            p.error(f"unknown step {step!r}: check, bench, train=SECONDS, eval")
    session = Session(args)
    try:
        for step in args.steps:
            name, _, value = step.partition("=")
            t0 = time.time()
            if name == "train":
                session.train(float(value))
            else:
                getattr(session, name)()
            log(f"{step} done in {time.time() - t0:.0f} s")
            session.pack()
    except BaseException:  # a failed step: what exists so far still goes back
        session.pack()
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
