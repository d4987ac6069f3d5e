"""Trainer building blocks: deterministic pairs and epoch order, rank sharding, deadline
arithmetic, RNG capture, resume compatibility checks, status file, sample grid."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inpaint.core.config import load_config
from inpaint.core.errors import ConfigError, DataError
from inpaint.training.deadline import Deadline
from inpaint.training.pairs import EpochBatches, TrainingPairs, epoch_order
from inpaint.training.state import capture_rng_state, check_config, check_data, config_differences, restore_rng_state
from inpaint.core.contract import Outcome, read_status, write_status


def test_epoch_batches_cover_each_epoch_once_and_reshuffle() -> None:
    s = EpochBatches(num_items=103, batch_size=4, seed=7)
    s.set_epoch(0)
    e0 = [i for batch in s for _, i in batch]
    assert len(e0) == 100 and len(set(e0)) == 100 and s.steps_per_epoch == 25  # drop_last
    s.set_epoch(1)
    e1 = [i for batch in s for _, i in batch]
    assert e1 != e0 and len(set(e1)) == 100
    assert all(key[0] == 1 for batch in s for key in batch)
    s2 = EpochBatches(num_items=103, batch_size=4, seed=7)
    s2.set_epoch(1)
    assert [i for b in s2 for _, i in b] == e1  # a pure function of (seed, epoch)


def test_resume_inside_an_epoch_yields_exactly_the_remaining_batches() -> None:
    s = EpochBatches(num_items=50, batch_size=3, seed=1)
    s.set_epoch(4)
    full = list(s)
    s.set_epoch(4, start_batch=6)
    assert list(s) == full[6:] and len(s) == len(full) - 6
    with pytest.raises(ValueError):
        s.set_epoch(4, start_batch=len(full) + 1)


def test_ranks_get_disjoint_equal_shards() -> None:
    shards = []
    for rank in range(3):
        s = EpochBatches(num_items=100, batch_size=4, seed=0, rank=rank, world_size=3)
        s.set_epoch(2)
        shards.append([i for b in s for _, i in b])
    assert {len(x) for x in shards} == {32}  # 100 // 12 = 8 steps of 4 per rank
    assert len(set().union(*map(set, shards))) == 96
    single = set(epoch_order(100, 0, 2)[:96].tolist())
    assert set().union(*map(set, shards)) == single


def test_training_pairs_are_pure_functions_of_the_key(shards64: Path) -> None:
    from inpaint.io.shards import FaceShards, MaskShards

    faces, masks = FaceShards(shards64, "train"), MaskShards(shards64, "train")
    pairs = TrainingPairs(faces, masks, seed=3, flip_p=0.5)
    a, b = pairs[(0, 5)], pairs[(0, 5)]
    assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["image"], faces[5]["image"])
    assert a["mask"].shape == (1, 64, 64) and set(a["mask"].unique().tolist()) <= {0.0, 1.0}
    # Across epochs the same face meets different masks, some of them mirrored.
    stored = [masks[i]["mask"] for i in range(len(masks))]
    seen, flipped = set(), 0
    for epoch in range(40):
        m = pairs[(epoch, 5)]["mask"]
        same = [i for i, s in enumerate(stored) if torch.equal(s, m)]
        mirrored = [i for i, s in enumerate(stored) if torch.equal(torch.flip(s, dims=(-1,)), m)]
        assert same or mirrored
        seen.add((same or mirrored)[0])
        flipped += bool(mirrored and not same)
    assert len(seen) > 20 and 5 <= flipped <= 35
    never = TrainingPairs(faces, masks, seed=3, flip_p=0.0)
    assert all(any(torch.equal(s, never[(e, 5)]["mask"]) for s in stored) for e in range(5))


def test_deadline_uses_the_slowest_recent_step_and_measured_checkpoint_time() -> None:
    d = Deadline(end=1000.0, start=0.0)
    assert d.reserve_s == 10.0  # 1 % of the budget
    assert not d.must_stop(now=900.0)
    d.record_step(5.0)
    d.record_step(30.0)
    d.record_step(4.0)
    d.record_checkpoint(20.0)
    assert d.step_estimate == 30.0 and d.checkpoint_estimate == 20.0
    assert not d.must_stop(now=1000.0 - 61.0)  # 30 + 20 + 10 = 60 needed
    assert d.must_stop(now=1000.0 - 59.0)
    assert not Deadline(end=None).must_stop()
    both = Deadline.from_args(time_limit=100.0, deadline=50.0, start=0.0)
    assert both.end == 50.0


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1); np.random.seed(2); torch.manual_seed(3)
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(2))
    torch.save(state, tmp_path / "rng.pt")
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_config_differences_ignore_run_length_and_logging_only() -> None:
    saved = load_config("smoke")
    assert config_differences(saved, load_config("smoke", ["train.max_steps=5", "train.epochs=9", "data.workers=0",
                                                          "train.log_every_steps=1", "train.checkpoint_keep=9"])) == []
    diffs = config_differences(saved, load_config("smoke", ["optim.lr=0.001", "train.batch_size=8"]))
    assert diffs == ["optim.lr: 0.0002 → 0.001", "train.batch_size: 4 → 8"]
    with pytest.raises(ConfigError, match="optim.lr.*--force"):
        check_config(saved, load_config("smoke", ["optim.lr=0.001"]), Path("ck.pt"), force=False)
    assert check_config(saved, load_config("smoke", ["optim.lr=0.001"]), Path("ck.pt"), force=True)
    with pytest.raises(DataError, match="train_faces"):
        check_data({"size": 64, "train_faces": 10, "train_masks": 5}, {"size": 64, "train_faces": 11, "train_masks": 5},
                   Path("shards"), Path("ck.pt"), force=False)


def test_status_file_is_complete_json(tmp_path: Path) -> None:
    assert read_status(tmp_path) == {}  # absent: a run not started yet
    out = Outcome(75, "stopped early", epoch=1, step=40, total_steps=300)
    write_status(tmp_path, out)
    status = read_status(tmp_path)
    assert status["state"] == "stopped" and status["exit_code"] == 75 and status["step"] == 40
    assert set(status) == {"state", "exit_code", "epoch", "step", "total_steps", "images_per_s", "checkpoint", "cpu_seconds", "world_size", "message", "time"}
    assert out.line().startswith("stopped (exit 75) step 40/300")
    assert Outcome(1, "bad shards", step=40).line() == "failed (exit 1) step 40: bad shards"  # total unknown
    assert not list(tmp_path.glob("*.tmp-*"))


def test_inpainting_grid_shows_holes_output_composite_and_truth(shards64: Path, tmp_path: Path) -> None:
    from inpaint.io.shards import FaceShards, MaskShards
    from inpaint.metrics.image import composite
    from inpaint.render.visual import inpainting_grid, save_image

    faces, masks = FaceShards(shards64, "test"), MaskShards(shards64, "test")
    image = torch.stack([faces[i]["image"] for i in range(3)])
    mask = torch.stack([masks[i * 20]["mask"] for i in range(3)])
    output = -torch.ones_like(image)  # a black "prediction"
    comp = composite(output, image, mask)
    assert torch.equal(comp[mask.expand_as(comp) == 0], image[mask.expand_as(image) == 0])
    assert (comp[mask.expand_as(comp) == 1] == -1).all()
    path = save_image(inpainting_grid(image, mask, output), tmp_path / "grid.png")
    pic = np.asarray(Image.open(path))
    assert pic.shape[1] == 4 * 64 + 5 * 2 and pic.shape[0] > 3 * 64
    assert (pic[:, 64 + 4: 128 + 4] < 5).all(axis=-1).mean() > 0.5  # the black output column


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1", "SIGUSR2"])
def test_stop_signals_only_set_a_flag(sig: str) -> None:
    import os
    import signal

    from inpaint.training.signals import StopRequest

    before = signal.getsignal(getattr(signal, sig))
    stop = StopRequest().install()
    try:
        assert not stop.requested
        os.kill(os.getpid(), getattr(signal, sig))
        assert stop.requested and stop.signal_name == sig  # and the process is still alive
    finally:
        stop.restore()
    assert signal.getsignal(getattr(signal, sig)) == before


def test_deadline_argument_accepts_unix_and_iso_times() -> None:
    import argparse

    from inpaint.train import parse_deadline, positive_seconds

    assert parse_deadline("1767225600") == 1767225600.0
    assert parse_deadline("2026-01-01T00:00:00+00:00") == 1767225600.0
    with pytest.raises(argparse.ArgumentTypeError):
        parse_deadline("tomorrow")
    with pytest.raises(argparse.ArgumentTypeError):
        positive_seconds("-5")


def test_the_benchmark_times_the_trainers_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench_train's step and the trainer's, from the same seed on the same batch, are the same
    computation: the same losses, and the same weights after it."""
    from inpaint.training.distributed import DistInfo
    from inpaint.training.networks import TrainingModels
    from inpaint.training.step import train_step

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_train

    cfg = load_config("smoke", ["model.generator.widths=[8, 16, 16]", "model.generator.dmfb_inner=8",
                                "model.generator.dmfb_blocks=1", "model.discriminator.widths=[8, 8, 8, 8]",
                                "train.precision=fp32"])
    image, mask = bench_train.synthetic_batch(2, 64, torch.device("cpu"), channels_last=False)
    torch.manual_seed(0)
    models = TrainingModels.build(cfg, torch.device("cpu"), DistInfo())
    trained = train_step(models, image, mask)
    torch.manual_seed(0)
    bench = bench_train.TrainStep(cfg, torch.device("cpu"), bench_train.Setting(batch=2))
    timed = bench(image, mask)
    torch.testing.assert_close(timed["total"], trained["g_total"])
    torch.testing.assert_close(timed["d"], trained["d_loss"])
    for mine, theirs in zip(models.generator.parameters(), bench.generator.parameters()):
        torch.testing.assert_close(mine, theirs)
