"""``jobs.submit --estimate``: how many parts (jobs) a run will take, before or during it.

Throughput comes from the run's own ``metrics.jsonl`` (``img_per_s`` of recent logged steps)
when it has started, else from ``--img-per-s`` (a benchmark figure for the target GPU). Steps
come from ``status.json`` (what is left) or, for a new run, from the config and the shards.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import median

from inpaint.errors import ConfigError
from jobs import ledger
from jobs.options import JobSpec
from jobs.walltime import format_walltime

STARTUP_S = 120  # start-up, data staging and the first slow steps of every part


def measured_img_per_s(run_dir: Path | str, last: int = 20) -> float | None:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    values = []
    for line in path.read_text().splitlines()[-200:]:
        try:
            v = json.loads(line).get("img_per_s")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(v, (int, float)) and v > 0:
            values.append(float(v))
    return median(values[-last:]) if values else None


def _config(spec: JobSpec) -> dict:
    from inpaint.config import load_config

    overrides = [spec.train_args[i + 1] for i, a in enumerate(spec.train_args) if a == "--set"]
    return load_config(spec.config, overrides)


def planned_steps(spec: JobSpec, cfg: dict) -> int:
    args = spec.train_args
    if "--max-steps" in args:
        return int(args[args.index("--max-steps") + 1])
    if cfg["train"].get("max_steps"):
        return int(cfg["train"]["max_steps"])
    index = Path(spec.data) / "index.json"
    try:
        n_train = int(json.loads(index.read_text())["counts"]["faces"]["train"])
    except (OSError, KeyError, ValueError, TypeError):
        raise ConfigError(f"{index}: cannot read counts.faces.train to plan the steps; pass --max-steps") from None
    return int(cfg["train"]["epochs"]) * math.ceil(n_train / int(cfg["train"]["batch_size"]))


def estimate(spec: JobSpec, img_per_s: float | None = None) -> dict:
    cfg = _config(spec)
    status = ledger.read_status_json(spec.run_dir)
    total = int(status.get("total_steps") or planned_steps(spec, cfg))
    done = int(status.get("step") or 0)
    measured = measured_img_per_s(spec.run_dir)
    rate = measured or img_per_s
    if not rate:
        raise ConfigError(f"{spec.run_dir}: no measured throughput yet (metrics.jsonl); pass --img-per-s "
                          "from a benchmark on the target GPU")
    batch = int(cfg["train"]["batch_size"])
    train_s = max(0, total - done) * batch / rate
    useful_s = max(60, spec.time_limit_s - STARTUP_S)
    parts = max(1, math.ceil(train_s / useful_s)) if total > done else 0
    return {"total_steps": total, "done_steps": done, "img_per_s": rate,
            "source": "measured (metrics.jsonl)" if measured else "given (--img-per-s)",
            "train_s": train_s, "parts": parts, "walltime": spec.walltime,
            "fits_max_resubmits": parts <= spec.max_resubmits + 1}


def print_estimate(spec: JobSpec, img_per_s: float | None = None) -> int:
    e = estimate(spec, img_per_s)
    print(f"steps: {e['done_steps']}/{e['total_steps']} done; throughput {e['img_per_s']:.1f} img/s {e['source']}")
    print(f"training left: {format_walltime(int(e['train_s']))} (HH:MM:SS)")
    print(f"parts of {e['walltime']}: {e['parts']} (max {spec.max_resubmits + 1} with --max-resubmits {spec.max_resubmits})")
    if not e["fits_max_resubmits"]:
        print(f"warning: raise --max-resubmits to at least {e['parts'] - 1} or use a longer queue (gpu_long)")
    return 0
