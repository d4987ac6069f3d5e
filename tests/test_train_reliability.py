"""The trainer under failure: a damaged shard read by a DataLoader worker, two trainers on one
run dir, a full disk, stale temporaries and unreadable checkpoints, a refused resume.

Each runs ``python -m inpaint.train`` the way the job layer does (a subprocess with a timeout)
wherever the point is an exit code, a hang or what reaches stderr.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inpaint.core.contract import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_FINISHED, read_status
from disk_support import fill_disk
from process_support import run_at_once
from test_train_cli import args, env



def train_cmd(shards: Path, run_dir: Path, *extra: str, sets: tuple[str, ...] = ()) -> list[str]:
    """The trainer's command line for the tiny smoke model of ``test_train_cli``."""
    return [sys.executable, "-m", "inpaint.train", *args(shards, run_dir, *extra, sets=sets)]


def damage_mask_chunks(shards: Path) -> None:
    """Overwrite the middle of every compressed chunk of the training masks: the index, ratios and
    buckets stay readable, so the damage shows only when the mask pixels are decoded (by the
    training-set digest at start-up, or by a DataLoader worker)."""
    import h5py

    for path in shards.glob("masks-train-*.h5"):
        with h5py.File(path, "r") as f:
            ds = f["masks"]
            assert ds.compression is not None  # a gzip stream, as in the report
            spans = [(info.byte_offset, info.size) for info in map(ds.id.get_chunk_info, range(ds.id.get_num_chunks()))]
        with open(path, "r+b") as f:
            for offset, size in spans:
                f.seek(offset + size // 3)
                f.write(b"\xa5\x5a" * max(1, size // 6))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_damaged_shard_exits_2_at_once_naming_it(shards64: Path, tmp_path: Path, workers: int) -> None:
    broken = tmp_path / "shards"
    shutil.copytree(shards64, broken)
    damage_mask_chunks(broken)
    run = tmp_path / "run"
    t0 = time.time()
    proc = subprocess.run(train_cmd(broken, run, "--max-steps", "50", sets=(f"data.workers={workers}",)),
                          capture_output=True, text=True, env=env(), timeout=120)
    seconds = time.time() - t0
    assert proc.returncode == EXIT_BAD_INPUT, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "cannot read" in proc.stderr and "masks-train-" in proc.stderr and "data_prep.pack" in proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    status = read_status(run)
    assert status["state"] == "failed" and status["exit_code"] == EXIT_BAD_INPUT
    assert seconds < 60, f"took {seconds:.0f} s to exit"


def test_two_trainers_on_one_run_dir_exactly_one_trains(shards64: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = train_cmd(shards64, run, "--max-steps", "30", sets=("train.log_every_steps=1",))
    procs, outs = run_at_once(cmd, 2, timeout=180, env=env())
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [EXIT_FINISHED, EXIT_BAD_INPUT], outs
    winner, loser = (0, 1) if codes[0] == EXIT_FINISHED else (1, 0)
    err = outs[loser][1]
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "in use by another trainer" in err and f"pid {procs[winner].pid}" in err
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))  # every step once
    assert (run / "train.log").read_text().count("starting a new run") == 1
    status = read_status(run)
    assert status["state"] == "finished" and status["step"] == 30  # the refused one did not overwrite it
    # The holder is gone (its lock file stays): the next trainer is not blocked.
    from inpaint.train import main

    assert (run / "train.lock").is_file()
    assert main(train_cmd(shards64, run, "--max-steps", "31")[3:]) == EXIT_FINISHED
    assert read_status(run)["step"] == 31


@pytest.fixture
def small_disk(tmpfs) -> Path:
    """A 1.6 MB tmpfs: one tiny-model checkpoint (~1.1 MB) and the run's logs fit, two do not."""
    return tmpfs(1600 << 10)


def test_full_disk_ends_with_one_line_and_keeps_the_last_good_checkpoint(shards64: Path, small_disk: Path) -> None:
    run = small_disk / "run"
    proc = subprocess.run(train_cmd(shards64, run, "--max-steps", "4", sets=("train.checkpoint_every_steps=2",)),
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == EXIT_FAILED, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "step-000000004.pt" in lines[0] and "disk is full" in lines[0] and "needed" in lines[0] and " MB" in lines[0]
    assert "enforce fail" not in proc.stderr + proc.stdout
    kept = run / "checkpoints" / "step-000000002.pt"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [kept.name]  # no temporaries left
    from inpaint.io.checkpoint import read_checkpoint

    assert read_checkpoint(kept)["step"] == 2
    status = read_status(run)
    assert status["state"] == "failed" and status["exit_code"] == EXIT_FAILED and "disk is full" in status["message"]
    assert status["checkpoint"] == "checkpoints/step-000000002.pt"

    fill_disk(small_disk)  # 100 % full: not even status.json can be written
    before = (run / "status.json").read_text()
    proc = subprocess.run(train_cmd(shards64, run, "--max-steps", "6", sets=("train.checkpoint_every_steps=2",)),
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == EXIT_FAILED, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "disk is full" in lines[0], proc.stderr
    assert "status.json not written" in lines[0] and "step-000000002.pt kept" in lines[0]
    assert (run / "status.json").read_text() == before and read_checkpoint(kept)["step"] == 2


def test_resuming_on_other_shards_with_the_same_counts_is_refused(shards64: Path, tmp_path: Path) -> None:
    """Equal split sizes are not the same data: one training mask changed is another epoch stream,
    and the digests of the training lists (not just the counts) say so."""
    import h5py

    from inpaint.core.errors import DataError
    from inpaint.train import main

    run = tmp_path / "run"
    assert main(args(shards64, run, "--max-steps", "2")) == 0
    other = tmp_path / "other"
    shutil.copytree(shards64, other)
    with h5py.File(sorted(other.glob("masks-train-*.h5"))[0], "r+") as f:
        f["masks"][0] = 255 - f["masks"][0]  # same count, one mask different
    with pytest.raises(DataError, match="masks_digest"):
        main(args(other, run, "--max-steps", "4"))
    assert main(args(shards64, run, "--max-steps", "4")) == 0  # the original shards still resume
