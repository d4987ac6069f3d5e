"""Config loading: packaged reference values, defaults, bases, overrides, and one-line errors
that name the key and the file."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from inpaint.core.config import (
    CONFIG_DIR, SECTIONS, default_config, load_config, packaged_configs, parse_override, save_config,
)
from inpaint.core.errors import ConfigError


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
    assert cfg["optim"] == {"lr": 2.0e-4, "betas": [0.5, 0.999], "lr_decay": "none", "lr_decay_start": 0.0}  # constant rate, as published
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
    defaults = default_config()
    for section, keys in defaults.items():
        if isinstance(keys, dict):
            assert set(cfg[section]) == set(keys)
    assert cfg["model"] == defaults["model"]


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


# --- configs as differences: bases, chains, cycles, one schema ----------------------------------

def _flat(cfg: dict) -> dict:
    return {f"{s}.{k}": v for s, keys in cfg.items() if isinstance(keys, dict) for k, v in keys.items()}


def _differences(a: dict, b: dict) -> dict:
    fa, fb = _flat(a), _flat(b)
    return {k: fb[k] for k in fb if fa[k] != fb[k]}


@pytest.mark.parametrize("name, differences", [
    ("model1", {"model.dmfb": "original"}),
    ("model3", {"loss.perceptual": 0.05}),
])
def test_reference_variants_state_only_their_difference_from_model2(name: str, differences: dict) -> None:
    raw = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    assert raw.pop("base") == "model2"
    assert _flat(raw) == differences  # the file holds nothing else
    assert _differences(load_config("model2"), load_config(name)) == differences


def test_smoke_and_model2_files_repeat_nothing() -> None:
    model2 = yaml.safe_load((CONFIG_DIR / "model2.yaml").read_text()) or {}
    defaults = _flat(default_config())
    assert all(defaults[k] != v for k, v in _flat(model2).items())  # model2 IS the schema default
    smoke = yaml.safe_load((CONFIG_DIR / "smoke.yaml").read_text())
    assert smoke.pop("base") == "model2"
    base = _flat(load_config("model2"))
    assert _flat(smoke) and all(base[k] != v for k, v in _flat(smoke).items())


def test_base_chain_relative_to_the_file_and_name_of_the_leaf(tmp_path: Path) -> None:
    (tmp_path / "mid.yaml").write_text("base: model3\ntrain:\n  batch_size: 8\n")
    (tmp_path / "leaf.yaml").write_text("base: mid\noptim:\n  lr: 1e-3\n")
    cfg = load_config(tmp_path / "leaf.yaml", ["train.seed=5"])
    assert cfg["name"] == "leaf" and "base" not in cfg
    assert cfg["loss"]["perceptual"] == 0.05 and cfg["train"]["batch_size"] == 8
    assert cfg["optim"]["lr"] == 1e-3 and cfg["train"]["seed"] == 5
    assert _differences(load_config("model3"), cfg) == {"train.batch_size": 8, "optim.lr": 1e-3, "train.seed": 5}


def test_a_base_cycle_is_an_error_naming_the_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("base: b.yaml\n")
    b.write_text("base: a\n")
    with pytest.raises(ConfigError, match=rf"cycle \({a} → {b} → {a}\)"):
        load_config(a)
    own = tmp_path / "self.yaml"
    own.write_text("base: self\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(own)


def test_a_missing_base_and_a_bad_key_in_a_base_name_their_file(tmp_path: Path) -> None:
    leaf = tmp_path / "leaf.yaml"
    leaf.write_text("base: nowhere\n")
    with pytest.raises(ConfigError, match=rf"{leaf}: base 'nowhere' not found.*model2"):
        load_config(leaf)
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  widht: [8, 16, 32]\n")
    leaf.write_text("base: base\n")
    with pytest.raises(ConfigError, match=rf"{base}: unknown key 'model.widht'"):
        load_config(leaf)
    from inpaint.core.config import resolve_config
    with pytest.raises(ConfigError, match="unknown section 'base' \\('base' belongs in a config file\\)"):
        resolve_config({"base": "model1"})  # a stored, resolved config has no base


def test_one_schema_holds_each_default_and_its_check() -> None:
    defaults = default_config()
    assert set(defaults) == {"name", *SECTIONS}
    for section, cls in SECTIONS.items():
        assert list(defaults[section]) == [f.name for f in fields(cls)]
        assert all(callable(f.metadata.get("check")) for f in fields(cls))
        assert all(f.metadata["check"](defaults[section][f.name]) is None for f in fields(cls))
    defaults["model"]["widths"].append(1)
    assert default_config()["model"]["widths"] == [64, 128, 256]  # a fresh copy every time


def test_residual_needs_a_classical_fill() -> None:
    with pytest.raises(ConfigError, match="model.residual.*model.prefill"):
        load_config("model2", ["model.residual=true"])
    assert load_config("model2", ["model.residual=true", "model.prefill=navier-stokes"])["model"]["residual"] is True


def test_stored_configs_from_before_new_keys_take_their_defaults() -> None:
    from inpaint.core.config import resolve_config
    old = load_config("smoke")
    del old["model"]["prefill"], old["model"]["residual"]
    assert resolve_config(old) == load_config("smoke")


def test_config_module_stays_torch_free() -> None:
    code = "import sys, inpaint.core.config as c; c.load_config('smoke'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
