"""What a model was trained on, carried from the trainer's checkpoint into the weights card, and
the warning ``inpaint.evaluate`` gives when the pairs it scores hold faces or masks the model was
trained on.

A tiny model is trained for two steps through the real trainer on a copy of the 64-px test shards;
the expected ids are computed here from the source files (faces: SHA-256 of the file) and the
packed mask pixels, read with hashlib and h5py only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from inpaint.io.checkpoint import find_checkpoints, read_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.widths=[8,16,16]", "model.dmfb_blocks=1", "model.dmfb_inner=8", "model.disc_widths=[8,8,8,8]",
        "train.batch_size=2", "data.workers=0", "train.log_every_steps=5", "train.checkpoint_every_steps=1000"]
FAST_EVAL = ["--pairs-per-bucket", "2", "--no-identity", "--quiet", "--batch-size", "8", "--grid-per-bucket", "0",
             "--no-baseline"]
PACK_64 = ["--size", "64", "--limit", "300", "--mask-limit", "240", "--test-masks-per-bucket", "10",
           "--min-per-cell", "2", "--workers", "1", "--seed", "0"]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def train_tiny(shards: Path, run_dir: Path) -> Path:
    """Two steps of a tiny smoke model through the trainer's CLI entry point (in-process)."""
    from inpaint.train import main as train_main

    argv = ["--config", "smoke", "--data", str(shards), "--run-dir", str(run_dir), "--max-steps", "2"]
    for item in TINY:
        argv += ["--set", item]
    assert train_main(argv) == 0
    return run_dir


def pack(data_root: Path, out: Path, *extra: str, masks: Path | None = None) -> Path:
    from data_prep.pack import main as pack_main

    assert pack_main(["--faces", str(data_root / "faces"), "--masks", str(masks or data_root / "masks"),
                      "--out", str(out), *PACK_64, *extra]) in (0, None)
    return out


def shard_files(root: Path, kind: str, split: str) -> list[Path]:
    index = json.loads((root / "index.json").read_text())
    return [root / s["file"] for s in index["shards"] if s["kind"] == kind and s["split"] == split]


def face_hashes_by_hand(data_root: Path, shards: Path, split: str) -> list[str]:
    """SHA-256 of each face's source file, found through the relative path the shard stores."""
    out = []
    for path in shard_files(shards, "faces", split):
        with h5py.File(path, "r") as f:
            for rel in f["paths"][()]:
                rel = rel.decode() if isinstance(rel, bytes) else rel
                out.append(hashlib.sha256((data_root / "faces" / rel).read_bytes()).hexdigest())
    return out


def mask_hashes_by_hand(shards: Path, split: str) -> list[str]:
    out = []
    for path in shard_files(shards, "masks", split):
        with h5py.File(path, "r") as f:
            out.extend(hashlib.sha256(m.tobytes()).hexdigest() for m in f["masks"][()])
    return out


