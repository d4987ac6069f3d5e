"""Schedulers are objects (``jobs.scheduler``): one module each, one registry line each.

A scheduler's name is compared nowhere else in ``jobs/``: the rest of the job layer asks the
scheduler object, so a new scheduler is a new module plus its line in ``jobs.scheduler.MODULES``.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from jobs import scheduler
from jobs.scheduler import Scheduler

JOBS = Path(__file__).resolve().parents[1] / "jobs"
# The scheduler modules and the command layers and plugin only they use: where names may be spelled out.
SCHEDULER_FILES = {"scheduler.py", "pbs.py", "slurm.py", "local.py", "pbs_commands.py", "slurm_commands.py",
                   "pbs_script.py", "submitit_pbs/executor.py"}


def _names_in(node: ast.AST) -> list[str]:
    """Scheduler names written as string literals in ``node`` (itself or a tuple/list/set of them)."""
    if isinstance(node, ast.Constant) and node.value in scheduler.names():
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [name for element in node.elts for name in _names_in(element)]
    return []


def name_comparisons(package: Path, skip: set[str]) -> list[str]:
    """``file:line name`` for each scheduler name compared (``==``, ``in``, …) or used as a dict key
    outside ``skip``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                names = [n for operand in (node.left, *node.comparators) for n in _names_in(operand)]
            elif isinstance(node, ast.Dict):
                names = [n for key in node.keys if key is not None for n in _names_in(key)]
            else:
                continue
            found += [f"{rel}:{node.lineno} {name}" for name in names]
    return found


def test_no_scheduler_name_is_compared_outside_the_scheduler_modules() -> None:
    assert name_comparisons(JOBS, SCHEDULER_FILES) == []


def test_the_scan_finds_a_comparison(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text('if spec.executor == "pbs" or kind in ("slurm", "x"):\n    M = {"local": 1}\n')
    assert name_comparisons(tmp_path, set()) == ["x.py:1 pbs", "x.py:1 slurm", "x.py:2 local"]


def _members(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")} | set(getattr(cls, "__annotations__", {}))


@pytest.mark.parametrize("name", scheduler.names())
def test_every_registered_scheduler_implements_the_protocol(name: str) -> None:
    found = scheduler.scheduler(name)
    assert isinstance(found, Scheduler) and found.name == name
    for member in sorted(_members(Scheduler)):
        wanted = getattr(Scheduler, member, None)
        got = getattr(found, member)
        if callable(wanted):
            assert list(inspect.signature(got).parameters) == list(inspect.signature(wanted).parameters)[1:], member
        else:
            assert isinstance(got, bool if member != "name" else str), member


def test_an_unknown_executor_is_none_or_one_line() -> None:
    assert scheduler.get("sge") is None and scheduler.get(None) is None
    with pytest.raises(Exception, match="unknown executor 'sge': use one of pbs, slurm, local"):
        scheduler.scheduler("sge")
