"""containers/facefill.def: the image gets the project's code and packaging, and nothing else."""

from __future__ import annotations

import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def section(text: str, name: str) -> list[str]:
    """The non-comment lines of one ``%name`` section of an Apptainer definition file."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("%"):
            inside = line.split()[0] == f"%{name}"
            continue
        if inside and line.strip() and not line.strip().startswith("#"):
            lines.append(line.strip())
    return lines


def test_files_section_copies_every_package_and_no_data() -> None:
    text = (REPO / "containers" / "facefill.def").read_text()
    copied = {src: dest for src, dest in (line.split() for line in section(text, "files"))}
    for src, dest in copied.items():
        assert (REPO / src).exists(), f"%files copies {src}, which the repo does not have"
        assert dest == f"/opt/facefill/{src}"
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    packages = {p.strip().split(".")[0] for p in cfg["options.packages.find"]["include"].split() if p.strip()}
    assert packages <= copied.keys(), f"packages not copied into the image: {packages - copied.keys()}"
    assert {"setup.cfg", "pyproject.toml", "README.md"} <= copied.keys()  # pip install -e needs them
    assert not {".", "data", "runs"} & copied.keys()
    assert any("pip install" in line and "/opt/facefill" in line for line in section(text, "post"))