def digest_by_hand(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def export_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inpaint.export", *argv], capture_output=True, text=True,
                          env=env(), cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def trained(shards64: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(training shards, run dir): a copy of the test shards (so no other test moves them) and a
    two-step run trained on it."""
    base = tmp_path_factory.mktemp("provenance")
    shards = Path(shutil.copytree(shards64, base / "train_shards"))
    return shards, train_tiny(shards, base / "run")


def test_export_records_the_training_lists_digests_and_refuses_changed_shards(
        trained: tuple[Path, Path], data_root: Path, tmp_path: Path) -> None:
    shards, run = trained
    faces = face_hashes_by_hand(data_root, shards, "train")
    masks = mask_hashes_by_hand(shards, "train")
    assert len(faces) > 200 and len(masks) > 100

    out = tmp_path / "tiny.pt"
    proc = export_cli(str(run), str(out))
    assert proc.returncode == 0, proc.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    record = card["training_set"]
    assert record["faces"]["count"] == len(faces) and record["faces"]["digest"] == digest_by_hand(faces)
    assert record["masks"]["count"] == len(masks) and record["masks"]["digest"] == digest_by_hand(masks)
    assert card["data"]["faces_digest"] == digest_by_hand(faces)  # what the trainer recorded, checked above

    from inpaint.io.weights import WeightsCard

    assert WeightsCard.read(out.with_suffix(".json")).training_set == record  # a typed field, not an extra key

    # The shards moved: one line naming the recorded folder and the option; nothing written.
    moved = tmp_path / "moved_shards"
    shutil.copytree(shards, moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = read_checkpoint(find_checkpoints(run)[0])
    state["data"]["root"] = str(tmp_path / "gone")
    moved_run = elsewhere / "run"
    save_checkpoint(moved_run, state, keep=1)
    proc = export_cli(str(moved_run), str(tmp_path / "refused.pt"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and str(tmp_path / "gone") in proc.stderr and "--train-data" in proc.stderr
    assert not (tmp_path / "refused.pt").exists()
    # --train-data names where they are now: the digests match, the card records them.
    assert export_cli(str(moved_run), str(tmp_path / "found.pt"), "--train-data", str(moved)).returncode == 0
    assert json.loads((tmp_path / "found.json").read_text())["training_set"]["masks"]["digest"] == digest_by_hand(masks)

    # Other shards at the recorded folder (repacked with other masks) or named by --train-data: refused.
    other = pack(data_root, tmp_path / "other", "--mask-limit", "200")
    state["data"]["root"] = str(other)
    save_checkpoint(moved_run, {**state, "step": state["step"] + 1}, keep=1)
    for argv in ([str(moved_run), str(tmp_path / "x.pt")],
                 [str(moved_run), str(tmp_path / "y.pt"), "--train-data", str(other)]):
        proc = export_cli(*argv)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and str(other) in proc.stderr and "masks" in proc.stderr
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


def test_a_checkpoint_without_digests_exports_with_a_one_line_warning(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = trained
    state = read_checkpoint(find_checkpoints(run)[0])
    state["data"] = {k: v for k, v in state["data"].items() if k in ("size", "train_faces", "train_masks")}
    save_checkpoint(tmp_path / "old_run", state, keep=1)  # as trainers before the digests wrote it
    proc = export_cli(str(tmp_path / "old_run"), str(tmp_path / "old.pt"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("warning: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "training_set" not in json.loads((tmp_path / "old.json").read_text())


def test_evaluate_warns_when_the_scored_pairs_hold_training_faces_or_masks(
        trained: tuple[Path, Path], data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same 300 faces packed whole as a test set, masks from the folder's sub-folder (other
    relative names, so another split): the model trained on most of the faces and some masks."""
    from inpaint.evaluate import main as evaluate_main
    from inpaint.export import main as weights_main

    shards, run = trained
    weights = tmp_path / "tiny.pt"
    assert weights_main([str(run), str(weights)]) == 0
    held = pack(data_root, tmp_path / "all_test", "--all-test", masks=data_root / "masks" / "irregular_nvidia_test")
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "inpaint.evaluate", "--run-dir", str(run), "--checkpoint", str(weights),
                           "--data", str(held), "--out", str(out), *FAST_EVAL],
                          capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr

    # Expected counts, by hand: distinct faces and masks of the scored pairs (test and balanced).
    pairs = json.loads((out / "pairs.json").read_text())
    test_faces = face_hashes_by_hand(data_root, held, "test")
    balanced_faces = face_hashes_by_hand(data_root, held, "eval_balanced")
    held_masks = mask_hashes_by_hand(held, "test")
    scored_faces = {test_faces[f] for b in pairs["buckets"] for f, _ in b["pairs"]} | {balanced_faces[f] for f, _ in pairs["balanced"]}
    scored_masks = {held_masks[m] for b in pairs["buckets"] for _, m in b["pairs"]} | {held_masks[m] for _, m in pairs["balanced"]}
    train_faces = set(face_hashes_by_hand(data_root, shards, "train"))
    train_masks = set(mask_hashes_by_hand(shards, "train"))
    faces_hit, masks_hit = len(scored_faces & train_faces), len(scored_masks & train_masks)
    assert faces_hit > 0 and masks_hit > 0  # the setup really overlaps on both

    expected = (f"was trained on {faces_hit} of the {len(scored_faces)} faces and {masks_hit} of the "
                f"{len(scored_masks)} masks scored here: its scores are optimistic")
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, proc.stderr  # one line per model: the run dir and its exported weights
    assert warnings[0].startswith(f"warning: {run.name} {expected}") and warnings[1].startswith(f"warning: tiny {expected}")
    report = json.loads((out / "metrics.json").read_text())
    for model in report["models"]:
        overlap = model["training_overlap"]
        assert overlap["checked"] and overlap["faces"] == {"scored": len(scored_faces), "trained_on": faces_hit}
        assert overlap["masks"] == {"scored": len(scored_masks), "trained_on": masks_hit}
    assert [m["training_overlap"]["source"] for m in report["models"]] == ["checkpoint", "card"]
    text = (out / "report.md").read_text()
    assert f"**{run.name}** {expected}" in text and f"**tiny** {expected}" in text

    # Its own shards' test split: nothing it trained on, no warning; classical baselines never warn.
    own = tmp_path / "own"
    capsys.readouterr()
    assert evaluate_main(["--run-dir", str(run), "--checkpoint", str(weights), "--data", str(shards), "--out", str(own),
                          *FAST_EVAL[:-1], "--baseline", "navier-stokes", "--no-demographics"]) == 0
    stderr = capsys.readouterr().err
    assert "warning" not in stderr, stderr
    models = json.loads((own / "metrics.json").read_text())["models"]
    assert "training_overlap" not in models[0]  # the baseline
    for model in models[1:]:
        assert model["training_overlap"]["checked"]
        assert model["training_overlap"]["faces"]["trained_on"] == model["training_overlap"]["masks"]["trained_on"] == 0
