"""Shared fixtures: where the real data lives, and small packed shard sets built from it.

Tests that need faces skip with a clear reason when the data folder is absent, except in CI
(``CI=true``), where a missing folder is a failure: CI must run them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from slurm_cluster import slurm_cluster  # noqa: F401  (a real one-node SLURM cluster, session scope)
from slurm_two_nodes import slurm_two_nodes  # noqa: F401  (two SLURM nodes in network namespaces, session scope)

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The data root: ``$FACEFILL_DATA`` if set, else ``../shared/data`` beside the repo."""
    env = os.environ.get("FACEFILL_DATA")
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return root if (root / "faces").is_dir() and (root / "masks").is_dir() else None


def shared_weights_dir() -> Path | None:
    root = REPO_ROOT.parent / "shared" / "weights"
    return root if root.is_dir() else None


def _missing(what: str) -> None:
    msg = f"{what} not found (set FACEFILL_DATA or place the shared folder beside the repo)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the data tests: {msg}")
    pytest.skip(msg)


def _required(root: Path | None, what: str) -> Path:
    if root is None:
        _missing(what)
    return root


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _required(shared_data_dir(), "face/mask data folder")


@pytest.fixture(scope="session")
def weights_root() -> Path:
    return _required(shared_weights_dir(), "../shared/weights")


@pytest.fixture(scope="session")
def shards64(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 faces and 240 masks (spread over all six buckets) packed at 64 px, once per session.

    Read-only for tests: copy it if a test needs to modify shards.
    """
    from data_prep.pack import main as pack_main

    out = tmp_path_factory.mktemp("shards64")
    code = pack_main([
        "--faces", str(data_root / "faces"), "--masks", str(data_root / "masks"),
        "--out", str(out), "--size", "64", "--limit", "300", "--mask-limit", "240",
        "--test-masks-per-bucket", "10", "--min-per-cell", "2", "--workers", "1", "--seed", "0",
    ])
    assert code in (0, None)
    return out


@pytest.fixture
def tmpfs(tmp_path: Path):
    """Mount a small tmpfs: ``tmpfs(size_bytes) -> Path``, unmounted at teardown.

    The full-disk tests need a file system that really fills up; mounting needs root or
    CAP_SYS_ADMIN, so they skip with that reason elsewhere.
    """
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                  capture_output=True, text=True)
        except FileNotFoundError:
            pytest.skip("no mount command here: the full-disk tests mount a small tmpfs")
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root or CAP_SYS_ADMIN")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)

