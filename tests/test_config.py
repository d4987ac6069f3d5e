"""Config loading: packaged reference values, defaults, overrides, and one-line errors that name
the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from inpaint.config import DEFAULTS, load_config, packaged_configs, parse_override, save_config
from inpaint.errors import ConfigError


def test_packaged_configs_are_listed() -> None:
    assert {"model1", "model2", "model3", "smoke"} <= set(packaged_configs())


@pytest.mark.parametrize("name, dmfb, perceptual", [("model1", "original", 0.0), ("model2", "modified", 0.0), ("model3", "modified", 0.05)])
def test_reference_configs_carry_the_issue_settings(name: str, dmfb: str, perceptual: float) -> None:
    cfg = load_config(name)
    assert cfg["name"] == name
    assert cfg["model"]["dmfb"] == dmfb and cfg["model"]["widths"] == [64, 128, 256]
    assert cfg["model"]["dmfb_blocks"] == 4 and cfg["model"]["dmfb_inner"] == 64
    assert cfg["model"]["disc_widths"] == [64, 128, 256, 256]
    assert cfg["data"]["size"] == 128 and cfg["data"]["mask_flip_p"] == 0.5
    assert cfg["train"]["batch_size"] == 4 and cfg["train"]["epochs"] == 90 and cfg["train"]["max_steps"] is None
    assert cfg["optim"] == {"lr": 2.0e-4, "betas": [0.5, 0.999]}
    assert cfg["loss"]["global_l1"] == cfg["loss"]["hole_l1"] == cfg["loss"]["adversarial"] == 1.0
    assert cfg["loss"]["perceptual"] == perceptual and cfg["loss"]["perceptual_allow_random"] is False


def test_smoke_config_is_small() -> None:
    cfg = load_config("smoke")
    assert cfg["data"]["size"] == 64 and max(cfg["model"]["widths"]) <= 64
    assert cfg["train"]["max_steps"] <= 500 and cfg["data"]["workers"] <= 1
    assert cfg["train"]["checkpoint_every_steps"] == 50 and cfg["train"]["log_every_steps"] == 10


def test_a_minimal_file_gets_every_default(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  max_steps: 7\n")
    cfg = load_config(path)
    assert cfg["name"] == "mine" and cfg["train"]["max_steps"] == 7
    for section, keys in DEFAULTS.items():
        if isinstance(keys, dict):
            assert set(cfg[section]) == set(keys)
    assert cfg["model"] == DEFAULTS["model"]


def test_overrides_are_typed_yaml_values() -> None:
    cfg = load_config("smoke", [
        "train.max_steps=20", "model.widths=[8, 16, 32]", "train.compile=true",
        "loss.perceptual_weights=/x/vgg.pth", "train.max_steps=null", "optim.lr=1e-3", "name=probe",
    ])
    assert cfg["train"]["max_steps"] is None  # the later override wins
    assert cfg["model"]["widths"] == [8, 16, 32] and cfg["train"]["compile"] is True
    assert cfg["loss"]["perceptual_weights"] == "/x/vgg.pth"
    assert cfg["optim"]["lr"] == 1e-3 and cfg["name"] == "probe"  # YAML's "1e-3" string read as a float


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("train:\n  batchsize: 8\n")
    with pytest.raises(ConfigError, match=rf"{path}.*unknown key 'train.batchsize'.*batch_size"):
        load_config(path)


def test_unknown_section_and_override_key() -> None:
    with pytest.raises(ConfigError, match="unknown section 'trainer'"):
        load_config("smoke", ["trainer.max_steps=3"])
    with pytest.raises(ConfigError, match=r"smoke.yaml \(override 'model.depth=3'\): unknown key 'model.depth'"):
        load_config("smoke", ["model.depth=3"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config("smoke", ["max_steps"])


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "train.batch_size = 0 must be a positive integer"),
    ("train.precision=fp8", "must be one of bf16, fp16, fp32"),
    ("model.widths=[64, 128]", "list of 3 positive integers"),
    ("optim.betas=[0.5]", "two numbers"),
    ("data.mask_flip_p=1.5", "between 0 and 1"),
    ("data.size=100", "multiple of 16"),
    ("train.channels_last=yes please", "true or false"),
])
def test_bad_values_are_rejected(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config("model2", [override])


def test_all_zero_loss_weights_are_rejected() -> None:
    with pytest.raises(ConfigError, match="sum to 0"):
        load_config("model1", ["loss.global_l1=0", "loss.hole_l1=0", "loss.adversarial=0"])


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  max_steps: [1,\n")
    with pytest.raises(ConfigError, match=rf"{path} line \d+ is not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found.*model1, model2, model3"):
        load_config(tmp_path / "absent.yaml")
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(not_a_mapping)


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    cfg = load_config("model3", ["train.max_steps=11"])
    path = save_config(cfg, tmp_path / "config.yaml")
    assert load_config(path) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temp file left behind


def test_parse_override() -> None:
    assert parse_override("train.seed=3") == {"train": {"seed": 3}}
    with pytest.raises(ConfigError):
        parse_override("a.b.c=1")
