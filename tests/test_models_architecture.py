"""Shapes, the gating mechanism, the two DMFB variants, the factory, and the reference layout's
cost checked against an independent count of the issue's layer list."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from inpaint.core.config import load_config
from inpaint.core.errors import ConfigError
from inpaint.models import (
    DenseMultiscaleFusionBlock, GatedConv2d, GatedDeconv2d, build_discriminator, build_generator,
)
from inpaint.models.__main__ import main as models_main

@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """Narrow test models gain little from intra-op threads, and on a busy CPU the OpenMP barriers
    of two threads slow them down several-fold; one thread is steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


NARROW = ["model.widths=[8, 16, 32]", "model.dmfb_inner=8", "model.dmfb_blocks=2", "model.disc_widths=[8, 16, 32, 32]"]


@pytest.mark.parametrize("name", ["model1", "model2", "model3"])
@pytest.mark.parametrize("size", [64, 128, 256])
def test_generator_and_discriminator_shapes(name: str, size: int) -> None:
    cfg = load_config(name, NARROW)
    torch.manual_seed(0)
    generator, discriminator = build_generator(cfg.model), build_discriminator(cfg.model)
    image = torch.rand(2, 3, size, size) * 2 - 1
    mask = (torch.rand(2, 1, size, size) > 0.6).float()
    with torch.no_grad():
        out = generator(image * (1 - mask), mask)
        logits = discriminator(out, mask)
    assert out.shape == image.shape and out.dtype == torch.float32
    assert out.abs().max() <= 1 and out.std() > 0
    assert logits.shape == (2, 1, size // 16 - 1, size // 16 - 1)


@pytest.mark.parametrize("name", ["model1", "model2"])
def test_reference_width_runs_at_64px(name: str) -> None:
    cfg = load_config(name)
    generator = build_generator(cfg.model).eval()
    assert generator.enc1.out_channels == 64 and generator.enc4.out_channels == 256
    image, mask = torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    mask[..., 16:40, 20:44] = 1
    with torch.no_grad():
        out = generator(image, mask)
        logits = build_discriminator(cfg.model)(out, mask)
    assert out.shape == (1, 3, 64, 64) and logits.shape == (1, 1, 3, 3)


def _reference_model2_macs(h: int) -> int:
    """Multiply-adds of the issue's Model 2 layout, written out independently of the code.
    Each gated conv is two convs (feature + gating) of the listed shape."""
    def gated(cin: int, cout: int, res: int, k: int = 3) -> int:
        return 2 * k * k * cin * cout * res * res
    h2, h4 = h // 2, h // 4
    dmfb = gated(256, 64, h4) + 4 * gated(64, 64, h4) + 3 * gated(128, 64, h4) + gated(256, 256, h4, k=1)
    return (
        gated(4, 64, h, k=5) + gated(64, 128, h2) + gated(128, 128, h2) + gated(128, 256, h4)
        + 2 * gated(256, 256, h4) + 4 * dmfb + gated(256, 256, h4)
        + gated(512, 256, h4) + gated(256, 256, h4) + gated(256, 128, h2) + gated(128, 128, h2)
        + gated(256, 128, h2) + gated(128, 128, h2) + gated(128, 64, h) + gated(64, 64, h)
        + gated(128, 64, h) + gated(64, 64, h) + gated(64, 32, h) + 9 * 32 * 3 * h * h
    )


def _forward_flops(cfg_name: str, size: int) -> int:
    cfg = load_config(cfg_name)
    with torch.device("meta"):  # counts FLOPs without computing anything
        generator = build_generator(cfg.model)
        with FlopCounterMode(display=False) as counter:
            generator(torch.zeros(1, 3, size, size), torch.zeros(1, 1, size, size))
    return counter.get_total_flops()


def test_model2_cost_matches_the_issue_layout() -> None:
    flops = _forward_flops("model2", 128)
    assert flops == 2 * _reference_model2_macs(128)  # = 59.5 GFLOP, the figure in the generator's docstring
    assert _forward_flops("model1", 128) < flops  # additive merges are cheaper than concatenation


def test_modified_dmfb_merges_by_concatenation() -> None:
    original = DenseMultiscaleFusionBlock(32, inner=16, merge="add")
    modified = DenseMultiscaleFusionBlock(32, inner=16, merge="concat")
    assert [m.conv.in_channels for m in original.merges] == [16, 16, 16]
    assert [m.conv.in_channels for m in modified.merges] == [32, 32, 32]
    assert [b.conv.dilation for b in modified.branches] == [(1, 1), (2, 2), (4, 4), (8, 8)]
    assert modified.fuse.conv.kernel_size == (1, 1) and modified.fuse.out_channels == 32
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(modified) > n(original)
    g1 = build_generator({"dmfb": "original", "widths": [8, 16, 32], "dmfb_inner": 8})
    g2 = build_generator({"dmfb": "modified", "widths": [8, 16, 32], "dmfb_inner": 8})
    assert g1.bottleneck[2].merge == "add" and g2.bottleneck[2].merge == "concat"


def test_dmfb_is_residual() -> None:
    block = DenseMultiscaleFusionBlock(16, inner=8, merge="concat", batch_norm=False)
    with torch.no_grad():
        block.fuse.conv.bias[block.fuse.out_channels:] = -1e4  # close the fuse gate
        block.fuse.conv.weight[block.fuse.out_channels:] = 0
        x = torch.randn(2, 16, 12, 12)
        assert torch.equal(block(x), x)


def _force_gate(conv: GatedConv2d, bias: float) -> None:
    with torch.no_grad():
        conv.conv.weight[conv.out_channels:] = 0
        conv.conv.bias[conv.out_channels:] = bias


def test_closed_gate_zeroes_the_output() -> None:
    torch.manual_seed(0)
    conv = GatedConv2d(3, 8, batch_norm=False)
    x = torch.randn(2, 3, 16, 16)
    assert conv(x).abs().sum() > 0
    _force_gate(conv, -1e4)
    assert torch.count_nonzero(conv(x)) == 0
    _force_gate(conv, 1e4)  # fully open: just the activated feature conv
    feature = nn.functional.conv2d(x, conv.feature_weight, conv.conv.bias[:8], padding=1)
    torch.testing.assert_close(conv(x), torch.relu(feature))


def test_closed_gate_with_batch_norm_in_eval_gives_the_norm_offset() -> None:
    conv = GatedConv2d(3, 4, batch_norm=True).eval()
    _force_gate(conv, -1e4)
    with torch.no_grad():
        conv.norm.bias.copy_(torch.tensor([0.0, 0.5, -1.0, 2.0]))
        out = conv(torch.randn(1, 3, 8, 8))
    expected = conv.norm.bias.view(1, 4, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected)


def test_gated_layers_keep_size_with_dilation_and_deconv_doubles_it() -> None:
    x = torch.randn(1, 4, 20, 12)
    for d in (1, 2, 4, 8):
        assert GatedConv2d(4, 6, 3, dilation=d)(x).shape == (1, 6, 20, 12)
    assert GatedConv2d(4, 6, 3, stride=2)(x).shape == (1, 6, 10, 6)
    assert GatedDeconv2d(4, 6)(x).shape == (1, 6, 40, 24)


def test_generator_rejects_sizes_it_cannot_restore() -> None:
    generator = build_generator({"widths": [8, 16, 32], "dmfb_inner": 8, "dmfb_blocks": 1})
    with pytest.raises(ValueError, match="multiple of 4"):
        generator(torch.zeros(1, 3, 30, 30), torch.zeros(1, 1, 30, 30))


def test_channels_last_gives_the_same_output() -> None:
    cfg = load_config("smoke")
    torch.manual_seed(0)
    generator = build_generator(cfg.model).eval()
    image, mask = torch.rand(2, 3, 64, 64) * 2 - 1, (torch.rand(2, 1, 64, 64) > 0.7).float()
    with torch.no_grad():
        reference = generator(image, mask)
        generator.to(memory_format=torch.channels_last)
        out = generator(image.to(memory_format=torch.channels_last), mask.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("key, name, path, known", [
    ("generator", "unet9000", "generator.name", "gated_unet"),
    ("discriminator", "stylegan", "discriminator.name", "sn_patchgan"),
    ("dmfb", "fancy", "generator.dmfb", "modified, original"),
])
def test_factory_rejects_unknown_names(key: str, name: str, path: str, known: str) -> None:
    build = build_discriminator if key == "discriminator" else build_generator
    with pytest.raises(ConfigError, match=f"unknown model.{path} '{name}': use one of {known}"):
        build({key: name})  # the flat form of older configs
    role, _, param = path.partition(".")
    nested = {role: {"name": name}} if param == "name" else {role: {param: name}}
    with pytest.raises(ConfigError, match=f"unknown model.{path} '{name}': use one of {known}"):
        build(nested)


def test_models_cli_prints_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert models_main(["--config", "smoke", "--size", "128"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("smoke"))
    px, g_params, _, g_gflops, _ = row.split()[1:]
    cfg = load_config("smoke")
    assert px == "128"
    assert int(g_params.replace(",", "")) == sum(p.numel() for p in build_generator(cfg.model).parameters())
    assert float(g_gflops) > 4 * 0.8  # ~4x the 64-px cost


def test_models_cli_bad_config_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from inpaint.core.cli import run_cli
    with pytest.raises(SystemExit) as exit_info:
        run_cli(models_main, ["--config", "nonexistent_model"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config nonexistent_model not found") and "\n" not in err


def test_factory_rejects_unknown_keys_and_fills_defaults() -> None:
    with pytest.raises(ConfigError, match="unknown key 'model.widht'"):
        build_generator({"widht": [8, 16, 32]})
    generator = build_generator({})  # every key defaulted: the reference Model 2
    assert generator.bottleneck[2].merge == "concat" and len(generator.bottleneck) == 4 + 3
