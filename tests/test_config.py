"""Config loading: packaged reference values, defaults, bases, overrides, and one-line errors
that name the key and the file."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, dataclass, fields
from pathlib import Path

import pytest
import yaml

from inpaint.core.config import (
    CONFIG_DIR, SECTIONS, Config, default_config, load_config, migrate_model_section, packaged_configs, parse_override,
    resolve_config, resume_free_keys, save_config,
)
from inpaint.core.errors import ConfigError
from inpaint.core.records import Record, key, positive_int, read_record, record_dict, resume_free_fields

GOLDEN = Path(__file__).parent / "golden" / "configs-before-nesting"
WEIGHTS_CARDS = sorted((Path(__file__).resolve().parents[1] / "inpaint" / "weights").glob("*.json"))


def test_packaged_configs_are_listed() -> None:
    assert {"model1", "model2", "model3", "smoke"} <= set(packaged_configs())


@pytest.mark.parametrize("name, dmfb, perceptual", [("model1", "original", 0.0), ("model2", "modified", 0.0), ("model3", "modified", 0.05)])
def test_reference_configs_carry_the_issue_settings(name: str, dmfb: str, perceptual: float) -> None:
    cfg = load_config(name)
    generator = cfg.model.generator
    assert cfg.name == name and generator.name == "gated_unet" and cfg.model.discriminator.name == "sn_patchgan"
    assert generator.dmfb == dmfb and generator.widths == (64, 128, 256)
    assert generator.dmfb_blocks == 4 and generator.dmfb_inner == 64
    assert cfg.model.discriminator.widths == (64, 128, 256, 256)
    assert cfg.data.size == 128 and cfg.data.mask_flip_p == 0.5
    assert cfg.train.batch_size == 4 and cfg.train.epochs == 90 and cfg.train.max_steps is None
    assert cfg.optim.to_dict() == {"lr": 2.0e-4, "betas": [0.5, 0.999], "lr_decay": "none", "lr_decay_start": 0.0}  # constant rate, as published
    assert cfg.loss.global_l1 == cfg.loss.hole_l1 == cfg.loss.adversarial == 1.0
    assert cfg.loss.perceptual == perceptual and cfg.loss.perceptual_allow_random is False


def test_smoke_config_is_small() -> None:
    cfg = load_config("smoke")
    assert cfg.data.size == 64 and max(cfg.model.generator.widths) <= 64
    assert cfg.train.max_steps <= 500 and cfg.data.workers <= 1
    assert cfg.train.checkpoint_every_steps == 50 and cfg.train.log_every_steps == 10


def test_a_minimal_file_gets_every_default(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  max_steps: 7\n")
    cfg = load_config(path)
    assert cfg.name == "mine" and cfg.train.max_steps == 7
    defaults = default_config().to_dict()
    for section, keys in defaults.items():
        if isinstance(keys, dict):
            assert set(cfg.to_dict()[section]) == set(keys)
    assert cfg.model == default_config().model


def test_overrides_are_typed_yaml_values() -> None:
    cfg = load_config("smoke", [
        "train.max_steps=20", "model.generator.widths=[8, 16, 32]", "train.compile=true",
        "loss.perceptual_weights=/x/vgg.pth", "train.max_steps=null", "optim.lr=1e-3", "name=probe",
        "model.disc_widths=[8, 8]",  # the flat name of older configs and job scripts still works
    ])
    assert cfg.train.max_steps is None  # the later override wins
    assert cfg.model.generator.widths == (8, 16, 32) and cfg.train.compile is True
    assert cfg.model.discriminator.widths == (8, 8) and cfg.model.generator.dmfb_blocks == 2  # the rest of smoke's kept
    assert cfg.loss.perceptual_weights == "/x/vgg.pth"
    assert cfg.optim.lr == 1e-3 and cfg.name == "probe"  # YAML's "1e-3" string read as a float


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
    with pytest.raises(ConfigError, match=r"unknown key 'model.generator.depth': use one of prefill, residual, widths"):
        load_config("smoke", ["model.generator.depth=3"])
    with pytest.raises(ConfigError, match=r"unknown model.generator.name 'unet9000': use one of gated_unet"):
        load_config("smoke", ["model.generator.name=unet9000"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config("smoke", ["max_steps"])


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "train.batch_size = 0 must be a positive integer"),
    ("train.precision=fp8", "must be one of bf16, fp16, fp32"),
    ("model.widths=[64, 128]", "model.generator.widths = [64, 128] must be a list of 3 positive integers"),
    ("model.generator.dmfb_inner=0", "model.generator.dmfb_inner = 0 must be a positive integer"),
    ("model.discriminator.widths=[]", "model.discriminator.widths = [] must be a list of positive integers"),
    ("optim.betas=[0.5]", "two numbers"),
    ("data.mask_flip_p=1.5", "between 0 and 1"),
    ("data.size=100", "multiple of 16"),
    ("train.channels_last=yes please", "true or false"),
])
def test_bad_values_are_rejected(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
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
    assert yaml.safe_load(path.read_text()) == cfg.to_dict()  # plain YAML, nothing of the classes
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temp file left behind


def test_parse_override() -> None:
    assert parse_override("train.seed=3") == {"train": {"seed": 3}}
    assert parse_override("model.generator.widths=[8, 16, 32]") == {"model": {"generator": {"widths": [8, 16, 32]}}}
    for bad in ("train..seed=1", "train=3", "train.=3"):
        with pytest.raises(ConfigError, match="section.key"):
            parse_override(bad)


# --- configs as differences: bases, chains, cycles, one schema ----------------------------------

def _flat(cfg: dict | Config, prefix: str = "") -> dict:
    """Every value of the sections by its dotted name (``model.generator.dmfb``)."""
    plain = cfg.to_dict() if isinstance(cfg, Config) else cfg
    out: dict = {}
    for name, value in plain.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{name}."))
        elif prefix:
            out[f"{prefix}{name}"] = value
    return out


def _differences(a: dict, b: dict) -> dict:
    fa, fb = _flat(a), _flat(b)
    return {k: fb[k] for k in fb if fa[k] != fb[k]}


@pytest.mark.parametrize("name, differences", [
    ("model1", {"model.generator.dmfb": "original"}),
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
    assert cfg.name == "leaf" and "base" not in cfg.to_dict()
    assert cfg.loss.perceptual == 0.05 and cfg.train.batch_size == 8
    assert cfg.optim.lr == 1e-3 and cfg.train.seed == 5
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
    with pytest.raises(ConfigError, match="unknown section 'base' \\('base' belongs in a config file\\)"):
        resolve_config({"base": "model1"})  # a stored, resolved config has no base


def test_one_schema_holds_each_default_and_its_check() -> None:
    defaults = default_config().to_dict()
    assert set(defaults) == {"name", *SECTIONS}
    for section, cls in SECTIONS.items():
        assert set(defaults[section]) == {f.name for f in fields(cls)}
        assert all(callable(f.metadata.get("check")) for f in fields(cls))
    assert resolve_config(defaults) == default_config()  # every default passes its own check
    with pytest.raises(FrozenInstanceError):
        default_config().train.seed = 1  # type: ignore[misc]
    assert isinstance(default_config().model.generator.widths, tuple)  # frozen all the way down


def test_residual_needs_a_classical_fill() -> None:
    with pytest.raises(ConfigError, match="model.generator.residual.*model.generator.prefill"):
        load_config("model2", ["model.residual=true"])
    assert load_config("model2", ["model.residual=true", "model.prefill=navier-stokes"]).model.generator.residual is True


def test_stored_configs_from_before_new_keys_take_their_defaults() -> None:
    old = load_config("smoke").to_dict()
    del old["model"]["generator"]["prefill"], old["model"]["generator"]["residual"]
    assert resolve_config(old) == load_config("smoke")


def test_packaged_configs_resolve_as_before_the_model_section_was_nested() -> None:
    """Each packaged config resolved (JSON, sorted keys) before the model section held its
    architectures: every other section byte-identical, the model section the same values nested."""
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == packaged_configs()
    for name in packaged_configs():
        before = json.loads((GOLDEN / f"{name}.json").read_text())
        after = load_config(name).to_dict()
        for section in before:
            if section != "model":
                assert json.dumps(after[section], sort_keys=True) == json.dumps(before[section], sort_keys=True), (name, section)
        assert after["model"] == migrate_model_section(before["model"]), name
        assert resolve_config(before) == load_config(name)  # a run dir's config.yaml of before resumes as it was


def test_the_flat_model_section_moves_into_its_architectures() -> None:
    flat = {"generator": "gated_unet", "dmfb": "original", "widths": [8, 16, 32], "dmfb_blocks": 1, "dmfb_inner": 8,
            "batch_norm": False, "discriminator": "sn_patchgan", "disc_widths": [8, 8], "prefill": "telea", "residual": True}
    assert migrate_model_section(flat) == {
        "generator": {"name": "gated_unet", "dmfb": "original", "widths": [8, 16, 32], "dmfb_blocks": 1, "dmfb_inner": 8,
                      "batch_norm": False, "prefill": "telea", "residual": True},
        "discriminator": {"name": "sn_patchgan", "widths": [8, 8]},
    }
    assert migrate_model_section({"widths": [8, 16, 32]}) == {"generator": {"widths": [8, 16, 32]}}  # a layer over a base
    nested = {"generator": {"name": "gated_unet"}}
    assert migrate_model_section(nested) == nested


def test_a_flat_model_layer_in_a_users_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("base: smoke\nmodel:\n  generator: gated_unet\n  dmfb: original\n  disc_widths: [8, 16, 16, 16]\n")
    cfg = load_config(path)
    assert cfg.model.generator.dmfb == "original" and cfg.model.generator.widths == (16, 32, 64)  # smoke's, kept
    assert cfg.model.discriminator.widths == (8, 16, 16, 16)


@pytest.mark.parametrize("card", WEIGHTS_CARDS, ids=lambda p: p.stem)
def test_the_shipped_cards_flat_configs_migrate(card: Path) -> None:
    stored = json.loads(card.read_text())["config"]
    assert isinstance(stored["model"]["generator"], str)  # written before the nesting
    cfg = resolve_config(stored, source=str(card))
    assert cfg.to_dict()["model"] == migrate_model_section(stored["model"])
    assert cfg.model.generator.prefill == stored["model"]["prefill"] and cfg.model.generator.residual == stored["model"]["residual"]
    assert list(cfg.model.discriminator.widths) == stored["model"]["disc_widths"]
    for section in ("data", "loss", "optim", "train"):
        assert {k: v for k, v in cfg.to_dict()[section].items() if k in stored[section]} == stored[section]


def test_resume_free_is_field_metadata() -> None:
    assert resume_free_keys() == {
        "name", "train.epochs", "train.max_steps", "train.log_every_steps", "train.checkpoint_every_steps",
        "train.checkpoint_keep", "train.compile", "train.channels_last", "train.precision",
        "data.workers", "loss.perceptual_weights", "optim.lr_decay", "optim.lr_decay_start",
    }


@dataclass(frozen=True)
class _Probe(Record):
    count: int = key(2, positive_int)
    sizes: tuple[int, ...] = key([1, 2], lambda v: None, resume_free=True)


def test_records_read_check_and_write_plain_dicts() -> None:
    probe = read_record(_Probe, {"count": 5}, "probe.yaml", "probe.")
    assert probe == _Probe(count=5, sizes=(1, 2)) and record_dict(probe) == {"count": 5, "sizes": [1, 2]}
    assert resume_free_fields(_Probe) == ["sizes"]
    with pytest.raises(ConfigError, match=r"^probe.yaml: unknown key 'probe.cuont': use one of count, sizes$"):
        read_record(_Probe, {"cuont": 5}, "probe.yaml", "probe.")
    with pytest.raises(ConfigError, match=r"^probe.yaml: probe.count = 0 must be a positive integer"):
        read_record(_Probe, {"count": 0}, "probe.yaml", "probe.")


def test_config_module_stays_torch_free() -> None:
    code = ("import sys, inpaint.core.config as c, inpaint.core.architectures, inpaint.core.records; "
            "c.load_config('smoke'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
