"""One import direction between the top-level packages (docs/CONTRACTS.md "Shards").

``inpaint`` is the core: ``data_prep`` and ``jobs`` import it, never the other way round, so a
new import against the direction (a cycle between packages) fails here before review. Of
``inpaint`` they import only ``inpaint.core``, the torch-free kernel, so a login node submits a
job or packs shards without loading torch. The packer and the job layer are separate tools:
``data_prep`` imports nothing from ``jobs``. The job layer's torch-free run lives in the jobs tests.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {"inpaint": ("data_prep", "jobs"), "data_prep": ("jobs",)}
KERNEL = "inpaint.core"  # all of inpaint that data_prep and jobs may import
_DYNAMIC = {"import_module", "__import__"}


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module name) of every absolute import, including ``importlib.import_module("x")``
    and ``__import__("x")`` with a literal name (lazy imports inside functions count too)."""
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in _DYNAMIC):
            names.append((node.lineno, node.args[0].value))
    return names


def against_direction(package_dir: Path, forbidden: tuple[str, ...]) -> list[str]:
    """``file:line imports name`` for every import in ``package_dir`` of a package in ``forbidden``."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_names(tree):
            if name.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(package_dir.parent)}:{line} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_against_the_direction(package: str) -> None:
    assert (REPO / package / "__init__.py").is_file()
    assert against_direction(REPO / package, FORBIDDEN[package]) == []


def outside_the_kernel(package_dir: Path) -> list[str]:
    """``file:line imports name`` for every import in ``package_dir`` of ``inpaint`` beyond :data:`KERNEL`."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_names(tree):
            if name.split(".")[0] == "inpaint" and name != KERNEL and not name.startswith(KERNEL + "."):
                found.append(f"{path.relative_to(package_dir.parent)}:{line} imports {name}")
    return found


@pytest.mark.parametrize("package", ["data_prep", "jobs"])
def test_only_the_kernel_of_inpaint_is_imported(package: str) -> None:
    assert outside_the_kernel(REPO / package) == []


def test_the_kernel_check_sees_imports_beyond_it(tmp_path: Path) -> None:
    pkg = tmp_path / "jobs"
    pkg.mkdir()
    (pkg / "ok.py").write_text("from inpaint.core.errors import DataError\nimport inpaint.core\n")
    (pkg / "bad.py").write_text("def f():\n    from inpaint.io.weights import load_generator\n")
    (pkg / "bare.py").write_text("import inpaint\n")
    assert outside_the_kernel(pkg) == ["jobs/bad.py:2 imports inpaint.io.weights", "jobs/bare.py:1 imports inpaint"]


def test_the_kernel_loads_without_torch() -> None:
    """Every module of ``inpaint.core`` imports with torch made unimportable."""
    code = ("import pkgutil, importlib, sys; sys.modules['torch'] = None\n"
            "import inpaint.core\n"
            "for m in pkgutil.walk_packages(inpaint.core.__path__, 'inpaint.core.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(len(list(pkgutil.walk_packages(inpaint.core.__path__))))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 10


@pytest.mark.parametrize("line", ["from data_prep.faces import RACE_NAMES", "import jobs.submit as s",
                                  "def f():\n    import data_prep", "importlib.import_module('jobs.status')",
                                  "__import__('data_prep.pack')"])
def test_the_check_sees_every_form_of_import(tmp_path: Path, line: str) -> None:
    """The scan must catch what it claims: a lazy, aliased or dynamic import is still a cycle."""
    pkg = tmp_path / "inpaint"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import sub\nfrom .sub import x\nimport numpy\n")
    (pkg / "sub" / "mod.py").write_text(line + "\n")
    found = against_direction(pkg, FORBIDDEN["inpaint"])
    assert len(found) == 1 and found[0].startswith("inpaint/sub/mod.py:")


def test_shard_format_and_verify_load_without_torch() -> None:
    """The shard format moved into the core must stay torch-free: ``data_prep.verify`` (and the
    packer) start in a fraction of a second on a login node, without torch."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import inpaint.core.shard_format, data_prep.verify, data_prep.pack\n"
            "assert not any(m == 'jobs' or m.startswith('jobs.') for m in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
