"""Configs that must be refused in one short line rather than a traceback or a message of millions
of characters: YAML alias bombs (in a file or a --set value), binary files, and numbers outside
what training can use."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from inpaint.core.config import load_config, parse_override
from inpaint.core.errors import ConfigError


def bomb(levels: int, indent: str = "    ") -> str:
    """YAML list items of nested aliases: ``levels`` lists of nine, each item the previous list, so
    the last one expands to 9**levels numbers from a few hundred bytes."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{indent}- &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"{indent}- &{name} [{', '.join([f'*{prev}'] * 9)}]" for prev, name in zip(names, names[1:])]
    return "\n".join(lines) + "\n"


def _one_short_line(exc: pytest.ExceptionInfo[ConfigError], limit: int = 600) -> str:
    message = str(exc.value)
    assert "\n" not in message and len(message) < limit, message[:1000]
    return message


def test_an_alias_bomb_in_a_config_file_is_refused_quickly(tmp_path: Path) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text("model:\n  widths:\n" + bomb(7))
    assert config.stat().st_size < 700
    started = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        load_config(config)
    message = _one_short_line(exc)
    assert str(config) in message and "alias" in message and "line 4" in message
    assert time.monotonic() - started < 5

    anchored = tmp_path / "anchored.yaml"  # an anchor no alias refers to expands nothing: harmless
    anchored.write_text("model:\n  widths: &w [8, 16, 16]\n")
    assert load_config(anchored).model.generator.widths == (8, 16, 16)


def test_an_alias_in_a_set_value_is_refused() -> None:
    bomb = "[" + ",".join(["&a [1,1,1,1,1,1,1,1,1]"] + ["*a"] * 8) + "]"
    with pytest.raises(ConfigError) as exc:
        parse_override(f"model.widths={bomb}")
    message = _one_short_line(exc)
    assert "model.widths" in message and "alias" in message


def test_a_huge_rejected_value_is_shown_cut_short() -> None:
    huge = "[" + ",".join(["-1"] * 200_000) + "]"
    with pytest.raises(ConfigError) as exc:
        load_config("smoke", [f"model.widths={huge}"])
    message = _one_short_line(exc)
    assert "model.widths" in message and "must be a list of 3 positive integers" in message


def test_a_binary_config_file_is_a_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "binary.yaml"
    config.write_bytes(b"model:\n  widths: [1, 2]\n\xff\xfe\x00\x81garbage\x00")
    with pytest.raises(ConfigError) as exc:
        load_config(config)
    message = _one_short_line(exc)
    assert str(config) in message and "UTF-8" in message


@pytest.mark.parametrize("override, key", [
    ("train.seed=18446744073709551616", "train.seed"),
    ("train.seed=4294967296", "train.seed"),
    ("optim.lr=1e300", "optim.lr"),
    ("optim.lr=.inf", "optim.lr"),
    ("optim.lr=.nan", "optim.lr"),
    ("loss.hole_l1=.inf", "loss.hole_l1"),
    ("loss.perceptual=.nan", "loss.perceptual"),
    ("train.batch_size=100000000000000000000000", "train.batch_size"),
    ("data.size=1048576", "data.size"),
])
def test_numbers_outside_what_training_can_use_are_refused(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config("smoke", [override])
    assert key in _one_short_line(exc)


def test_the_largest_accepted_seed_and_a_normal_lr_still_load() -> None:
    cfg = load_config("smoke", ["train.seed=4294967295", "optim.lr=0.5"])
    assert cfg.train.seed == 2**32 - 1 and cfg.optim.lr == 0.5
