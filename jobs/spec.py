"""A resolved submission (:class:`JobSpec`), saved as ``run_dir/jobs/spec.json``.

Standard library and ``inpaint.core`` only: every part of a chain reloads it on the node's plain
``python3`` (``python -m jobs.part``) to know its limits, the trainer command and what comes next,
so the job script itself carries no copy of these values. It is a frozen record
(``inpaint.core.records``): a spec.json with a key it does not know, or a value of the wrong
kind, is a one-line error naming the file; a change is a new spec (``dataclasses.replace``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from inpaint.core.atomic import write_json
from inpaint.core.contract import EVAL_DIR
from inpaint.core.errors import ConfigError
from inpaint.core.records import (
    Record,
    boolean,
    is_int,
    key,
    non_empty_str,
    nonneg_int,
    optional_text,
    positive_int,
    read_record,
    record_dict,
    required,
    text_list,
)
from jobs.paths import SPEC, under
from jobs.profiles import SiteProfile, read_profile
from jobs.walltime import format_walltime

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _integer(v: Any) -> str | None:
    return None if is_int(v) else "must be an integer"


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _read_site(value: Any, source: str, path: str, error: type[Exception]) -> SiteProfile | None:
    """spec.json keeps the profile as its plain mapping; ``{}`` where no site applies (local)."""
    if isinstance(value, SiteProfile) or value is None:
        return value
    return read_profile(value, source) if value else None


@dataclass(frozen=True)
class JobSpec(Record):
    """Everything every executor needs, decided once by ``jobs.options.resolve``."""

    run_dir: str = required(non_empty_str)
    config: str = required(non_empty_str)
    data: str = required(non_empty_str)
    executor: str = required(non_empty_str)
    name: str = required(non_empty_str)
    walltime_s: int = required(_integer)
    time_limit_s: int = required(_integer)  # the trainer's budget in a part: walltime - the site's margin
    max_resubmits: int = required(nonneg_int)
    then_evaluate: bool = key(False, boolean)
    eval_walltime_s: int = key(0, nonneg_int)  # the evaluation part's own walltime (pairs x per-pair time)
    eval_args: tuple[str, ...] = key(
        [], text_list
    )  # extra evaluate flags; resolve adds none (evaluate picks its baseline on the node)
    chain: int = key(0, nonneg_int)
    queue: str | None = key(None, optional_text)
    ncpus: int = key(1, nonneg_int)
    ngpus: int = key(0, nonneg_int)
    nodes: int = key(1, positive_int)
    mem: str | None = key(None, optional_text)
    scratch: str | None = key(None, optional_text)
    gpu_cap: str | None = key(None, optional_text)
    image: str | None = key(None, optional_text)
    directives: tuple[str, ...] = key([], text_list)
    train_args: tuple[str, ...] = key([], text_list)
    trainer_module: str = key("inpaint.train", non_empty_str)
    evaluate_module: str = key("inpaint.evaluate", non_empty_str)
    python: str = key("python", non_empty_str)
    project_root: str = key(str(PROJECT_ROOT), non_empty_str)
    profile: SiteProfile | None = key(None, _text, read=_read_site)  # None where no site applies (local)
    chain_id: str = key("", _text)  # this submission's chain (jobs.ledger.new_chain_id); "" before chain ids

    def __post_init__(self) -> None:
        for f in fields(self):  # lists given in code frozen as a spec read from JSON has them
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))

    @property
    def walltime(self) -> str:
        return format_walltime(self.walltime_s)

    def trainer_argv(self, data: str | None = None, deadline: float | None = None) -> list[str]:
        """The trainer CLI (contract) after ``python -m``. In a part, ``deadline`` (absolute,
        fixed when the part starts) replaces the relative ``--time-limit``, so staging data
        before the trainer starts comes out of the same budget."""
        budget = ["--deadline", str(int(deadline))] if deadline is not None else ["--time-limit", str(self.time_limit_s)]
        return [
            self.trainer_module,
            "--config",
            self.config,
            "--data",
            data or self.data,
            "--run-dir",
            self.run_dir,
            *budget,
            *self.train_args,
        ]

    def evaluate_argv(self, data: str | None = None) -> list[str]:
        """The evaluation CLI after ``python -m``: the run's newest checkpoint on the test pairs."""
        return [
            self.evaluate_module,
            "--run-dir",
            self.run_dir,
            "--data",
            data or self.data,
            "--out",
            str(under(self.run_dir, EVAL_DIR)),
            *self.eval_args,
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON spec.json has always had: the profile as its plain mapping, ``{}`` for none."""
        values = record_dict(self)
        values["profile"] = values["profile"] or {}
        return values

    def save(self) -> Path:
        return write_json(under(self.run_dir, SPEC), self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def load(cls, run_dir: Path | str) -> JobSpec:
        """The spec saved in ``run_dir``, which must be the run dir it was written for: a copied
        (or moved) run dir still names the original, and a part run on the copy would write its
        records and checkpoints into the original."""
        path = under(run_dir, SPEC)
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no submission recorded here; is {run_dir} a run dir made by jobs.submit?") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable ({' '.join(str(exc).split())}); submit again with jobs.submit") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: unreadable (not a JSON object); submit again with jobs.submit")
        spec = read_record(cls, values, str(path))
        if not _same_dir(spec.run_dir, run_dir):
            raise ConfigError(
                f"{path}: recorded for run dir {spec.run_dir}, not {run_dir} (a copied or moved run dir?); "
                f"submit it again with `python -m jobs.submit --run-dir {run_dir}` to continue there"
            )
        return spec


def _same_dir(recorded: str, given: Path | str) -> bool:
    try:
        return Path(recorded).samefile(given)
    except OSError:
        return False
