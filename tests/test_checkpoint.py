"""inpaint.io.checkpoint and inpaint.io.weights: atomic keep-last-K saving, fallback past damaged
checkpoints (set aside, never kept in a keep slot), stale temporaries, and loading generators from
run dirs, checkpoints and exported fp16/fp32 weights."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from inpaint.io.checkpoint import (
    CheckpointWarning, find_checkpoints, load_latest, read_checkpoint, remove_stale_temporaries, save_checkpoint,
)
from inpaint.core.config import load_config
from inpaint.core.errors import CheckpointError
from inpaint.models import build_discriminator, build_generator
from inpaint.training.state import capture_rng_state
from inpaint.io.weights import WeightsCard, export_weights, load_generator, weights_sidecar

TINY = ["model.widths=[8,16,16]", "model.dmfb_blocks=1", "model.dmfb_inner=8", "model.disc_widths=[8,8,8,8]"]


def make_state(step: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    cfg = load_config("smoke", TINY)
    g, d = build_generator(cfg.model), build_discriminator(cfg.model)
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    return {"format": 1, "config": cfg.to_dict(), "generator": g.state_dict(), "discriminator": d.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "scaler": {}, "epoch": 0,
            "step": step, "epoch_step": step, "rng": capture_rng_state(), "time": 0.0}


@pytest.fixture
def faces(shards64: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from inpaint.io.shards import FaceShards, MaskShards

    f, m = FaceShards(shards64, "test"), MaskShards(shards64, "test")
    image = torch.stack([f[i]["image"] for i in range(2)])
    mask = torch.stack([m[i * 25]["mask"] for i in range(2)])
    return image * (1 - mask), mask


def test_save_keeps_last_k_newest_first_and_leaves_no_temp_files(tmp_path: Path) -> None:
    for step in (5, 10, 15, 20):
        save_checkpoint(tmp_path, make_state(step), keep=2)
    names = [p.name for p in find_checkpoints(tmp_path)]
    assert names == ["step-000000020.pt", "step-000000015.pt"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(names)
    (tmp_path / "checkpoints" / "step-000000099.pt.tmp-123").write_bytes(b"half")  # a killed writer's leftover
    assert find_checkpoints(tmp_path)[0].name == "step-000000020.pt"
    state, path = load_latest(tmp_path)
    assert state["step"] == 20 and path.name == "step-000000020.pt"


def test_corrupt_newest_checkpoint_is_skipped_with_a_warning(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, make_state(1, seed=1), keep=3)
    newest = save_checkpoint(tmp_path, make_state(2, seed=2), keep=3)
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    with pytest.warns(CheckpointWarning, match="step-000000002"):
        state, path = load_latest(tmp_path)
    assert state["step"] == 1 and path.name == "step-000000001.pt"


def test_all_checkpoints_unreadable_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, make_state(3), keep=3)
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointError, match="none of the 1 checkpoints"):
        load_latest(tmp_path)
    assert load_latest(tmp_path / "empty") is None


def test_incomplete_checkpoint_dict_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"format": 1, "generator": {}}, path)
    with pytest.raises(CheckpointError, match="lacks config"):
        read_checkpoint(path)


def test_load_generator_from_run_dir_checkpoint_and_exported_fp16(tmp_path: Path, faces) -> None:
    masked, mask = faces
    state = make_state(7, seed=3)
    ckpt = save_checkpoint(tmp_path / "run", state, keep=1)
    reference = build_generator(state["config"]["model"])
    reference.load_state_dict(state["generator"])
    reference.eval()
    with torch.no_grad():
        expected = reference(masked, mask)
        # Same weights must give the same function. Compared in float64: float32 CPU convolutions
        # round differently from call to call (thread partitioning under load: 2e-6 seen through
        # the ~30 layers), float64 leaves ~1e-15 of that, far below what any wrong weight gives.
        expected64 = reference.double()(masked.double(), mask.double())
    for source in (tmp_path / "run", ckpt):
        g, cfg = load_generator(source)
        assert not g.training and cfg.model.generator.widths == (8, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(g.double()(masked.double(), mask.double()), expected64, rtol=0, atol=1e-9)

    from inpaint.export import main as weights_cli

    assert weights_cli([str(tmp_path / "run"), str(tmp_path / "shipped" / "tiny.pt")]) == 0
    shipped = tmp_path / "shipped" / "tiny.pt"
    fp32 = export_weights(ckpt, tmp_path / "fp32.pt", half=False)
    g32, _ = load_generator(fp32)  # full precision: the same function as the checkpoint's generator
    assert all(v.dtype == torch.float32 for v in torch.load(fp32, weights_only=True).values() if v.is_floating_point())
    with torch.no_grad():
        torch.testing.assert_close(g32.double()(masked.double(), mask.double()), expected64, rtol=0, atol=1e-9)
    assert json.loads(weights_sidecar(shipped).read_text())["config"]["model"]["generator"]["dmfb_blocks"] == 1
    assert all(v.dtype == torch.float16 for v in torch.load(shipped, weights_only=True).values() if v.is_floating_point())
    assert shipped.stat().st_size < ckpt.stat().st_size
    g, _ = load_generator(shipped)
    with torch.no_grad():
        out = g(masked, mask)
    assert out.dtype == torch.float32 and (out - expected).abs().max() < 2e-2


def _flat_model(model: dict) -> dict:
    """A nested model section as checkpoints of before the nesting stored it."""
    generator, discriminator = dict(model["generator"]), dict(model["discriminator"])
    return {"generator": generator.pop("name"), **generator,
            "discriminator": discriminator.pop("name"), "disc_widths": discriminator["widths"]}


def test_a_checkpoint_with_the_old_flat_model_section_loads_and_exports(tmp_path: Path, faces) -> None:
    masked, mask = faces
    state = make_state(4, seed=5)
    state["config"]["model"] = _flat_model(state["config"]["model"])
    assert state["config"]["model"]["disc_widths"] == [8, 8, 8, 8]
    ckpt = save_checkpoint(tmp_path / "run", state, keep=1)
    g, cfg = load_generator(ckpt)
    assert cfg.model.generator.widths == (8, 16, 16) and cfg.model.discriminator.widths == (8, 8, 8, 8)
    reference = build_generator(state["config"]["model"]).eval()  # the flat section builds the same network
    reference.load_state_dict(state["generator"])
    with torch.no_grad():
        torch.testing.assert_close(g.double()(masked.double(), mask.double()), reference.double()(masked.double(), mask.double()))
    from inpaint.io.provenance import ProvenanceWarning

    with pytest.warns(ProvenanceWarning):  # this checkpoint records no training-set digests
        card = json.loads(weights_sidecar(export_weights(ckpt, tmp_path / "w.pt")).read_text())
    assert card["config"]["model"]["generator"]["widths"] == [8, 16, 16]  # cards are written in the nested form


def test_load_generator_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing.pt")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CheckpointError, match="has no checkpoints"):
        load_generator(tmp_path / "empty_run")
    state = make_state(1)
    weights = tmp_path / "w.pt"
    torch.save(state["generator"], weights)
    other = load_config("smoke")  # full-width smoke model: the tiny weights do not fit it
    weights_sidecar(weights).write_text(json.dumps({"config": other.to_dict()}))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(weights)
    weights_sidecar(weights).write_text("{not json")
    with pytest.raises(CheckpointError, match="sidecar"):
        load_generator(weights)


def test_exported_weights_record_provenance_and_refuse_a_changed_file(tmp_path: Path) -> None:
    """The sidecar says which checkpoint, step, epoch and data the weights come from, carries the
    file's sha256 (checked on every load), and the evaluation averages when given."""
    from inpaint.core.shard_format import sha256_file
    from inpaint.export import main as weights_cli

    state = make_state(12, seed=1)
    state["epoch"], state["data"] = 2, {"size": 64, "train_faces": 540, "train_masks": 300}
    save_checkpoint(tmp_path / "model2", state, keep=1)
    report = tmp_path / "eval" / "metrics.json"
    report.parent.mkdir()
    report.write_text(json.dumps({"protocol": {"pairs_per_bucket": 5, "seed": 0}, "models": [
        {"name": "model1", "buckets": {"Average": {"n": 30, "ref_l1": 0.2}}},
        {"name": "navier-stokes", "kind": "baseline", "buckets": {"Average": {"n": 30, "ref_l1": 0.05}}},
        {"name": "model2", "buckets": {"Average": {"n": 30, "ref_l1": 0.1, "ref_psnr": 15.0}}}]}))

    shipped = tmp_path / "ship" / "model2.pt"
    assert weights_cli([str(tmp_path / "model2"), str(shipped), "--metrics", str(report),
                        "--cpu-minutes", "140.5"]) == 0
    meta = json.loads(weights_sidecar(shipped).read_text())
    assert meta["sha256"] == sha256_file(shipped)
    assert meta["source"] == "model2"  # the run dir's name: the exporting machine's paths stay out of the card
    from inpaint.io.provenance import ProvenanceWarning

    with pytest.warns(ProvenanceWarning):  # this checkpoint records no training-set digests
        from_checkpoint = export_weights(find_checkpoints(tmp_path / "model2")[0], tmp_path / "c.pt")
    assert json.loads(weights_sidecar(from_checkpoint).read_text())["source"] == "model2"  # the run dir it is in
    assert (meta["checkpoint"], meta["step"], meta["epoch"]) == ("step-000000012.pt", 12, 2)
    assert meta["data"] == {"size": 64, "train_faces": 540, "train_masks": 300}
    assert meta["metrics"]["average"] == {"n": 30, "ref_l1": 0.1, "ref_psnr": 15.0}
    assert meta["metrics"]["protocol"]["pairs_per_bucket"] == 5
    assert meta["metrics"]["baselines"] == {"navier-stokes": {"n": 30, "ref_l1": 0.05}}  # beside the model's
    assert meta["images_seen"] == 12 * state["config"]["train"]["batch_size"] and meta["cpu_minutes"] == 140.5
    load_generator(shipped)  # the recorded hash matches

    with pytest.raises(CheckpointError, match="no model named 'model3'"):
        weights_cli([str(tmp_path / "model2"), str(tmp_path / "x.pt"), "--metrics", str(report),
                        "--model-name", "model3"])
    data = bytearray(shipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit pattern in the middle of a tensor
    shipped.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_generator(shipped)


def test_unreadable_checkpoints_are_set_aside_and_take_no_keep_slot(tmp_path: Path) -> None:
    """Before: the broken newest checkpoint kept its slot and pruning deleted good ones."""
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, make_state(step), keep=3)
    newest = find_checkpoints(tmp_path)[0]
    newest.write_bytes(newest.read_bytes()[:500])
    with pytest.warns(CheckpointWarning, match="set aside as step-000000003.pt.corrupt"):
        state, path = load_latest(tmp_path, set_aside_unreadable=True)
    assert state["step"] == 2 and (tmp_path / "checkpoints" / "step-000000003.pt.corrupt").is_file()
    save_checkpoint(tmp_path, make_state(4), keep=2)
    assert [p.name for p in find_checkpoints(tmp_path)] == ["step-000000004.pt", "step-000000002.pt"]
    # A reader that does not own the run dir renames nothing; all unreadable is still an error.
    save_checkpoint(tmp_path, make_state(5), keep=2).write_bytes(b"broken")
    with pytest.warns(CheckpointWarning):
        assert load_latest(tmp_path)[0]["step"] == 4
    assert (tmp_path / "checkpoints" / "step-000000005.pt").is_file()
    for p in find_checkpoints(tmp_path):
        p.write_bytes(b"broken")
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointError, match="none of the 2"):
        load_latest(tmp_path, set_aside_unreadable=True)
    assert len(find_checkpoints(tmp_path)) == 2  # nothing set aside: no silent fresh start


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = [f"step-000000007.pt.tmp-{dead.pid}", f"step-000000008.pt.tmp-{alive.pid}",
                 f"step-000000009.pt.tmp-{os.getpid()}", "notes.txt.tmp-1"]
        for name in names:
            (folder / name).write_bytes(b"half")
        removed = remove_stale_temporaries(tmp_path)
    finally:
        alive.kill()
        alive.wait()
    assert [p.name for p in removed] == [names[0]]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names[1:])


