"""``python -m inpaint.train`` end to end on the 64 px test shards with a tiny model: exact
resume, deadlines, signals, refusal of a changed config, damaged checkpoints, NaN, DDP, plots.

Runs that only need a return code call ``main`` in-process (a fresh interpreter costs seconds);
anything about exit codes, signals or torchrun runs in a subprocess like the job layer does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inpaint.io.checkpoint import CheckpointWarning, find_checkpoints, read_checkpoint
from inpaint.core.errors import ConfigError, DataError
from inpaint.train import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.widths=[8,16,16]", "model.dmfb_blocks=1", "model.dmfb_inner=8", "model.disc_widths=[8,8,8,8]",
        "train.batch_size=2", "data.workers=0", "train.log_every_steps=5", "train.checkpoint_every_steps=1000"]


def args(shards: Path, run_dir: Path, *extra: str, sets: tuple[str, ...] = ()) -> list[str]:
    out = ["--config", "smoke", "--data", str(shards), "--run-dir", str(run_dir)]
    for s in (*TINY, *sets):
        out += ["--set", s]
    return out + list(extra)


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start_trainer(shards: Path, run: Path, *sets: str, log_every: int = 1) -> subprocess.Popen:
    """``python -m inpaint.train`` for a long run (5,000 steps, one DataLoader worker) in its own
    process group, as a terminal or a batch system starts it: to be stopped by a signal."""
    cmd = [sys.executable, "-m", "inpaint.train", *args(shards, run, "--max-steps", "5000",
                                                         sets=("data.workers=1", f"train.log_every_steps={log_every}", *sets))]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
                            start_new_session=True)


def wait_for_training(proc: subprocess.Popen, run: Path, timeout: float, poll: float = 0.05) -> None:
    """Until the trainer logged its first step (metrics.jsonl exists); fails if it exits first."""
    t0 = time.time()
    while not (run / "metrics.jsonl").is_file():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "training did not start"
        time.sleep(poll)



def stop_when_training(shards: Path, run: Path, sig: int, *, start_timeout: float, log_every: int = 1,
                       poll: float = 0.05) -> tuple[subprocess.Popen, str, str]:
    """A long run signalled through its process group (as a terminal or a batch system does) once
    it trains; its stdout and stderr after it exits."""
    proc = start_trainer(shards, run, log_every=log_every)
    try:
        wait_for_training(proc, run, timeout=start_timeout, poll=poll)
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, out, err

def weights(run_dir: Path) -> dict:
    return read_checkpoint(find_checkpoints(run_dir)[0])


def assert_same_weights(a: dict, b: dict) -> None:
    for part in ("generator", "discriminator"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name} differs"


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


@pytest.mark.parametrize("speed", ["cpu", "gpu-like"])
def test_stop_and_resume_is_bit_identical_to_a_straight_run(shards64: Path, tmp_path: Path, monkeypatch, speed) -> None:
    """``gpu-like``: bf16 autocast, channels_last and fused Adam are chosen only on CUDA, so CI
    would never run them; switched on here, a stopped-and-resumed run must still retrace a
    straight one."""
    if speed == "gpu-like":
        import inpaint.training.networks as networks
        from inpaint.training.environment import SpeedPaths

        gpu_like = SpeedPaths(amp_dtype=torch.bfloat16, channels_last=True, fused_adam=True, compile=False)
        monkeypatch.setattr(networks, "speed_paths", lambda cfg, device: gpu_like)
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(args(shards64, straight, "--max-steps", "8", "--deterministic")) == 0
    assert main(args(shards64, split, "--max-steps", "4", "--deterministic")) == 0
    assert weights(split)["step"] == 4
    assert main(args(shards64, split, "--max-steps", "8", "--deterministic")) == 0
    a, b = weights(straight), weights(split)
    assert a["step"] == b["step"] == 8 and b["epoch_step"] == 8
    assert_same_weights(a, b)
    assert all(v.dtype == torch.float32 for v in a["generator"].values() if v.is_floating_point())  # autocast leaves weights fp32
    assert torch.equal(a["opt_g"]["state"][0]["exp_avg_sq"], b["opt_g"]["state"][0]["exp_avg_sq"])
    precision = "bf16" if speed == "gpu-like" else "fp32"
    assert f"device cpu, precision {precision}" in (split / "train.log").read_text()  # the switch took effect
    # The log of the split run reads like one run: each logged step once.
    steps = [json.loads(line)["step"] for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 5, 8]
    finished = status(split)
    assert finished["state"] == "finished" and finished["step"] == 8
    assert finished["images_per_s"] > 0 and finished["checkpoint"] == "checkpoints/step-000000008.pt"
    assert (split / "samples" / "epoch-0001.png").is_file() and (split / "config.yaml").is_file()


def test_time_limit_stops_with_75_and_a_rerun_ends_like_an_uninterrupted_run(shards64: Path, tmp_path: Path) -> None:
    total = "40"
    straight, limited = tmp_path / "straight", tmp_path / "limited"
    assert main(args(shards64, straight, "--max-steps", total, "--deterministic")) == 0
    # 4 s from start-up, of which >= 2 s are kept as safety margin: far fewer than 40 steps fit.
    proc = subprocess.run([sys.executable, "-m", "inpaint.train", *args(shards64, limited, "--max-steps", total,
                           "--deterministic", "--time-limit", "4")], capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 75, proc.stdout + proc.stderr
    stopped = status(limited)
    assert stopped["state"] == "stopped" and stopped["step"] < 40
    assert proc.stdout.strip().splitlines()[-1].startswith(f"stopped (exit 75) step {stopped['step']}/40")
    assert weights(limited)["step"] == stopped["step"]  # the checkpoint is where we stopped
    assert stopped["checkpoint"] == f"checkpoints/step-{stopped['step']:09d}.pt" and stopped["total_steps"] == 40
    assert (stopped["images_per_s"] > 0) if stopped["step"] else stopped["images_per_s"] is None  # a loaded CPU may fit no step
    assert main(args(shards64, limited, "--max-steps", total, "--deterministic")) == 0
    assert status(limited)["step"] == status(straight)["step"] == 40
    assert_same_weights(weights(limited), weights(straight))


def test_sigterm_to_the_process_group_checkpoints_and_exits_75(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # One DataLoader worker: the signal reaches it too (as on PBS) and must not kill it.
    proc, out, err = stop_when_training(shards64, run, signal.SIGTERM, start_timeout=90, log_every=2, poll=0.1)
    assert proc.returncode == 75, out + err
    st = status(run)
    assert st["state"] == "stopped" and "SIGTERM" in st["message"] and 2 <= st["step"] < 5000
    assert weights(run)["step"] == st["step"]
    assert out.strip().splitlines()[-1].startswith("stopped (exit 75)")


def test_changed_config_is_refused_unless_forced(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(args(shards64, run, "--max-steps", "2")) == 0
    with pytest.raises(ConfigError, match=r"optim\.lr: 0\.0002 → 0\.001.*--force"):
        main(args(shards64, run, "--max-steps", "3", sets=("optim.lr=0.001",)))
    refused = status(run)  # the newest valid checkpoint's position, not 0
    assert weights(run)["step"] == 2 and refused["exit_code"] == 2 and refused["step"] == 2
    assert refused["checkpoint"] == "checkpoints/step-000000002.pt" and refused["total_steps"] == 3
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = run / "checkpoints" / f"step-000000003.pt.tmp-{dead.pid}"  # a killed writer's leftover
    stale.write_bytes(b"half a checkpoint")
    assert main(args(shards64, run, "--max-steps", "3", "--force", sets=("optim.lr=0.001",))) == 0
    assert not stale.exists()
    resumed = weights(run)
    assert resumed["step"] == 3 and resumed["config"]["optim"]["lr"] == 0.001
    assert resumed["opt_g"]["param_groups"][0]["lr"] == 0.001
    assert "lr: 0.001" in (run / "config.yaml").read_text()


def test_corrupt_newest_checkpoint_falls_back_with_a_warning(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(args(shards64, run, "--max-steps", "4", sets=("train.checkpoint_every_steps=2",))) == 0
    newest = find_checkpoints(run)[0]
    assert newest.name == "step-000000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.warns(CheckpointWarning, match="step-000000004"):
        assert main(args(shards64, run, "--max-steps", "5", sets=("train.checkpoint_every_steps=2",))) == 0
    assert "resumed from" in (run / "train.log").read_text() and "step-000000002.pt" in (run / "train.log").read_text()
    assert (run / "checkpoints" / "step-000000004.pt.corrupt").is_file()  # set aside, not retried or kept
    assert weights(run)["step"] == 5


def test_nan_loss_fails_with_1_and_keeps_the_last_good_checkpoint(shards64: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    assert main(args(shards64, run, "--max-steps", "2")) == 0
    good = find_checkpoints(run)
    # A loss that turns NaN mid-run, as a diverging run's does (the config refuses an absurd lr now).
    import inpaint.losses.objective

    real, calls = inpaint.losses.objective.hole_l1, []

    def diverging(*a, **k):
        calls.append(1)
        value = real(*a, **k)
        return value * float("nan") if len(calls) > 3 else value

    monkeypatch.setattr(inpaint.losses.objective, "hole_l1", diverging)
    assert main(args(shards64, run, "--max-steps", "30")) == 1
    st = status(run)
    assert st["state"] == "failed" and st["exit_code"] == 1 and "non-finite" in st["message"]
    assert find_checkpoints(run) == good
    assert all(torch.isfinite(v).all() for v in weights(run)["generator"].values() if v.is_floating_point())


def test_bad_input_exits_2_with_one_line_naming_the_file(shards64: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_shards"
    proc = subprocess.run([sys.executable, "-m", "inpaint.train", *args(missing, tmp_path / "run", "--max-steps", "1")],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and str(missing) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="unknown key 'train.epoch'"):
        main(args(shards64, tmp_path / "run", sets=("train.epoch=3",)))
    with pytest.raises(DataError, match="64 px.*data.size = 128"):
        main(args(shards64, tmp_path / "run", sets=("data.size=128",)))
    broken = tmp_path / "broken"
    shutil.copytree(shards64, broken)
    next(broken.glob("faces-train-*.h5")).write_bytes(b"garbage")
    with pytest.raises(DataError):
        main(args(broken, tmp_path / "run2", "--max-steps", "1"))


def test_two_process_gloo_ddp_run_finishes(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "inpaint.train",
           *args(shards64, run, "--max-steps", "6", "--device", "cpu", sets=("train.checkpoint_every_steps=3",))]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    st = status(run)
    assert st["state"] == "finished" and st["step"] == 6
    assert st["total_steps"] == 6 and [p.name for p in find_checkpoints(run)] == ["step-000000006.pt", "step-000000003.pt"]
    log = (run / "train.log").read_text()
    assert "2 processes" in log and log.count("checkpoint step-") == 2  # rank 0 alone writes
    assert "68 steps/epoch" in log  # 274 faces / (2 per batch x 2 ranks)


def test_loss_curves_in_the_plot_and_in_tensorboard(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(args(shards64, run, "--max-steps", "10", sets=("train.log_every_steps=2",))) == 0
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for name in ("g_total", "d_loss", "hole_l1", "img_per_s", "lr"):
        scalars = events.Scalars(name)
        assert [e.step for e in scalars] == [2, 4, 6, 8, 10]
        assert [e.value for e in scalars] == pytest.approx([r[name] for r in logged], rel=1e-6)
    assert [e.step for e in events.Images("samples")] == [10]  # the sample sheet of the (partial) epoch
    from inpaint.plot import main as plot_main

    assert plot_main([str(run)]) == 0
    pic = np.asarray(Image.open(run / "loss_curves.png").convert("RGB")).astype(int)
    assert pic.shape[0] >= 260 and pic.shape[1] >= 1000
    blue = (abs(pic[..., 0] - 31) < 20) & (abs(pic[..., 1] - 119) < 20) & (abs(pic[..., 2] - 180) < 20)
    assert blue.sum() > 200  # the curves are drawn, not just axes
    with pytest.raises(DataError, match="metrics.jsonl"):
        plot_main([str(tmp_path / "nothing")])


def test_learning_rate_decay_and_cpu_time_carry_across_a_resume(shards64: Path, tmp_path: Path) -> None:
    """The decay is a function of the step alone: a run stopped at step 4 and resumed logs the
    same learning rates as a straight one. CPU seconds add up over the parts in status.json and
    in every checkpoint (the cost a weights card reports)."""
    decay = ("optim.lr_decay=linear", "optim.lr_decay_start=0.25", "train.log_every_steps=2")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(args(shards64, straight, "--max-steps", "8", "--deterministic", sets=decay)) == 0
    # The first part is cut by a time limit, not by --max-steps: the schedule spans the run's total steps.
    proc = subprocess.run([sys.executable, "-m", "inpaint.train", *args(shards64, split, "--max-steps", "8",
                           "--deterministic", "--time-limit", "4", sets=decay)], capture_output=True, text=True,
                          env=env(), timeout=300)
    assert proc.returncode == 75, proc.stdout + proc.stderr
    first = status(split)["cpu_seconds"]
    assert status(split)["world_size"] == 1  # one process: what jobs.status shows beside the nodes
    assert main(args(shards64, split, "--max-steps", "8", "--deterministic", sets=decay)) == 0
    logged = {r["step"]: r["lr"] for r in map(json.loads, (straight / "metrics.jsonl").read_text().splitlines())}
    # The update that made step s used the rate for s - 1 steps done: flat to step 2, then linear to 0 at 8.
    assert logged == pytest.approx({s: 2e-4 * min(1.0, 1 - (s - 1 - 2) / 6) for s in (2, 4, 6, 8)})
    resumed = {r["step"]: r["lr"] for r in map(json.loads, (split / "metrics.jsonl").read_text().splitlines())}
    assert resumed and all(resumed[s] == logged[s] for s in resumed if s in logged)
    assert_same_weights(weights(straight), weights(split))
    total = status(split)["cpu_seconds"]
    assert 0 < first < total and weights(split)["cpu_seconds"] == pytest.approx(total, abs=0.1)
