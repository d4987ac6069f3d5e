"""Every jobs command answers a mistyped option with one line on stderr, exit 2, naming the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module,argv,typo,fix", [
    ("jobs.submit", ["--model", "smoke"], "--max-resubmtis", "--max-resubmits"),
    ("jobs.status", ["run"], "--jsn", "--json"),
    ("jobs.cancel", ["run"], "--fource", None),
    ("jobs.logs", ["run"], "--trian", "--train"),
    ("jobs.part", ["end", "run", "--part", "1", "--job-id", "1.vm"], "--exit-cdoe", "--exit-code"),
])
def test_a_typo_is_one_line_with_did_you_mean(module, argv, typo, fix):
    proc = subprocess.run([sys.executable, "-m", module, *argv, typo, "1"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert f"python{'3' if module == 'jobs.part' else ''} -m {module} --help" in proc.stderr
    if fix:
        assert f"did you mean {fix}?" in proc.stderr, proc.stderr


def test_a_wrong_choice_gets_the_closest_one():
    proc = subprocess.run([sys.executable, "-m", "jobs.submit", "--executor", "slrum"], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 2 and "did you mean slurm?" in proc.stderr and len(proc.stderr.splitlines()) == 1
