"""The torch readers: item contract, lazy per-worker HDF5 handles, in-memory mode, clear errors."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from inpaint.io.shards import FaceShards, MaskShards, read_index
from inpaint.core.errors import DataError
from inpaint.core.shard_format import is_lock_error


def test_face_items_follow_the_contract(shards64: Path) -> None:
    ds = FaceShards(shards64, "train")
    index = read_index(shards64)
    assert len(ds) == index["counts"]["faces"]["train"] and ds.size == 64
    with h5py.File(shards64 / "faces-train-00000.h5", "r") as f:
        raw = f["images"][5]
    item = ds[5]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 64, 64)
    assert item["labels"].dtype == torch.int64 and item["labels"].shape == (3,)
    assert item["index"] == 5
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), raw / 127.5 - 1.0, atol=1e-6)
    assert item["labels"].tolist() == ds.labels[5].tolist()
    assert ds[-1]["index"] == len(ds) - 1
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_mask_items_follow_the_contract(shards64: Path) -> None:
    ds = MaskShards(shards64, "test")
    assert len(ds) == 60 and ds.ratios.shape == (60,) and ds.buckets.shape == (60,)
    assert np.bincount(ds.buckets, minlength=6).tolist() == [10] * 6
    for i in (0, 17, 59):
        item = ds[i]
        assert item["mask"].shape == (1, 64, 64) and item["mask"].dtype == torch.float32
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        assert item["ratio"] == pytest.approx(float(ds.ratios[i])) == pytest.approx(item["mask"].mean().item())
        assert item["bucket"] == int(ds.buckets[i]) and item["index"] == i


def test_in_memory_matches_lazy(shards64: Path) -> None:
    for cls, split, key in ((FaceShards, "test", "image"), (MaskShards, "train", "mask")):
        lazy, mem = cls(shards64, split), cls(shards64, split, in_memory=True)
        assert len(lazy) == len(mem)
        for i in range(0, len(lazy), 5):
            assert torch.equal(lazy[i][key], mem[i][key])
        assert not mem._handles


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_workers_open_their_own_handles(shards64: Path, workers: int) -> None:
    ds = FaceShards(shards64, "train")
    expected = torch.stack([ds[i]["image"] for i in range(48)])  # parent now holds an open handle
    assert ds._handles
    subset = torch.utils.data.Subset(ds, range(48))
    loader = DataLoader(subset, batch_size=16, num_workers=workers, multiprocessing_context="fork" if workers else None)
    got = torch.cat([batch["image"] for batch in loader])
    assert torch.equal(got, expected)


def test_pickled_dataset_carries_no_handle(shards64: Path) -> None:
    ds = MaskShards(shards64, "train")
    first = ds[3]["mask"]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handles == {} and torch.equal(clone[3]["mask"], first)


def test_unreadable_shard_is_a_clear_error(shards64: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(shards64, tmp_path / "s"))
    (root / "faces-test-00000.h5").write_bytes(b"garbage, not HDF5\n" * 100)
    with pytest.raises(DataError, match=r"faces-test-00000.h5: truncated or damaged HDF5 shard"):
        FaceShards(root, "test")
    (root / "masks-train-00000.h5").unlink()
    with pytest.raises(DataError, match=r"masks-train-00000.h5: shard listed in index.json is missing"):
        MaskShards(root, "train")


@pytest.mark.parametrize("kept", [0.5, 0.001])
def test_truncated_shard_is_called_damaged_not_a_locking_problem(shards64: Path, tmp_path: Path,
                                                                  kept: float) -> None:
    """HDF5 says "truncated file: ... sblock->base_addr" for a cut-off shard; "sblock" contains
    "lock", which once sent people to HDF5_USE_FILE_LOCKING instead of to verify and a repack."""
    root = Path(shutil.copytree(shards64, tmp_path / "s"))
    path = root / "faces-train-00000.h5"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(DataError) as caught:
        FaceShards(root, "train")
    message = str(caught.value)
    assert message.startswith(f"{path}: truncated or damaged HDF5 shard") and "\n" not in message
    assert f"python -m data_prep.verify {root}" in message and "data_prep.pack" in message
    assert "LOCKING" not in message and "cannot lock" not in message


def test_a_shard_locked_by_a_writer_gets_the_locking_hint(shards64: Path, tmp_path: Path) -> None:
    """A real lock conflict (another process holds the shard open for writing) still names
    HDF5_USE_FILE_LOCKING, and ``is_lock_error`` tells it from a damaged file."""
    root = Path(shutil.copytree(shards64, tmp_path / "s"))
    path = root / "masks-test-00000.h5"
    env = {k: v for k, v in os.environ.items() if k != "HDF5_USE_FILE_LOCKING"}
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); "
                               "print('open', flush=True); time.sleep(60)", str(path)],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DataError, match=r"masks-test-00000.h5: HDF5 cannot lock the file .*"
                                            r"HDF5_USE_FILE_LOCKING=FALSE"):
            MaskShards(root, "test")
        with pytest.raises(OSError) as locked:
            h5py.File(path, "r")
        assert is_lock_error(locked.value)
    finally:
        holder.kill()
        holder.wait()
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(OSError) as truncated:
        h5py.File(path, "r")
    assert "sblock" in str(truncated.value) and not is_lock_error(truncated.value)


def test_unknown_split_and_missing_folder(shards64: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="choose one of train, val, test, eval_balanced"):
        FaceShards(shards64, "validation")
    with pytest.raises(DataError, match="choose one of train, val, test"):
        MaskShards(shards64, "eval_balanced")
    with pytest.raises(DataError, match="does not exist"):
        FaceShards(tmp_path / "nothing", "train")


def test_counts_disagreeing_with_shards_are_rejected(shards64: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(shards64, tmp_path / "s"))
    index = read_index(root)
    index["counts"]["faces"]["train"] += 1
    (root / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match="counts.faces.train"):
        FaceShards(root, "train")


def test_forked_child_never_reuses_the_parent_handle(shards64: Path) -> None:
    ds = FaceShards(shards64, "train")
    parent_handle = ds._handle(0)
    expected = ds[7]["image"]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: what a fork-started DataLoader worker sees
        ok = 0
        try:
            child_handle = ds._handle(0)
            ok = int(child_handle is not parent_handle and torch.equal(ds[7]["image"], expected))
        finally:
            os.write(write_end, bytes([ok]))
            os._exit(0)
    os.close(write_end)
    verdict = os.read(read_end, 1)
    os.waitpid(pid, 0)
    assert verdict == b"\x01"
    assert ds._handle(0) is parent_handle  # the parent keeps its own
