"""``jobs.submit --estimate``: how many parts (jobs) a run will take, before or during it.

Only what the trainer publishes and the chain records is read: ``status.json`` through the
contract (step, planned ``total_steps``, measured ``images_per_s``) and the ledger (how long each
ended part took and how far it got — the step time a part really achieves, start-up included).
A run that has not started yet has neither: its planned steps come from ``--max-steps`` and its
step time from ``--img-per-s`` and the batch size given with ``--set train.batch_size=B``.
"""

from __future__ import annotations

import math

from inpaint.core.contract import read_status
from inpaint.core.errors import ConfigError
from jobs import ledger
from jobs.spec import JobSpec
from jobs.walltime import format_walltime

STARTUP_S = 120  # start-up, data staging and the first slow steps of every part (new runs only)


def measured_step_s(run_dir: str) -> float | None:
    """Seconds per step over the ended training parts of the ledger, start-up included."""
    seconds = steps = 0.0
    previous = 0
    for part in ledger.read_parts(run_dir):
        if not part.training or part.step is None:
            continue
        begun = part.start_step if part.start_step is not None else previous
        if part.start_time and part.end_time and part.step > begun:
            seconds += ledger.iso_seconds(part.end_time) - ledger.iso_seconds(part.start_time)
            steps += part.step - begun
        previous = part.step
    return seconds / steps if steps and seconds > 0 else None


def _batch_size(spec: JobSpec) -> int | None:
    for i, arg in enumerate(spec.train_args[:-1]):
        key, _, value = spec.train_args[i + 1].partition("=")
        if arg == "--set" and key == "train.batch_size" and value.isdigit():
            return int(value)
    return None


def estimate(spec: JobSpec, img_per_s: float | None = None, max_steps: int | None = None) -> dict:
    status = read_status(spec.run_dir)
    total = status.get("total_steps") or max_steps
    if not total:
        raise ConfigError(
            f"{spec.run_dir}: no status.json with planned steps yet; pass --max-steps N (the "
            "planned steps) to estimate a run before its first part"
        )
    done = int(status.get("step") or 0)
    step_s, source = measured_step_s(spec.run_dir), "measured by the ledger's parts"
    startup_s = 0 if step_s else STARTUP_S
    if step_s is None:
        batch = _batch_size(spec)
        if not img_per_s or not batch:
            raise ConfigError(
                f"{spec.run_dir}: no part has ended yet; pass --img-per-s R (a benchmark on the target "
                "GPU) and --set train.batch_size=B to estimate before the first part"
            )
        step_s, source = batch / img_per_s, f"given ({img_per_s:g} img/s at batch {batch})"
    train_s = max(0, total - done) * step_s
    useful_s = max(60, spec.time_limit_s - startup_s)
    parts = max(1, math.ceil(train_s / useful_s)) if total > done else 0
    return {
        "total_steps": int(total),
        "done_steps": done,
        "step_s": step_s,
        "source": source,
        "images_per_s": status.get("images_per_s"),
        "train_s": train_s,
        "parts": parts,
        "walltime": spec.walltime,
        "fits_max_resubmits": parts <= spec.max_resubmits + 1,
    }


def print_estimate(spec: JobSpec, img_per_s: float | None = None, max_steps: int | None = None) -> int:
    e = estimate(spec, img_per_s, max_steps)
    rate = f"; trainer measured {e['images_per_s']:.1f} img/s" if e["images_per_s"] else ""
    print(f"steps: {e['done_steps']}/{e['total_steps']} done; {e['step_s']:.3f} s/step {e['source']}{rate}")
    print(f"training left: {format_walltime(int(e['train_s']))} (HH:MM:SS)")
    print(f"parts of {e['walltime']}: {e['parts']} (max {spec.max_resubmits + 1} with --max-resubmits {spec.max_resubmits})")
    if not e["fits_max_resubmits"]:
        print(f"warning: raise --max-resubmits to at least {e['parts'] - 1} or use a longer queue (gpu_long)")
    return 0
