"""What ``pip install facefill`` brings: the default ``predict`` model starts
from OpenCV's fill and evaluation scores scikit-image's, so both are core dependencies; the old
``[baselines]`` extra still installs; dlib stays optional (``[identity]``)."""

from __future__ import annotations

import re
from pathlib import Path

from setuptools.config.setupcfg import read_configuration

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> tuple[set[str], dict[str, set[str]]]:
    options = read_configuration(str(REPO / "setup.cfg"))["options"]
    names = lambda reqs: {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs}  # noqa: E731
    return names(options["install_requires"]), {k: names(v) for k, v in options["extras_require"].items()}


def test_opencv_and_scikit_image_are_core_and_dlib_stays_optional() -> None:
    core, extras = _requirements()
    assert {"opencv-python-headless", "scikit-image", "torch", "numpy", "pillow"} <= core
    assert "baselines" in extras and extras["baselines"] <= core  # an alias: 'facefill[baselines]' still installs
    assert "dlib-bin" in extras["identity"] and "dlib-bin" not in core


def test_the_container_installs_every_core_dependency_it_may_lack() -> None:
    """The image keeps its own torch (--no-deps) and installs the rest by hand: the list must follow setup.cfg."""
    core, _ = _requirements()
    post = (REPO / "containers" / "facefill.def").read_text()
    needed = set(re.findall(r'"[\w.]+": "([\w-]+)"', post))
    assert core - {"torch", "torchvision"} <= needed, core - {"torch", "torchvision"} - needed
