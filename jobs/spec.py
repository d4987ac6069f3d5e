"""A resolved submission (:class:`JobSpec`), saved as ``run_dir/jobs/spec.json``.

Standard library only: every part of a chain reloads it on the node's plain ``python3``
(``python -m jobs.part``) to know its limits, the trainer command and what comes next, so the job
script itself carries no copy of these values.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inpaint.core.atomic import write_json
from inpaint.core.errors import ConfigError
from inpaint.core.contract import EVAL_DIR
from jobs.paths import SPEC, under
from jobs.walltime import format_walltime

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class JobSpec:
    """Everything every executor needs, decided once by ``jobs.options.resolve``."""

    run_dir: str
    config: str
    data: str
    executor: str
    name: str
    walltime_s: int
    time_limit_s: int             # the trainer's budget in a part: walltime - the site's margin
    max_resubmits: int
    then_evaluate: bool = False
    eval_walltime_s: int = 0      # the evaluation part's own walltime (pairs x per-pair time)
    eval_args: list[str] = field(default_factory=list)  # extra evaluate flags; resolve adds none (evaluate picks its baseline on the node)
    chain: int = 0
    queue: str | None = None
    ncpus: int = 1
    ngpus: int = 0
    nodes: int = 1
    mem: str | None = None
    scratch: str | None = None
    gpu_cap: str | None = None
    image: str | None = None
    directives: list[str] = field(default_factory=list)
    train_args: list[str] = field(default_factory=list)
    trainer_module: str = "inpaint.train"
    evaluate_module: str = "inpaint.evaluate"
    python: str = "python"
    project_root: str = str(PROJECT_ROOT)
    profile: dict = field(default_factory=dict)
    chain_id: str = ""            # this submission's chain (jobs.ledger.new_chain_id); "" before chain ids

    @property
    def walltime(self) -> str:
        return format_walltime(self.walltime_s)

    def trainer_argv(self, data: str | None = None, deadline: float | None = None) -> list[str]:
        """The trainer CLI (contract) after ``python -m``. In a part, ``deadline`` (absolute,
        fixed when the part starts) replaces the relative ``--time-limit``, so staging data
        before the trainer starts comes out of the same budget."""
        budget = ["--deadline", str(int(deadline))] if deadline is not None else ["--time-limit", str(self.time_limit_s)]
        return [self.trainer_module, "--config", self.config, "--data", data or self.data, "--run-dir", self.run_dir,
                *budget, *self.train_args]

    def evaluate_argv(self, data: str | None = None) -> list[str]:
        """The evaluation CLI after ``python -m``: the run's newest checkpoint on the test pairs."""
        return [self.evaluate_module, "--run-dir", self.run_dir, "--data", data or self.data,
                "--out", str(under(self.run_dir, EVAL_DIR)), *self.eval_args]

    def save(self) -> Path:
        return write_json(under(self.run_dir, SPEC), asdict(self), indent=1, sort_keys=True)

    @classmethod
    def load(cls, run_dir: Path | str) -> "JobSpec":
        """The spec saved in ``run_dir``, which must be the run dir it was written for: a copied
        (or moved) run dir still names the original, and a part run on the copy would write its
        records and checkpoints into the original."""
        path = under(run_dir, SPEC)
        try:
            spec = cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no submission recorded here; is {run_dir} a run dir made by jobs.submit?") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable ({' '.join(str(exc).split())}); submit again with jobs.submit") from None
        if not _same_dir(spec.run_dir, run_dir):
            raise ConfigError(f"{path}: recorded for run dir {spec.run_dir}, not {run_dir} (a copied or moved run dir?); "
                              f"submit it again with `python -m jobs.submit --run-dir {run_dir}` to continue there")
        return spec


def _same_dir(recorded: str, given: Path | str) -> bool:
    try:
        return Path(recorded).samefile(given)
    except OSError:
        return False
