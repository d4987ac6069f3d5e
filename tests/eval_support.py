"""Helpers shared by the evaluation and predict tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


def make_weights(path: Path, seed: int, overrides: list[str] | None = None) -> Path:
    """A shipped-format weights file (fp16 state dict + JSON sidecar) of a random smoke generator."""
    from inpaint.core.config import load_config
    from inpaint.models import build_generator

    cfg = load_config("smoke", overrides)
    torch.manual_seed(seed)
    model = build_generator(cfg.model)
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}, path)
    path.with_suffix(".json").write_text(json.dumps({"config": cfg.to_dict()}))
    return path


def run_predict(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``python -m inpaint.predict`` through its real entry point (run_cli): exit code, stdout, stderr."""
    from inpaint import predict
    from inpaint.core.cli import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(predict.main, argv)
    captured = capsys.readouterr()
    return int(exit_info.value.code), captured.out, captured.err
