"""Packing real UTKFace photos and NVIDIA masks: counts, splits, labels, buckets, balanced set,
encodings, generated masks and the default locations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from data_prep.balanced import select_balanced
from data_prep.faces import parse_utkface_labels
from data_prep.mask_gen import generate_mask
from data_prep.pack import main as pack_main
from data_prep.sources import default_data_root, list_images
from data_prep.splits import face_order, face_split
from inpaint.core.buckets import BUCKET_EDGES, bucket_of
from inpaint.io.shards import FaceShards, MaskShards, read_index
from inpaint.core.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def _strs(ds) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in ds[()]]


def split_paths(root: Path, kind: str, split: str) -> list[str]:
    index = read_index(root)
    out: list[str] = []
    for s in index["shards"]:
        if s["kind"] == kind and s["split"] == split:
            with h5py.File(root / s["file"], "r") as f:
                out += _strs(f["paths"])
    return out


def copy_faces(data_root: Path, dest: Path, names: list[str]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(data_root / "faces" / name, dest / Path(name).name)
    return dest


def pack(faces: Path, masks: Path | str, out: Path, *extra: str) -> Path:
    code = pack_main(["--faces", str(faces), "--masks", str(masks), "--out", str(out), "--size", "32",
                      "--workers", "1", "--min-per-cell", "1", "--test-masks-per-bucket", "2", *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def face_names(data_root: Path) -> list[str]:
    return face_order(list_images(data_root / "faces"))


def test_shards64_counts_and_buckets(shards64: Path) -> None:
    index = read_index(shards64)
    faces, masks = index["counts"]["faces"], index["counts"]["masks"]
    assert faces["train"] + faces["test"] + len([s for s in index["skipped"] if s["kind"] == "faces"]) == 300
    assert faces["train"] > 0 and faces["test"] > 0 and faces["eval_balanced"] > 0
    assert 0.05 < faces["test"] / (faces["train"] + faces["test"]) < 0.17  # ~90/10
    assert masks["train"] + masks["test"] == 240
    assert index["counts"]["mask_buckets"]["test"] == [10] * 6
    assert all(n > 0 for n in index["counts"]["mask_buckets"]["train"])
    assert index["size"] == 64 and index["encoding"] == "raw"
    for s in index["shards"]:
        with h5py.File(shards64 / s["file"], "r") as f:
            data = f["images"] if s["kind"] == "faces" else f["masks"]
            assert data.shape[0] == s["count"] and data.dtype == np.uint8
            assert data.chunks[0] == 1  # one sample per chunk: random access reads one chunk


def test_faces_never_leak_between_splits(shards64: Path) -> None:
    train, test = set(split_paths(shards64, "faces", "train")), set(split_paths(shards64, "faces", "test"))
    assert not train & test
    hashes = {}
    for split in ("train", "test"):
        for s in read_index(shards64)["shards"]:
            if s["kind"] == "faces" and s["split"] == split:
                with h5py.File(shards64 / s["file"], "r") as f:
                    for h in _strs(f["hashes"]):
                        assert hashes.setdefault(h, split) == split


def test_labels_parsed_from_utkface_names(shards64: Path) -> None:
    ds = FaceShards(shards64, "train")
    paths = split_paths(shards64, "faces", "train")
    for path, labels in zip(paths, ds.labels):
        age, gender, race = Path(path).name.split("_")[:3]  # AGE_GENDER_RACE_TIMESTAMP.jpg.chip.jpg
        assert labels.tolist() == [int(age), int(gender), int(race)]
    assert parse_utkface_labels("39_1_20170116174525125.jpg.chip.jpg") == (39, 1, -1)  # race missing
    assert parse_utkface_labels("00001.jpg") == (-1, -1, -1)  # CelebA-HQ: no labels


def test_mask_ratio_and_bucket_come_from_pixels(shards64: Path, data_root: Path) -> None:
    ds = MaskShards(shards64, "train")
    paths = split_paths(shards64, "masks", "train")
    for i in range(0, len(ds), 7):
        item = ds[i]
        mask = item["mask"].numpy()[0]
        assert item["ratio"] == pytest.approx(mask.mean(), abs=1e-6)
        assert item["bucket"] == bucket_of(mask.mean())
        # independently: nearest-resize the source PNG (255 = hole) and compare pixel for pixel
        with Image.open(data_root / "masks" / paths[i]) as src:
            expected = (np.asarray(src.convert("L").resize((64, 64), Image.Resampling.NEAREST)) > 127)
        np.testing.assert_array_equal(mask.astype(bool), expected)


def test_limit_is_label_neutral(face_names: list[str]) -> None:
    ages = [int(Path(n).name.split("_")[0]) for n in face_names[:300]]
    all_ages = [int(Path(n).name.split("_")[0]) for n in face_names]
    lexicographic = [int(Path(n).name.split("_")[0]) for n in sorted(face_names)[:300]]
    assert np.median(lexicographic) < 15  # what name order would give: mostly children
    assert abs(np.median(ages) - np.median(all_ages)) <= 5


def test_split_is_deterministic_and_stable_when_files_are_added(
        data_root: Path, face_names: list[str], tmp_path: Path) -> None:
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:80])
    masks = data_root / "masks"
    first = pack(faces, masks, tmp_path / "a", "--mask-limit", "48")
    again = pack(faces, masks, tmp_path / "b", "--mask-limit", "48", "--workers", "2")  # process pool
    for kind, split in (("faces", "train"), ("faces", "test"), ("masks", "train"), ("masks", "test")):
        assert split_paths(first, kind, split) == split_paths(again, kind, split)
    for s in read_index(first)["shards"]:  # byte-identical shards, whatever the number of workers
        assert (tmp_path / "b" / s["file"]).read_bytes() == (first / s["file"]).read_bytes()
    copy_faces(data_root, faces, face_names[80:120])
    grown = pack(faces, masks, tmp_path / "c", "--mask-limit", "48")
    for split in ("train", "test"):
        before = set(split_paths(first, "faces", split))
        after = set(split_paths(grown, "faces", split))
        assert before <= after, f"a face moved out of {split} when files were added"


def test_balanced_selection_on_all_utkface_labels(face_names: list[str]) -> None:
    labels = np.array([parse_utkface_labels(n) for n in face_names])
    chosen, comp = select_balanced(face_names, labels, min_per_cell=10, ages=(18, 60), seed=0)
    picked = labels[chosen]
    assert ((picked[:, 0] >= 18) & (picked[:, 0] <= 60)).all()
    cells = {(r, g): 0 for r in range(5) for g in range(2)}
    for _, g, r in picked:
        cells[(r, g)] += 1
    assert len(set(cells.values())) == 1 and comp["per_cell"] == next(iter(cells.values())) >= 10
    assert comp["total"] == len(chosen) >= 100 and not comp["shortfall"]
    again, _ = select_balanced(face_names, labels, 10, (18, 60), seed=0)
    other, _ = select_balanced(face_names, labels, 10, (18, 60), seed=1)
    assert chosen == again and chosen != other


def test_balanced_split_is_a_labelled_subset_of_test(shards64: Path) -> None:
    index = read_index(shards64)
    comp = index["balanced"]
    test, bal = FaceShards(shards64, "test"), FaceShards(shards64, "eval_balanced")
    test_paths = split_paths(shards64, "faces", "test")
    bal_paths = split_paths(shards64, "faces", "eval_balanced")
    assert len(bal) == comp["total"] == len(bal_paths) > 0
    for j, path in enumerate(bal_paths):
        i = test_paths.index(path)
        assert np.array_equal(bal[j]["image"].numpy(), test[i]["image"].numpy())
        assert bal.labels[j].tolist() == test.labels[i].tolist()
        assert 18 <= bal.labels[j][0] <= 60
    for cell in comp["cells"]:
        assert cell["selected"] == min(cell["available"], comp["per_cell"])
    short = {s["cell"] for s in comp["shortfall"]}
    assert short == {f"{c['race']}/{c['gender']}" for c in comp["cells"] if c["available"] < 2}


def test_balanced_shortfall_is_an_error_with_strict(data_root: Path, face_names: list[str], tmp_path: Path) -> None:
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:40])
    with pytest.raises(DataError, match="balanced set.*--min-per-cell"):
        pack_main(["--faces", str(faces), "--masks", "generate", "--mask-count", "24", "--out",
                   str(tmp_path / "o"), "--size", "32", "--workers", "1", "--min-per-cell", "50", "--strict"])


def test_small_buckets_give_a_recorded_smaller_test_share(data_root: Path, face_names: list[str],
                                                          tmp_path: Path, capsys) -> None:
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:30])
    out = tmp_path / "o"
    assert pack_main(["--faces", str(faces), "--masks", str(data_root / "masks"), "--mask-limit", "36",
                      "--out", str(out), "--size", "32", "--workers", "1"]) == 0
    split = read_index(out)["mask_split"]
    assert split["requested_test_per_bucket"] == 500
    assert split["test_per_bucket"] == [n // 2 for n in split["available_per_bucket"]]
    assert len(split["reduced_buckets"]) == 6
    assert read_index(out)["counts"]["mask_buckets"]["test"] == split["test_per_bucket"]
    assert "each gives half its masks to test" in capsys.readouterr().err


def test_png_is_lossless_and_jpeg_is_close_and_smaller(shards64: Path, data_root: Path, face_names: list[str],
                                                       tmp_path: Path) -> None:
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:40])
    raw = pack(faces, "generate", tmp_path / "raw", "--mask-count", "24")
    png = pack(faces, "generate", tmp_path / "png", "--mask-count", "24", "--encoding", "png")
    jpg = pack(faces, "generate", tmp_path / "jpg", "--mask-count", "24", "--encoding", "jpeg", "--quality", "90")
    a, b, c = (FaceShards(p, "train") for p in (raw, png, jpg))
    assert len(a) == len(b) == len(c) > 0
    assert read_index(png)["encoding"] == "png"
    for i in range(len(a)):
        assert np.array_equal(a[i]["image"].numpy(), b[i]["image"].numpy())
        assert np.abs(a[i]["image"].numpy() - c[i]["image"].numpy()).mean() < 0.05
    size = lambda root: sum(p.stat().st_size for p in root.glob("faces-*.h5"))  # noqa: E731
    assert size(jpg) < size(raw)
    with h5py.File(png / "faces-train-00000.h5", "r") as f:
        assert "images_encoded" in f and "images" not in f


def test_generated_masks_fill_all_buckets(data_root: Path, face_names: list[str], tmp_path: Path) -> None:
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:20])
    out = pack(faces, "generate", tmp_path / "o", "--mask-count", "60", "--size", "48")
    index = read_index(out)
    assert index["mask_split"]["source"] == "generated"
    assert index["counts"]["masks"]["train"] + index["counts"]["masks"]["test"] == 60
    assert all(n > 0 for n in index["counts"]["mask_buckets"]["train"])
    masks = MaskShards(out, "train")
    for i in range(len(masks)):
        m = masks[i]
        lo, hi = BUCKET_EDGES[m["bucket"]]
        assert lo < m["mask"].mean().item() <= hi
    assert np.array_equal(generate_mask(7, 48, 3).mask, generate_mask(7, 48, 3).mask)
    assert not np.array_equal(generate_mask(7, 48, 3).mask, generate_mask(7, 48, 4).mask)


def test_black_hole_convention(data_root: Path, face_names: list[str], tmp_path: Path) -> None:
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:20])
    names = list_images(data_root / "masks")[::1000]
    white, black = tmp_path / "white", tmp_path / "black"
    white.mkdir(), black.mkdir()
    for name in names:
        with Image.open(data_root / "masks" / name) as img:
            img.save(white / Path(name).name)
            Image.fromarray(255 - np.asarray(img.convert("L"))).save(black / Path(name).name)
    a = pack(faces, white, tmp_path / "a")
    b = pack(faces, black, tmp_path / "b", "--mask-hole", "black")
    for split in ("train", "test"):
        ma, mb = MaskShards(a, split), MaskShards(b, split)
        assert len(ma) == len(mb) > 0
        for i in range(len(ma)):
            assert np.array_equal(ma[i]["mask"].numpy(), mb[i]["mask"].numpy())


def test_default_data_root_and_out(data_root: Path, face_names: list[str], tmp_path: Path, monkeypatch,
                                   capsys) -> None:
    monkeypatch.delenv("FACEFILL_DATA", raising=False)
    with pytest.raises(DataError, match="FACEFILL_DATA"):
        default_data_root(cwd=tmp_path)
    monkeypatch.setenv("FACEFILL_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere"):
        default_data_root()
    root = tmp_path / "data_root"
    copy_faces(data_root, root / "faces", face_names[:20])
    monkeypatch.setenv("FACEFILL_DATA", str(root))  # no masks/ folder there: masks are generated
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert pack_main(["--size", "32", "--limit", "12", "--mask-count", "24", "--workers", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert Path(last) == Path("data/shards/32")
    index = read_index(work / "data" / "shards" / "32")
    assert index["counts"]["faces"]["train"] + index["counts"]["faces"]["test"] == 12
    assert index["mask_split"]["source"] == "generated"


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args, needle in (
        (["--faces", str(empty), "--masks", "generate"], "no face images"),
        (["--faces", str(tmp_path / "missing"), "--masks", "generate"], "does not exist"),
        (["--faces", str(empty), "--masks", str(tmp_path / "nomasks")], "mask folder does not exist"),
        (["--faces", str(empty), "--size", "0"], "--size: must be a positive integer"),
    ):
        proc = subprocess.run([sys.executable, "-m", "data_prep.pack", *args, "--out", str(tmp_path / "o")],
                              capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert not (tmp_path / "o" / "index.json").exists()


def test_rerun_is_a_no_op_and_changed_args_leave_no_stale_shards(
        data_root: Path, face_names: list[str], tmp_path: Path, capsys) -> None:
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:60])
    out = pack(faces, "generate", tmp_path / "o", "--mask-count", "24", "--shard-size", "10")
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    capsys.readouterr()
    pack(faces, "generate", out, "--mask-count", "24", "--shard-size", "10")
    assert "already packed with these arguments" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")} == before
    pack(faces, "generate", out, "--mask-count", "24", "--shard-size", "40")
    listed = {s["file"] for s in read_index(out)["shards"]}
    assert {p.name for p in out.glob("*.h5")} == listed
    assert max(s["count"] for s in read_index(out)["shards"]) > 10


def test_a_second_packer_on_the_same_folder_is_refused(data_root: Path, face_names: list[str],
                                                       tmp_path: Path) -> None:
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:10])
    out = tmp_path / "o"
    out.mkdir()
    from data_prep.journal import PackLock

    with PackLock(out):  # a live packer holds the folder (an flock: per open file, so also in-process)
        with pytest.raises(DataError, match="another pack"):
            pack(faces, "generate", out, "--mask-count", "12")
    (out / ".pack.lock").write_text("999999999")  # a lock file nobody holds (a killed packer's) is free
    pack(faces, "generate", out, "--mask-count", "12")
    assert not (out / ".pack.lock").exists()


def test_masks_outside_the_buckets_are_skipped(data_root: Path, face_names: list[str], tmp_path: Path) -> None:
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:10])
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in list_images(data_root / "masks")[::500]:
        shutil.copy(data_root / "masks" / name, masks / Path(name).name)
    Image.new("L", (512, 512), 0).save(masks / "blank.png")  # ratio 0
    Image.new("L", (512, 512), 255).save(masks / "full.png")  # ratio 1
    (masks / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = pack(faces, masks, tmp_path / "o")
    reasons = {s["path"]: s["reason"] for s in read_index(out)["skipped"] if s["kind"] == "masks"}
    assert {"blank.png", "full.png", "broken.png"} <= set(reasons)
    assert "not an image" in reasons["broken.png"] or "corrupt" in reasons["broken.png"]
    real_out = set(reasons) - {"blank.png", "full.png", "broken.png"}  # at 32 px a few real masks leave (0.01, 0.6]
    assert all("outside" in reasons[name] for name in real_out | {"blank.png", "full.png"})
    counts = read_index(out)["counts"]["masks"]
    assert counts["train"] + counts["test"] == 24 - len(real_out) > 0


def test_unlabelled_faces_give_an_empty_balanced_split_and_one_warning(
        data_root: Path, face_names: list[str], tmp_path: Path, capsys) -> None:
    faces = tmp_path / "celeba_like"
    faces.mkdir()
    for i, name in enumerate(face_names[:30]):  # CelebA-HQ style names carry no labels
        shutil.copy(data_root / "faces" / name, faces / f"{i:05d}.jpg")
    out = pack(faces, "generate", tmp_path / "o", "--mask-count", "24")
    index = read_index(out)
    assert index["counts"]["faces"]["eval_balanced"] == 0 and len(index["balanced"]["shortfall"]) == 10
    assert (FaceShards(out, "train").labels == -1).all()
    err = capsys.readouterr().err
    assert err.count("eval_balanced split is empty") == 1 and "Others/female" not in err
    with pytest.raises(DataError, match="add labelled faces"):
        pack(faces, "generate", tmp_path / "strict", "--mask-count", "24", "--strict")


def test_identical_photos_with_different_labels_are_recorded_as_conflicts(
        data_root: Path, face_names: list[str], tmp_path: Path, capsys) -> None:
    """UTKFace holds byte-identical photos under names with different labels (two ages for one
    face): the copy is dropped as a duplicate, and the manifest keeps both names and both labels."""
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:12])
    source = face_names[0]
    age, gender, race = parse_utkface_labels(source)
    older = f"{age + 10}_{gender}_{race}_20170101000000000.jpg.chip.jpg"  # same bytes, another age
    shutil.copy(data_root / "faces" / source, faces / older)
    (faces / "same").mkdir()
    shutil.copy(data_root / "faces" / face_names[1], faces / "same" / Path(face_names[1]).name)  # same labels
    out = pack(faces, "generate", tmp_path / "o", "--mask-count", "24")
    summary = capsys.readouterr().out
    index = read_index(out)
    conflicts = index["label_conflicts"]
    assert len(conflicts) == 1
    names = {Path(source).name: [age, gender, race], older: [age + 10, gender, race]}
    assert dict(zip(conflicts[0]["paths"], conflicts[0]["labels"])) == names
    kept, dropped = conflicts[0]["paths"]
    reasons = {s["path"]: s["reason"] for s in index["skipped"] if s["kind"] == "faces"}
    (same_dropped,) = set(reasons) - {dropped}  # one of the two same-label copies, whichever came second
    assert same_dropped in {Path(face_names[1]).name, f"same/{Path(face_names[1]).name}"}
    assert f"exact duplicate of {kept}" in reasons[dropped] and "different labels" in reasons[dropped]
    assert "exact duplicate" in reasons[same_dropped] and "different labels" not in reasons[same_dropped]
    assert "1 duplicate with conflicting labels" in summary
    (out / "index.json").unlink()  # a resumed pack reuses the shards and still knows the conflict
    pack(faces, "generate", out, "--mask-count", "24")
    assert read_index(out)["label_conflicts"] == conflicts


def test_all_test_packs_every_face_as_test_and_balances_from_them(
        data_root: Path, face_names: list[str], tmp_path: Path, capsys) -> None:
    """A held-out face set (another UTKFace sample, CelebA crops) is scored whole: no training
    faces, every usable face in ``test``, and the balanced split chosen from all of them."""
    faces = copy_faces(data_root, tmp_path / "faces", face_names[:80])
    out = pack(faces, "generate", tmp_path / "o", "--mask-count", "24", "--all-test")
    index = read_index(out)
    counts = index["counts"]["faces"]
    assert counts["train"] == 0 and counts["test"] == 80 and index["args"]["all_test"] is True
    assert sorted(split_paths(out, "faces", "test")) == sorted(Path(n).name for n in face_names[:80])
    assert 0 < counts["eval_balanced"] == index["balanced"]["total"]
    assert set(split_paths(out, "faces", "eval_balanced")) <= set(split_paths(out, "faces", "test"))
    usual_test = sum(face_split(Path(n).name) == "test" for n in face_names[:80])
    assert counts["eval_balanced"] > usual_test // 2  # chosen from all 80, not from the usual ~8
    assert "split 'train' is empty" not in capsys.readouterr().err  # asked for: no warning
    assert len(FaceShards(out, "test")) == 80 and len(FaceShards(out, "train")) == 0
    pack(faces, "generate", out, "--mask-count", "24")  # another job: repacked, not reused as is
    assert read_index(out)["counts"]["faces"]["train"] > 0
