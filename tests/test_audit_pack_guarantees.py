"""The packer's edges: the sizes it accepts, per-chunk checksums in the shards it writes, and one
packer per output folder."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from data_prep.faces import MIN_SOURCE_SIDE, decode_face
from data_prep.journal import LOCK_NAME, PackLock
from data_prep.pack import main as pack_main
from data_prep.plan import MAX_SIZE, MIN_SIZE, SIZE_MULTIPLE
from inpaint.io.shards import FaceShards, MaskShards
from inpaint.core.errors import ConfigError, DataError
from inpaint.core.shard_format import read_index
from process_support import run_at_once

REPO = Path(__file__).resolve().parents[1]


def jpeg(side: int) -> bytes:
    rng = np.random.default_rng(side)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def faces12(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data_prep.sources import list_images

    dest = tmp_path_factory.mktemp("faces12")
    for name in sorted(list_images(data_root / "faces"))[:12]:
        shutil.copy(data_root / "faces" / name, dest / Path(name).name)
    return dest


def pack(faces: Path, out: Path, size: int, *extra: str) -> Path:
    assert pack_main(["--faces", str(faces), "--masks", "generate", "--mask-count", "24", "--out", str(out),
                      "--size", str(size), "--workers", "1", "--min-per-cell", "1", "--test-masks-per-bucket", "1",
                      *extra]) == 0
    return out


# --- sizes -------------------------------------------------------------------------------------

def test_the_smallest_size_decodes_large_jpegs(faces12: Path, tmp_path: Path) -> None:
    """JPEG draft mode shrinks a 200-px photo to 25 px for a 16-px target; the too-small check must
    look at the photo, not at the draft."""
    assert decode_face(jpeg(200), MIN_SIZE).shape == (MIN_SIZE, MIN_SIZE, 3)
    with pytest.raises(ValueError, match="too small"):
        decode_face(jpeg(MIN_SOURCE_SIDE - 1), MIN_SIZE)
    out = pack(faces12, tmp_path / "o", MIN_SIZE)
    index = read_index(out)
    assert index["size"] == MIN_SIZE and not index["skipped"]
    assert FaceShards(out, "train")[0]["image"].shape == (3, MIN_SIZE, MIN_SIZE)


def test_every_size_the_packer_accepts_is_one_the_models_train_at() -> None:
    from inpaint.core.config import load_config

    for size in (MIN_SIZE, MAX_SIZE):
        assert load_config("smoke", [f"data.size={size}"]).data.size == size
    with pytest.raises(ConfigError):
        load_config("smoke", [f"data.size={MIN_SIZE + SIZE_MULTIPLE // 2}"])


@pytest.mark.parametrize("size, needle", [("100000", f"at most {MAX_SIZE}"), ("1040", f"at most {MAX_SIZE}"),
                                          ("8", f"at least {MIN_SIZE}"), ("24", f"multiple of {SIZE_MULTIPLE}")])
def test_sizes_the_models_cannot_use_are_refused_in_one_line(tmp_path: Path, size: str, needle: str) -> None:
    empty = tmp_path / "faces"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "data_prep.pack", "--faces", str(empty), "--masks", "generate",
                           "--out", str(tmp_path / "o"), "--size", size],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --size {size}:") and needle in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


# --- per-chunk checksums -------------------------------------------------------------------

def _flip_chunk(path: Path, name: str, row: int) -> None:
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info(row)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x10]))


@pytest.fixture(scope="module")
def packed32(faces12: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pack(faces12, tmp_path_factory.mktemp("p") / "o", 32)


def test_raw_faces_and_masks_carry_a_checksum_per_chunk(packed32: Path) -> None:
    for path in packed32.glob("*.h5"):
        with h5py.File(path, "r") as f:
            name = "images" if "images" in f else "masks"
            assert f[name].fletcher32, f"{path.name}:{name} has no per-chunk checksum"


@pytest.mark.parametrize("kind", ["faces", "masks"])
def test_a_flipped_bit_in_a_chunk_is_a_one_line_data_error(packed32: Path, tmp_path: Path, kind: str) -> None:
    root = Path(shutil.copytree(packed32, tmp_path / "s"))
    path = next(root.glob(f"{kind}-train-*.h5"))
    _flip_chunk(path, "images" if kind == "faces" else "masks", 1)
    dataset = FaceShards(root, "train") if kind == "faces" else MaskShards(root, "train")
    dataset[0]  # its neighbours still read
    with pytest.raises(DataError) as caught:
        dataset[1]
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot read sample 1") and "data_prep.pack" in message and "\n" not in message


def test_shards_without_checksums_still_read(packed32: Path, tmp_path: Path) -> None:
    """Shards packed before the checksums (no fletcher32 filter) read exactly as before."""
    root = Path(shutil.copytree(packed32, tmp_path / "old"))
    path = next(root.glob("faces-train-*.h5"))
    with h5py.File(path, "r+") as f:
        images = f["images"][()]
        del f["images"]
        f.create_dataset("images", data=images, chunks=(1, *images.shape[1:]))
    old, new = FaceShards(root, "train"), FaceShards(packed32, "train")
    assert old._sample_source(0)[1]  # the one-call direct chunk read
    for i in range(len(new)):
        assert np.array_equal(old[i]["image"].numpy(), new[i]["image"].numpy())


# --- one packer per folder -----------------------------------------------------------------

_HOLD = """
import sys, time
from pathlib import Path
from data_prep.journal import PackLock
with PackLock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_held_pack_lock_is_respected_whatever_its_file_says(tmp_path: Path) -> None:
    """A holder whose note is not (yet) written, as between creating the lock file and writing the
    pid into it, still keeps a second packer out."""
    out = tmp_path / "o"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        (out / LOCK_NAME).write_text("")
        with pytest.raises(DataError, match="another pack"):
            with PackLock(out):
                pass
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    with PackLock(out):  # the holder is gone: free again
        pass
    assert not (out / LOCK_NAME).exists()


def test_two_packers_into_one_folder_exactly_one_proceeds(faces12: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "data_prep.pack", "--faces", str(faces12), "--masks", "generate", "--mask-count",
           "3000", "--out", str(out), "--size", "64", "--workers", "1", "--min-per-cell", "1"]
    procs, outs = run_at_once(cmd, 2, timeout=300, cwd=REPO)
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)][1]
    lines = loser.strip().splitlines()
    assert len(lines) == 1 and "another pack" in lines[0] and LOCK_NAME in lines[0], loser
    assert read_index(out)["counts"]["masks"]["train"] > 0 and not (out / LOCK_NAME).exists()
