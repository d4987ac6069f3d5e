"""Run a part's command in the submission's image, for the executors that start it from Python.

``--image`` (or ``--container singularity``) means the trainer runs in that image whatever the
executor: the PBS script does it in bash (``in_container``), the local and SLURM parts through
:func:`wrap`, with the same binds and the project on the image's ``PYTHONPATH``. Apptainer reads
``APPTAINERENV_*`` and only warns about ``SINGULARITYENV_*``, Singularity the other way round,
so both are set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from jobs.spec import JobSpec

PROGRAMS = ("singularity", "apptainer")  # Apptainer installs a "singularity" too
SITE_DIR = ".container-site"  # packages the image lacks, installed beside the project (containers/README.md)


def program() -> str:
    """The container runtime on this node's PATH; the first name when neither is (the part then
    fails with the shell's "not found", exit 127, recorded like any other exit)."""
    return next((name for name in PROGRAMS if shutil.which(name)), PROGRAMS[0])


def wrap(spec: JobSpec, argv: list[str], data: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(command, extra environment) running ``argv`` (``python -m …``) in ``spec.image``, or
    ``argv`` unchanged on the host when there is no image."""
    if not spec.image:
        return argv, {}
    pythonpath = spec.project_root
    if (Path(spec.project_root) / SITE_DIR).is_dir():
        pythonpath += f":{Path(spec.project_root) / SITE_DIR}"
    binds = [arg for path in dict.fromkeys((spec.run_dir, data or spec.data, spec.project_root)) for arg in ("-B", path)]
    gpu = ["--nv"] if spec.ngpus else []
    env = {"SINGULARITYENV_PYTHONPATH": pythonpath, "APPTAINERENV_PYTHONPATH": pythonpath}
    return [program(), "exec", *gpu, *binds, spec.image, *argv], env
