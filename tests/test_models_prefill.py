"""Generators that start from the classical fill: (b) holes pre-filled by
OpenCV before the network, (c) the fill plus a learned correction that is zero at step 0. Real
faces and real NVIDIA masks; the trainer CLI on the packed test shards; the error without OpenCV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inpaint.classical import classical_fill
from inpaint.core.config import load_config
from inpaint.core.errors import ConfigError
from inpaint.models import build_generator
from test_models_training import one_intra_op_thread, real_batch  # noqa: F401  (one thread, the same real faces and masks)

VARIANTS = ["quarter-prefill", "quarter-residual"]


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("size", [64, 128])
def test_shapes_and_range(name: str, size: int) -> None:
    torch.manual_seed(0)
    generator = build_generator(load_config(name).model)
    image = torch.rand(2, 3, size, size) * 2 - 1
    mask = (torch.rand(2, 1, size, size) > 0.7).float()
    with torch.no_grad():
        out = generator(image * (1 - mask), mask)
    assert out.shape == image.shape and out.dtype == torch.float32 and out.abs().max() <= 1


@pytest.mark.parametrize("method", ["navier-stokes", "telea"])
def test_residual_model_is_exactly_the_classical_fill_at_step_0(data_root: Path, method: str) -> None:
    cfg = load_config("quarter-residual", [f"model.prefill={method}"])
    generator = build_generator(cfg.model)
    image, mask = real_batch(data_root)
    for mode in (generator.train, generator.eval):  # batch norm in either mode changes nothing at step 0
        mode()
        with torch.no_grad():
            out = generator(image * (1 - mask), mask)
        expected = classical_fill(image * (1 - mask), mask, method)  # the fill of what G is given
        assert torch.equal(out, expected)
        with torch.no_grad():
            assert torch.equal(generator(image, mask), expected)  # hole pixels of the input are never read
        assert (out - image).abs()[mask.expand_as(image) > 0].mean() > 0.02  # the holes really were filled


def test_prefill_model_feeds_the_network_the_fill(data_root: Path) -> None:
    torch.manual_seed(0)
    generator = build_generator(load_config("quarter-prefill").model).eval()
    image, mask = real_batch(data_root)
    with torch.no_grad():
        out = generator(image * (1 - mask), mask)
        assert torch.equal(out, generator.net(classical_fill(image * (1 - mask), mask), mask))
        assert not torch.allclose(out, generator.net(image * (1 - mask), mask))
        assert torch.equal(generator(image, mask), out)  # hole pixels of the input are never read


def test_residual_learns_a_correction_from_zero(data_root: Path) -> None:
    """One optimiser step moves the output away from the fill: the zero last layer still gets a gradient."""
    torch.manual_seed(0)
    generator = build_generator(load_config("quarter-residual").model)
    image, mask = real_batch(data_root)
    fill = classical_fill(image * (1 - mask), mask)
    opt = torch.optim.Adam(generator.parameters(), lr=1e-3)
    loss = (generator(image * (1 - mask), mask) - image).abs().mean()
    loss.backward()
    assert generator.net.to_rgb.weight.grad.abs().sum() > 0
    opt.step()
    with torch.no_grad():
        after = generator(image * (1 - mask), mask)
    assert not torch.equal(after, fill) and (after - fill).abs().mean() < 0.05  # a small first step


def test_unknown_prefill_and_residual_without_fill_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown model.generator.prefill 'ns': use one of none, navier-stokes, telea"):
        build_generator({"prefill": "ns"})
    with pytest.raises(ConfigError, match="model.generator.residual.*model.generator.prefill"):
        build_generator({"residual": True})


NO_OPENCV = "import sys; sys.modules['cv2'] = None\n"


def test_without_opencv_building_a_prefill_model_names_the_extra() -> None:
    code = NO_OPENCV + (
        "from inpaint.core.config import load_config\nfrom inpaint.models import build_generator\n"
        "build_generator(load_config('quarter').model)  # the reference input needs no OpenCV\n"
        "try:\n    build_generator(load_config('quarter-residual').model)\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ConfigError model.generator.prefill = navier-stokes") and "facefill[baselines]" in out.stdout
    cli = subprocess.run([sys.executable, "-c", NO_OPENCV + "from inpaint.core.cli import run_cli\nfrom inpaint.models.__main__ import main\n"
                          "run_cli(main, ['--config', 'quarter-prefill'])"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and cli.stderr.startswith("error: model.generator.prefill") and "facefill[baselines]" in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1


def test_trainer_cli_trains_and_reloads_the_residual_model(shards64: Path, tmp_path: Path, data_root: Path) -> None:
    """Three steps through ``python -m inpaint.train`` (as the job layer runs it), then the run dir
    loads through ``load_generator`` as the same wrapped model, no longer equal to the bare fill."""
    from inpaint.io.weights import load_generator

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "inpaint.train", "--config", "quarter-residual", "--data", str(shards64),
           "--run-dir", str(run_dir), "--max-steps", "3", "--set", "data.size=64", "--set", "data.workers=0",
           "--set", "train.batch_size=4", "--set", "train.log_every_steps=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run_dir / "status.json").read_text())["step"] == 3
    generator, cfg = load_generator(run_dir)
    assert cfg.model.generator.residual is True and cfg.model.generator.prefill == "navier-stokes"
    image, mask = real_batch(data_root)
    with torch.no_grad():
        out = generator(image * (1 - mask), mask)
    fill = classical_fill(image * (1 - mask), mask)
    assert out.shape == image.shape and not torch.equal(out, fill)
    assert (out - fill).abs().mean() < 0.1  # three steps from the fill stay near it