def test_weights_card_keeps_keys_it_does_not_name(tmp_path: Path) -> None:
    record = {"config": {"name": "x"}, "step": 3, "sha256": "ab", "shards": {"encoding": "raw"}, "training": [1]}
    card = WeightsCard.from_dict(record)
    assert card.step == 3 and card.extra == {"shards": {"encoding": "raw"}, "training": [1]}
    card.write(tmp_path / "w.json")
    assert json.loads((tmp_path / "w.json").read_text()) == record
    (tmp_path / "bad.json").write_text(json.dumps({"step": 3}))
    with pytest.raises(CheckpointError, match="'config' entry"):
        WeightsCard.read(tmp_path / "bad.json")


def test_a_full_disk_is_recognised_however_it_is_raised() -> None:
    """torch's zip writer hides ENOSPC in ``__context__``; HDF5 may give only the message."""
    import errno

    from inpaint.core.disk import is_disk_full

    def raised_during(inner: BaseException) -> RuntimeError:
        try:
            try:
                raise inner
            except OSError:
                raise RuntimeError("enforce fail at inline_container.cc: unexpected pos")
        except RuntimeError as exc:
            return exc

    assert is_disk_full(raised_during(OSError(errno.ENOSPC, "No space left on device")))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(OSError("Can't write data (file write failed: errno = 28, error message = 'No space left on device')"))
    assert not is_disk_full(raised_during(OSError(errno.EACCES, "Permission denied")))
    looped = OSError(errno.EIO, "I/O error")
    looped.__context__ = RuntimeError("wrapper")
    looped.__context__.__context__ = looped  # a cycle ends the walk
    assert not is_disk_full(looped)
