"""What the job layer asks of a scheduler, and the registry of the schedulers it knows.

Every difference between PBS, SLURM and a local run lives in one module per scheduler
(``jobs.pbs``, ``jobs.slurm``, ``jobs.local``), each exporting ``SCHEDULER``, an object with the
interface below; the rest of ``jobs`` asks :func:`get` for the object named by a spec, a ledger
part or an owner record and calls it. A new scheduler is one new module and one line in
:data:`MODULES` (``tests/test_jobs_scheduler.py`` checks that no other module compares names).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from inpaint.core.errors import ConfigError

if TYPE_CHECKING:
    from jobs.profiles import SiteProfile
    from jobs.records import OwnerRecord
    from jobs.spec import JobSpec

# name -> the module whose SCHEDULER implements it; the order is the order of --executor's choices
# and of default_executor()'s questions (the last one must always answer yes).
MODULES: dict[str, str] = {
    "pbs": "jobs.pbs",
    "slurm": "jobs.slurm",
    "local": "jobs.local",
}


@dataclass(frozen=True)
class Seen:
    """What a scheduler says of one job: words for people, whether the job has ended, and what
    else it reports (PBS: state, Exit_status, walltime used and requested) for the table and --json."""

    words: str
    ended: bool
    detail: dict | None = None

    def usage(self) -> str:
        """`` · Exit_status -29 · walltime 00:00:12 of 00:00:10`` (what PBS reported), or ""."""
        d = self.detail or {}
        out = f" · Exit_status {d['exit_status']}" if d.get("exit_status") is not None else ""
        if d.get("walltime_used"):
            out += f" · walltime {d['walltime_used']}" + (f" of {d['walltime_limit']}" if d.get("walltime_limit") else "")
        return out


@dataclass(frozen=True)
class SiteDefaults:
    """What a scheduler takes from its site profile when the command line leaves it open.

    ``queues`` maps each queue the profile lists to its walltime limit in seconds; empty means
    any queue (partition) is accepted and a part gets ``walltime_s`` unless ``--walltime`` says."""

    queue: str | None = None
    queues: dict[str, int] = field(default_factory=dict)
    walltime_s: int = 0
    margin_s: int = 0
    resources: dict[str, Any] = field(default_factory=dict)
    image: str | None = None
    directives: list[str] = field(default_factory=list)


@runtime_checkable
class Scheduler(Protocol):
    """One scheduler: how parts are queued, watched, cancelled and found in the logs."""

    name: str
    queued: bool  # parts wait in a queue (a minimum walltime applies)
    runs_here: bool  # parts run on this machine, watched by the submitting process
    presubmits_chain: bool  # --chain K (parts pre-submitted with dependencies) is possible
    multi_node: bool  # --nodes > 1 is possible
    container_by_default: bool  # parts run in the profile's image unless --container none
    checks_container_here: bool  # parts start the container through jobs.container (PATH checked at submit)
    tracks_ended_jobs: bool  # the scheduler still says how a part's job ended after its end record

    def chosen_by_default(self) -> bool:
        """Whether this machine submits here when --executor is not given."""

    def profile(self, name: str | None) -> SiteProfile | None:
        """The site profile for ``--profile name`` (its default when None); None where none applies."""

    def defaults(self, profile: SiteProfile | None) -> SiteDefaults:
        """What ``profile`` gives a submission the command line leaves open."""

    def check_run_dir(self, run_dir: str) -> None:
        """Refuse (ConfigError) a run dir this scheduler cannot take."""

    def submit(self, spec: JobSpec) -> list[str]:
        """Queue the first part (and any pre-submitted ones) of ``spec``'s new chain; their ids."""

    def submit_successor(self, spec: JobSpec, part: int, kind: str) -> str:
        """Queue part ``part`` (of ``kind``) from inside the part before it; its id."""

    def announce(self, spec: JobSpec, ids: list[str]) -> str:
        """What ``jobs.submit`` prints once the first part is queued."""

    def preview(self, spec: JobSpec) -> str:
        """What ``jobs.submit --dry-run`` shows before the trainer command (a job script), or ""."""

    def states(self, ids: list[str]) -> tuple[dict[str, Seen], str | None]:
        """job id -> what the scheduler says of it; (states, a warning when it could not answer)."""

    def is_alive(self, owner: OwnerRecord) -> tuple[bool, str]:
        """(alive, how we know) for an owner record; a question that cannot be answered is "alive"."""

    def owner_pid(self, job_id: str) -> int | None:
        """The process id an owner record of ``job_id`` carries (local parts), else None."""

    def ending_cause(self, job_id: str) -> tuple[str, str] | None:
        """Why the scheduler is ending ``job_id``, asked by the job itself (see jobs.interruption)."""

    def cancel(self, owner: OwnerRecord | None, ids: list[str]) -> list[str]:
        """End the chain's live jobs ``ids`` (the owner's included); what was deleted or signalled."""

    def logs_dir(self, run_dir: Path | str) -> Path:
        """Where this scheduler writes its parts' job logs."""

    def log_files(self, run_dir: Path | str, job_id: str) -> list[Path]:
        """Every file holding output of ``job_id``."""


def names() -> tuple[str, ...]:
    return tuple(MODULES)


def get(name: str | None) -> Scheduler | None:
    """The scheduler called ``name``, or None for a name no scheduler has (an old or damaged record)."""
    module = MODULES.get(name or "")
    return importlib.import_module(module).SCHEDULER if module else None


def scheduler(name: str) -> Scheduler:
    """The scheduler called ``name``; ConfigError naming the known ones otherwise."""
    found = get(name)
    if found is None:
        raise ConfigError(f"unknown executor {name!r}: use one of {', '.join(names())}")
    return found


def default_name() -> str:
    """The first scheduler in :data:`MODULES` that this machine submits to by default."""
    return next(name for name in names() if scheduler(name).chosen_by_default())


# What must never reach a ``#PBS``/``#SBATCH`` line: a control character ends the directive and
# starts a shell line of the script; ``$(…)``, backticks and ``;`` are shell the moment anything
# evaluates it.
UNSAFE_DIRECTIVE_TEXT = re.compile(r"[\x00-\x1f\x7f]|\$\(|`|;")


def unsafe_directive_text(value: str) -> str | None:
    """Describe the first thing in ``value`` that must not reach a job directive, or None."""
    found = UNSAFE_DIRECTIVE_TEXT.search(value)
    if found is None:
        return None
    text = found.group()
    return f"a control character ({text!r})" if len(text) == 1 and (ord(text) < 32 or ord(text) == 127) else repr(text)


def job_name(text: str, prefix: str) -> str:
    """A job name every scheduler takes: letters, digits, ``_.-`` (anything else becomes ``_``),
    starting with a letter (``prefix`` is put before one that does not), at most 15 characters
    (PBS Pro accepts longer names, but qstat's table and older servers cut at 15)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
    if not name[:1].isalpha():
        name = prefix + name
    return name[:15]


def one_line(text: str) -> str:
    """A scheduler's message as one printable line: control characters (qsub has been seen to end
    its error with a NUL byte) become spaces, runs of white space one space."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", text).split())
