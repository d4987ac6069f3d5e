"""Lint, format and type checks of the torch-free kernel and the job layer.

These two run on login nodes and inside every part of a chain, where a typo in a rarely taken
branch (a refused qsub, a full disk) surfaces only in production; ruff and mypy catch much of
that in seconds. Rules live in pyproject.toml. Without the tools the checks skip; CI installs
them (the ``dev`` extra) and must run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKED = ["inpaint/core", "jobs"]
COMMANDS = {
    "ruff check": ["ruff", "check", *CHECKED],
    "ruff format": ["ruff", "format", "--check", *CHECKED],
    "mypy": [sys.executable, "-m", "mypy", *CHECKED],
}


def _tool_available(name: str) -> bool:
    if name == "mypy":
        return subprocess.run([sys.executable, "-c", "import mypy"], capture_output=True).returncode == 0
    return shutil.which(name) is not None


@pytest.mark.parametrize("check", sorted(COMMANDS))
def test_clean(check: str) -> None:
    tool = check.split()[0]
    if not _tool_available(tool):
        message = f"{tool} is not installed: pip install -e '.[dev]'"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the lint checks: {message}")
        pytest.skip(message)
    done = subprocess.run(COMMANDS[check], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{check} found problems:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
