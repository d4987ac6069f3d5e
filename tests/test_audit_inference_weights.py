"""``python -m inpaint.export`` and weights loading on what used to destroy or mislead:
an OUT that is not a .pt or is the source itself, an export killed between its two files, NaN or
inf weights and outputs, a card without a sha256, a card whose size was edited."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from inpaint.io.checkpoint import find_checkpoints, save_checkpoint
from inpaint.core.cli import run_cli
from inpaint.core.errors import CheckpointError, ConfigError
from inpaint.io.weights import WeightsCard, WeightsWarning, export_weights, load_generator, weights_sidecar
from inpaint.export import main as weights_main
from test_checkpoint import make_state


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(weights_main, argv)
    return int(exit_info.value.code), capsys.readouterr().err


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    save_checkpoint(run, make_state(5, seed=1), keep=3)
    return run


def _export(source: Path, out: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # this checkpoint records no training-set digests
        return export_weights(source, out)


def test_out_must_be_a_pt_file(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run([str(run_dir), str(tmp_path / "out.json")], capsys)
    assert code == 2 and err.startswith("error: ") and "out.json" in err and ".pt" in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("out*"))


def test_export_never_writes_over_its_source_or_into_the_checkpoints_folder(run_dir: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    newest = find_checkpoints(run_dir)[0]
    original = newest.read_bytes()
    for out in (newest, run_dir / "checkpoints" / "model.pt", run_dir / "checkpoints" / ".." / "checkpoints" / "x.pt"):
        code, err = _run([str(run_dir), str(out)], capsys)
        assert code == 2 and "checkpoint" in err and err.count("\n") == 1, err
        code, err = _run([str(newest), str(out)], capsys)
        assert code == 2 and err.count("\n") == 1, err
    assert newest.read_bytes() == original and sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [newest.name]

    shipped = _export(run_dir, tmp_path / "w.pt")
    before = shipped.read_bytes(), weights_sidecar(shipped).read_bytes()
    code, err = _run([str(shipped), str(tmp_path / "." / "w.pt")], capsys)
    assert code == 2 and "w.pt" in err and err.count("\n") == 1, err
    assert (shipped.read_bytes(), weights_sidecar(shipped).read_bytes()) == before
    load_generator(shipped)


def test_an_export_that_fails_between_its_two_files_leaves_the_old_pair_loadable(run_dir: Path, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = _export(run_dir, tmp_path / "w.pt")
    old = out.read_bytes(), weights_sidecar(out).read_bytes()
    save_checkpoint(run_dir, make_state(9, seed=2), keep=3)  # a newer checkpoint to export over the old pair

    def killed(self: WeightsCard, path: str | os.PathLike) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(WeightsCard, "write", killed)
    with pytest.raises(Exception):
        _export(run_dir, out)
    assert (out.read_bytes(), weights_sidecar(out).read_bytes()) == old
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["w.json", "w.pt"]  # no temporaries left
    monkeypatch.undo()
    load_generator(out)


def test_nan_or_inf_weights_are_refused_at_export_and_at_load(run_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    good = _export(run_dir, tmp_path / "good.pt")
    for bad_value in (float("nan"), float("inf")):
        state = make_state(20, seed=3)
        first = next(k for k, v in state["generator"].items() if v.is_floating_point())
        state["generator"][first].view(-1)[0] = bad_value
        bad_run = tmp_path / f"bad-{bad_value}"
        save_checkpoint(bad_run, state, keep=1)
        code, err = _run([str(bad_run), str(tmp_path / "bad.pt")], capsys)
        assert code == 2 and "NaN or inf" in err and "step-000000020.pt" in err and err.count("\n") == 1, err
        assert not (tmp_path / "bad.pt").exists()
        with pytest.raises(CheckpointError, match="NaN or inf"):
            load_generator(bad_run)

        weights = torch.load(good, weights_only=True)
        weights[first].view(-1)[0] = bad_value
        broken = tmp_path / "broken.pt"
        torch.save(weights, broken)
        card = json.loads(weights_sidecar(good).read_text())
        card.pop("sha256")
        weights_sidecar(broken).write_text(json.dumps(card))
        with pytest.raises(CheckpointError, match="NaN or inf") as exc:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", WeightsWarning)
                load_generator(broken)
        assert str(broken) in str(exc.value) and "\n" not in str(exc.value)


def test_weights_too_large_for_float16_are_refused_with_the_fp32_fix(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    state = make_state(7, seed=4)
    first = next(k for k, v in state["generator"].items() if v.is_floating_point() and v.numel() > 1)
    state["generator"][first].view(-1)[0] = 1e6  # finite in float32, inf in float16
    save_checkpoint(tmp_path / "run", state, keep=1)
    code, err = _run([str(tmp_path / "run"), str(tmp_path / "w.pt")], capsys)
    assert code == 2 and "--fp32" in err and err.count("\n") == 1, err
    assert not (tmp_path / "w.pt").exists()
    code, err = _run([str(tmp_path / "run"), str(tmp_path / "w.pt"), "--fp32"], capsys)
    assert code == 0, err


def test_a_card_without_sha256_is_refused_for_shipped_weights_and_warned_about_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import inpaint.io.weights as weights_module

    shipped_dir = weights_module.SHIPPED_DIR
    for name in ("quarter-residual.pt", "quarter-residual.json"):
        shutil.copy(shipped_dir / name, tmp_path / name)
    card = json.loads((tmp_path / "quarter-residual.json").read_text())
    for empty in ("", None):
        if empty is None:
            card.pop("sha256")
        else:
            card["sha256"] = empty
        (tmp_path / "quarter-residual.json").write_text(json.dumps(card))
        monkeypatch.setattr(weights_module, "SHIPPED_DIR", tmp_path)
        with pytest.raises(CheckpointError, match="sha256") as exc:
            load_generator(tmp_path / "quarter-residual.pt")
        assert "quarter-residual.json" in str(exc.value) and "\n" not in str(exc.value)
        monkeypatch.undo()
        with pytest.warns(WeightsWarning, match="sha256"):
            load_generator(tmp_path / "quarter-residual.pt")


def test_a_card_whose_size_disagrees_with_its_training_data_is_refused(tmp_path: Path) -> None:
    import inpaint.io.weights as weights_module

    shipped_dir = weights_module.SHIPPED_DIR
    shutil.copy(shipped_dir / "quarter-residual.pt", tmp_path / "w.pt")
    card = json.loads((shipped_dir / "quarter-residual.json").read_text())
    card["config"]["data"]["size"] = 256  # the card says 256 px; its training data were 128 px
    (tmp_path / "w.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="128") as exc:
        load_generator(tmp_path / "w.pt")
    assert "data.size" in str(exc.value) and "\n" not in str(exc.value)
    card["config"]["data"]["size"] = 100  # not a size the networks accept
    (tmp_path / "w.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="data.size"):
        load_generator(tmp_path / "w.pt")


def test_evaluation_reports_non_finite_outputs_with_their_own_reason(tmp_path: Path) -> None:
    from inpaint.evaluation.model_eval import evaluate_generator
    from inpaint.evaluation.protocol import PairList
    from inpaint.evaluation.report import Evaluation, write_report
    from inpaint.evaluation.runner import Scorers

    torch.manual_seed(0)
    faces = [{"image": torch.rand(3, 32, 32) * 2 - 1} for _ in range(4)]
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:20, 8:20] = 1.0
    masks = [{"mask": mask}]
    pairs = PairList(seed=0, pairs_per_bucket=2, fingerprint="test", buckets=[[(0, 0), (1, 0)], [(2, 0), (3, 0)], [], [], [], []])

    def nan_model(masked: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return torch.full_like(masked, float("nan"))

    def half_inf(masked: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        out = masked.clone()
        out[0] = float("inf")  # the first pair of each batch
        return out

    results = []
    for name, model in (("nan", nan_model), ("half-inf", half_inf)):
        result = evaluate_generator(name, model, faces, masks, None, pairs, batch_size=2, device=torch.device("cpu"),
                                    scorers=Scorers(), quiet=True)
        result.info = {"kind": "checkpoint"}
        results.append(result)
    nan_result, inf_result = results
    assert nan_result.non_finite == {"pairs": 4, "scored": 4}
    assert inf_result.non_finite == {"pairs": 2, "scored": 4}
    average = inf_result.buckets["Average"]
    assert average["std_psnr"] is not None and np.isfinite(average["std_psnr"])  # the finite pairs are scored
    written = write_report(Evaluation(models=results, protocol={}, lpips_reason="skipped (--no-lpips)",
                                      identity_reason="skipped (--no-identity)"), tmp_path)
    metrics = json.loads(written["metrics.json"].read_text())
    by_name = {m["name"]: m for m in metrics["models"]}
    assert by_name["nan"]["non_finite_outputs"]["pairs"] == 4 and "NaN or inf" in by_name["nan"]["non_finite_outputs"]["reason"]
    report = written["report.md"].read_text()
    assert "nan" in report and "NaN or inf" in report and "4 of 4" in report and "2 of 4" in report

    alone = write_report(Evaluation(models=[nan_result], protocol={}, lpips_reason="skipped (--no-lpips)",
                                    identity_reason="skipped (--no-identity)"), tmp_path / "alone")
    report = alone["report.md"].read_text()
    lines = report.splitlines()
    reasons = {lines[i - 2]: line for i, line in enumerate(lines) if line.startswith("Unavailable:")}  # "### title" → reason
    assert reasons and all("--no-identity" not in why for title, why in reasons.items() if "Identity" not in title
                           and "Same person" not in title), reasons  # PSNR, SSIM, L1: the outputs, not --no-identity
    assert "PSNR std (dB): unavailable — " in report and "NaN or inf" in report.split("PSNR std (dB): unavailable — ")[1].splitlines()[0]
