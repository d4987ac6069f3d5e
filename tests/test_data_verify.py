"""``data_prep.verify`` against damaged shard folders, and a packer killed mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from data_prep.journal import JOURNAL_NAME
from data_prep.verify import main as verify_main
from inpaint.io.shards import FaceShards, read_index
from inpaint.core.errors import DataError
from inpaint.core.shard_format import sha256_file

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.fixture()
def shards(shards64: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(shards64, tmp_path / "shards"))


def test_intact_folder_verifies(shards: Path, capsys) -> None:
    assert verify_main([str(shards)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


@pytest.mark.parametrize("victim", ["faces-train-00000.h5", "masks-test-00000.h5"])
def test_flipped_byte_is_detected(shards: Path, victim: str) -> None:
    path = shards / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=victim):
        verify_main([str(shards)])


def test_cli_names_the_bad_shard_in_one_line(shards: Path) -> None:
    path = shards / "faces-test-00000.h5"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "data_prep.verify", str(shards)], capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "faces-test-00000.h5" in err[0]
    assert "BAD faces-test-00000.h5 (sha256" in proc.stdout


def test_structure_checked_without_hash(shards: Path) -> None:
    index = read_index(shards)
    # a well-formed HDF5 file with the wrong content under a shard's name: the sha256 is updated
    # to match, so only the structural checks can catch it
    shutil.copy(shards / "faces-test-00000.h5", shards / "masks-test-00000.h5")
    for s in index["shards"]:
        if s["file"] == "masks-test-00000.h5":
            s["sha256"] = sha256_file(shards / s["file"])
    (shards / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match="masks-test-00000.h5"):
        verify_main([str(shards), "--no-hash"])


def test_truncated_shard_is_reported_as_damaged_not_as_a_lock_problem(shards: Path, capsys) -> None:
    path = shards / "faces-train-00000.h5"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="faces-train-00000.h5"):
        verify_main([str(shards), "--no-hash"])  # past the hash check: HDF5 itself must refuse it
    bad = [line for line in capsys.readouterr().out.splitlines() if line.startswith("BAD ")]
    assert len(bad) == 1 and bad[0].startswith("BAD faces-train-00000.h5 (truncated or damaged HDF5 file")
    assert "LOCKING" not in bad[0]


def test_mask_ratio_tampering_is_detected(shards: Path) -> None:
    with h5py.File(shards / "masks-train-00000.h5", "r+") as f:
        f["ratio"][0] = f["ratio"][0] + 0.05
    with pytest.raises(DataError, match="masks-train-00000.h5"):
        verify_main([str(shards), "--no-hash"])


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", '{"format": 99}'])
def test_bad_index_is_a_clear_error(shards: Path, content: str | None) -> None:
    index = shards / "index.json"
    if content is None:
        index.unlink()
    else:
        index.write_text(content)
    with pytest.raises(DataError, match="index.json.*data_prep.pack"):
        verify_main([str(shards)])
    with pytest.raises(DataError, match="index.json"):
        FaceShards(shards, "train")


def test_missing_shard_is_named(shards: Path) -> None:
    (shards / "masks-train-00000.h5").unlink()
    with pytest.raises(DataError, match=r"masks-train-00000.h5"):
        verify_main([str(shards)])


def _pack_cmd(faces: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "data_prep.pack", "--faces", str(faces), "--masks", "generate",
            "--mask-count", "60", "--out", str(out), "--size", "32", "--limit", "2400", "--shard-size", "100",
            "--workers", "1", "--min-per-cell", "2"]


def test_sigkill_mid_run_leaves_nothing_that_verifies_and_rerun_completes(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    proc = subprocess.Popen(_pack_cmd(data_root / "faces", out), env=ENV, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "faces-train-00002.h5").exists():  # three shards finished, many to go
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "packer made no progress"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert not (out / "index.json").exists()
    with pytest.raises(DataError, match="index.json"):
        verify_main([str(out)])
    finished = sorted(p.name for p in out.glob("*.h5"))
    assert all(".tmp-" not in name for name in finished)  # temporary names never look like shards
    for name in finished:  # every file carrying a shard name is complete
        with h5py.File(out / name, "r") as f:
            assert f["images"].shape[0] == f.attrs["count"] == f["paths"].shape[0]

    rerun = subprocess.run(_pack_cmd(data_root / "faces", out), env=ENV, cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({len(finished)} reused from an earlier run)" in rerun.stdout
    assert rerun.stdout.strip().splitlines()[-1] == str(out)
    assert verify_main([str(out)]) == 0
    assert not list(out.glob("*.tmp-*")) and not (out / JOURNAL_NAME).exists()

    clean = tmp_path / "clean"
    subprocess.run(_pack_cmd(data_root / "faces", clean), env=ENV, cwd=tmp_path, capture_output=True,
                   check=True, timeout=300)
    resumed, fresh = read_index(out), read_index(clean)
    assert resumed["counts"] == fresh["counts"]
    assert [(s["file"], s["sha256"]) for s in resumed["shards"]] == [(s["file"], s["sha256"]) for s in fresh["shards"]]


def test_damaged_encoded_face_is_caught_by_deep_verify_and_reader(data_root: Path, tmp_path: Path) -> None:
    from data_prep.pack import main as pack_main
    from data_prep.sources import list_images

    faces = tmp_path / "faces"
    faces.mkdir()
    for name in list_images(data_root / "faces")[::400]:
        shutil.copy(data_root / "faces" / name, faces / Path(name).name)
    out = tmp_path / "png"
    assert pack_main(["--faces", str(faces), "--masks", "generate", "--mask-count", "12", "--out", str(out),
                      "--size", "32", "--workers", "1", "--encoding", "png", "--min-per-cell", "1"]) == 0
    assert verify_main([str(out), "--deep"]) == 0
    with h5py.File(out / "faces-train-00000.h5", "r+") as f:
        blob = f["images_encoded"][2].copy()
        blob[60:] = 0  # keeps the PNG signature and header, destroys the compressed pixels
        f["images_encoded"][2] = blob
    with pytest.raises(DataError, match="faces-train-00000.h5"):
        verify_main([str(out), "--no-hash", "--deep"])
    assert verify_main([str(out), "--no-hash"]) == 0  # a shallow check cannot see inside the PNG
    ds = FaceShards(out, "train")
    assert ds[1]["image"].shape == (3, 32, 32)
    with pytest.raises(DataError, match="faces-train-00000.h5: sample 2 does not decode"):
        ds[2]
