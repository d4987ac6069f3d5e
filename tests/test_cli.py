"""The first minutes with the command line: ``--help`` answers without loading
torch, a mistyped option is one line naming the closest real one, and a wrong data path is one
error line that leaves no run dir behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _python(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level packages named in ``python -X importtime`` output."""
    return {m.group(1).split(".")[0] for m in re.finditer(r"^import time:.*\|\s*(\S+)$", importtime_stderr, re.M)}


@pytest.mark.parametrize("module", ["inpaint.train", "inpaint.evaluate", "inpaint.predict"])
def test_help_does_not_import_torch(module: str) -> None:
    proc = _python("-X", "importtime", "-m", module, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout and "--help" in proc.stdout
    imported = _imported(proc.stderr)
    assert "inpaint" in imported  # the import log is there
    assert "torch" not in imported and "cv2" not in imported


@pytest.mark.parametrize("module, typo, meant", [
    ("inpaint.train", "--run-dri", "--run-dir"),
    ("inpaint.evaluate", "--chekpoint", "--checkpoint"),
    ("inpaint.predict", "--weigths", "--weights"),
])
def test_a_mistyped_option_names_the_closest_one_before_torch_loads(module: str, typo: str, meant: str) -> None:
    proc = _python("-X", "importtime", "-m", module, typo, "x")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith("error: "), proc.stderr[-2000:]
    assert f"did you mean {meant}?" in errors[0] and f"python -m {module} --help" in errors[0]
    assert "torch" not in _imported(proc.stderr)


def _parse_error(parse, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line of ``parse(argv)`` (a parser's ``parse_args`` or a command's ``main``)."""
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


def test_every_command_line_suggests_options_and_choices(capsys: pytest.CaptureFixture[str]) -> None:
    from data_prep.pack import build_parser as pack
    from data_prep.verify import build_parser as verify
    from inpaint.evaluation.options import build_parser as evaluate
    from inpaint.plot import main as plot_parser
    from inpaint.predict import build_parser as predict
    from inpaint.train import build_parser as train
    from inpaint.export import main as weights_parser

    pack_parser, verify_parser, evaluate_parser = pack().parse_args, verify().parse_args, evaluate().parse_args
    predict_parser, train_parser = predict().parse_args, train().parse_args

    assert "did you mean --mask-limit?" in _parse_error(pack_parser, ["--mask-limt", "5"], capsys)
    assert "did you mean --mask-limit for --mask-limt, --workers for --wrokers?" in _parse_error(
        pack_parser, ["--mask-limt", "5", "--wrokers=2"], capsys)
    assert "did you mean --out?" in _parse_error(plot_parser, ["run", "--ot", "x.png"], capsys)
    assert "did you mean --metrics?" in _parse_error(weights_parser, ["run", "w.pt", "--metrcs", "m.json"], capsys)
    assert "did you mean cuda?" in _parse_error(predict_parser, ["--device", "cdua"], capsys)
    assert "did you mean --deterministic?" in _parse_error(
        train_parser, ["--config", "smoke", "--data", "d", "--run-dir", "r", "--determinstic"], capsys)
    assert "did you mean --no-identity?" in _parse_error(evaluate_parser, ["--data", "d", "--no-identiy"], capsys)
    err = _parse_error(verify_parser, ["d", "--bogus"], capsys)
    assert "did you mean" not in err and "unrecognized arguments: --bogus" in err  # nothing close: no guess


def test_a_wrong_data_path_is_one_line_and_leaves_no_run_dir(tmp_path: Path) -> None:
    missing, run = tmp_path / "no_shards", tmp_path / "run"
    proc = _python("-m", "inpaint.train", "--config", "smoke", "--data", str(missing), "--run-dir", str(run))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and str(missing) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert str(missing) not in proc.stdout  # said once, not again as a status line
    assert not run.exists()
    not_shards = tmp_path / "photos"
    not_shards.mkdir()
    proc = _python("-m", "inpaint.train", "--config", "smoke", "--data", str(not_shards), "--run-dir", str(run))
    assert proc.returncode == 2 and "index.json" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not run.exists()


def test_the_torch_free_evaluate_options_name_the_real_fills() -> None:
    from inpaint.classical import METHODS
    from inpaint.evaluation import baselines, options

    assert options.METHODS == METHODS and options.DEFAULT_BASELINES == baselines.DEFAULT_BASELINES


def test_every_inpaint_and_data_prep_command_uses_the_one_line_parser() -> None:
    """One parser class for every command, so each answers a bad option the same way (one line,
    did-you-mean): a bare ``argparse.ArgumentParser`` would print argparse's usage block instead."""
    bare = [f"{path.relative_to(REPO)}:{n}" for package in ("inpaint", "data_prep")
            for path in sorted((REPO / package).rglob("*.py"))
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if "ArgumentParser(" in line and "class " not in line]
    assert not bare, f"use inpaint.core.cli.OneLineParser in {', '.join(bare)}"
