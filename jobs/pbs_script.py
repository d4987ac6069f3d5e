"""Render the PBS Pro script of a chain part from a :class:`JobSpec` (template in templates/).

The script holds the directives and what must be shell; the trainer command, limits and the
chain's rules stay in ``spec.json`` and ``jobs.part``, so there is one copy of each.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from jobs.paths import LOGS_DIR
from jobs.pbs import select_chunk
from jobs.spec import JobSpec

TEMPLATE = Path(__file__).resolve().parent / "templates" / "facefill.pbs.sh"
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


def select_statement(spec: JobSpec) -> str:
    """``select=N:ncpus=…:ngpus=…:mem=…[:scratch_local=…][:gpu_cap=…]``."""
    return select_chunk(spec.nodes, spec.ncpus, spec.ngpus, spec.mem, spec.scratch, spec.gpu_cap)


def directives(spec: JobSpec) -> list[str]:
    """``#PBS`` lines; the user's extra directives come first."""
    lines = [f"#PBS {d.strip()}" for d in spec.directives]
    lines += [
        f"#PBS -N {spec.name}",
        f"#PBS -q {spec.queue}",
        f"#PBS -l {select_statement(spec)}",
        f"#PBS -l walltime={spec.walltime}",
    ]
    if spec.nodes > 1:
        lines.append("#PBS -l place=scatter")
    lines += ["#PBS -j oe", f"#PBS -o {Path(spec.run_dir) / LOGS_DIR}/"]
    return lines


def render(spec: JobSpec) -> str:
    """The complete script text; every value is shell-quoted."""
    site = spec.profile
    scratch_cfg = site.scratch if site else None
    q = shlex.quote
    values = {
        "DIRECTIVES": "\n".join(directives(spec)),
        "RUN_DIR": q(spec.run_dir),
        "DATA": q(spec.data),
        "PROJECT_ROOT": q(spec.project_root),
        "IMAGE": q(spec.image or ""),
        "PYTHON": q(spec.python),
        "NGPUS": str(spec.ngpus),
        "NODES": str(spec.nodes),
        "STAGE_DATA": "1" if scratch_cfg is None or scratch_cfg.stage_data else "0",
        "SCRATCH_ENV": q(scratch_cfg and scratch_cfg.env or "SCRATCHDIR"),
        "SCRATCH_CLEANUP": q(scratch_cfg and scratch_cfg.cleanup or ""),
        "LAUNCHER": q(site and site.multinode_launcher or "pbsdsh"),
        "NETWORK_INTERFACE": q(site and site.network_interface or ""),
    }
    return fill(TEMPLATE.read_text(), values)


def fill(template: str, values: dict[str, str]) -> str:
    """Every ``{{NAME}}`` of ``template`` replaced in ONE pass: a value is never searched again, so
    a run dir named ``…{{IMAGE}}…`` stays that text instead of receiving the image's."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise RuntimeError(f"{TEMPLATE}: no value for placeholder(s) {missing}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
