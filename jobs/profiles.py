"""Site profiles (YAML): which scheduler, queue limits, default resources, image path, scratch handling.

A profile names the scheduler it is for (``scheduler: pbs|slurm``); that scheduler turns it into
its defaults (``Scheduler.defaults``, mostly :func:`site_defaults`). A user profile file may name a
packaged one as ``base:`` (default: ``generic-<its scheduler>``) and override any key, so a new
grid is a few lines of YAML rather than a code change.

Standard library and ``inpaint.core`` only at import (YAML is read on the submitting side): a
part reloads the profile stored in its ``spec.json`` on the node's plain ``python3``.

A profile is a frozen :class:`SiteProfile` record (``inpaint.core.records``): the YAML layers are
merged as plain mappings, then read once, so every key is checked against the merged whole and an
error names the file that was asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inpaint.core.errors import ConfigError
from inpaint.core.merge import deep_merge
from inpaint.core.records import (
    Record,
    anything,
    boolean,
    choice,
    key,
    non_empty_str,
    optional,
    optional_text,
    read_record,
    text_list,
)
from jobs.scheduler import SiteDefaults, names
from jobs.walltime import parse_walltime

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
METACENTRUM_MARKER = Path("/cvmfs/singularity.metacentrum.cz")
LAUNCHERS = ("mpiexec", "pbsdsh")
DEFAULT_MARGIN = "00:15:00"


# --- value checks ----------------------------------------------------------------------------


def _walltime(v: Any) -> str | None:
    try:
        parse_walltime(v)
    except ConfigError:
        return "is not a walltime: write HH:MM:SS (e.g. 24:00:00)"
    return None


def _walltime_text(v: Any) -> str | None:
    return "must be a string HH:MM:SS (e.g. 24:00:00)" if not isinstance(v, str) else _walltime(v)


def _optional_nonneg_int(v: Any) -> str | None:
    ok = v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
    return None if ok else "must be an integer >= 0 or null"


# --- the records -----------------------------------------------------------------------------


def _section(cls: type[Record]) -> Any:
    """A field holding a sub-section record; ``null`` in YAML means its defaults."""

    def read(value: Any, source: str, path: str, error: type[Exception]) -> Any:
        return cls() if value is None else read_record(cls, value, source, f"{path}.", error)

    return key(cls(), anything, read=read)


@dataclass(frozen=True)
class Queue(Record):
    """One queue (PBS) or partition (SLURM) the site lists, with its walltime limit."""

    max_walltime: str | int = key("", _walltime)


@dataclass(frozen=True)
class Resources(Record):
    """What each part asks for per node where the command line does not say."""

    ncpus: int | None = key(None, _optional_nonneg_int)  # null: 4 per GPU, at least 1
    ngpus: int | None = key(None, _optional_nonneg_int)
    mem: str | None = key(None, optional_text)
    scratch: str | None = key(None, optional_text)
    gpu_cap: str | None = key(None, optional_text)


@dataclass(frozen=True)
class Container(Record):
    """The Singularity image parts run in by default."""

    image: str | None = key(None, optional_text)


@dataclass(frozen=True)
class Scratch(Record):
    """The node-local scratch a PBS part stages its shards into."""

    env: str | None = key("SCRATCHDIR", optional_text)  # the variable naming the scratch folder
    cleanup: str | None = key(None, optional_text)  # the site's helper run on exit, if any
    stage_data: bool = key(True, boolean)


def _read_queues(value: Any, source: str, path: str, error: type[Exception]) -> dict[str, Queue]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise error(f"{source}: {path} must be a mapping of queue names to {{max_walltime: HH:MM:SS}}")
    queues = {}
    for name, limits in value.items():
        if not isinstance(limits, Mapping) or "max_walltime" not in limits:
            raise error(f"{source}: queue {name!r} needs max_walltime (HH:MM:SS)")
        queues[str(name)] = read_record(Queue, limits, source, f"{path}.{name}.", error)
    return queues


@dataclass(frozen=True)
class SiteProfile(Record):
    """A resolved site profile. ``queues`` maps each listed queue to its limits (empty: any queue,
    one part lasting ``default_walltime``)."""

    name: str = key("", non_empty_str)
    scheduler: str = key("", non_empty_str)  # one of jobs.scheduler.names(), checked in check()
    default_queue: str | None = key(None, optional_text)
    queues: dict[str, Queue] = key({}, anything, read=_read_queues)
    default_walltime: str | None = key(None, optional(_walltime_text))
    resources: Resources = _section(Resources)
    container: Container = _section(Container)
    scratch: Scratch = _section(Scratch)
    multinode_launcher: str | None = key(None, optional(choice(LAUNCHERS)))
    #: The nodes' private-network interface for multi-node rendezvous, exported as
    #: GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME (null: let the libraries pick one).
    network_interface: str | None = key(None, optional_text)
    safety_margin: str = key(DEFAULT_MARGIN, _walltime_text)
    directives: tuple[str, ...] = key([], text_list)

    def check(self) -> str | None:
        if self.scheduler not in names():
            return f"scheduler must be one of {', '.join(names())}, not {self.scheduler or None!r}"
        if self.queues:
            if self.default_queue not in self.queues:
                return f"default_queue {self.default_queue!r} is not among its queues"
        elif not self.default_walltime:
            return "list queues (each with max_walltime) or give default_walltime (HH:MM:SS)"
        return None


def read_profile(values: Mapping[str, Any], source: str | Path) -> SiteProfile:
    """A profile from a plain mapping (a merged YAML file, or the copy in a run's ``spec.json``);
    one-line ConfigError naming ``source`` otherwise. ``null`` values mean the defaults."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: a profile must be a mapping; see jobs/profiles/metacentrum.yaml")
    given = {k: v for k, v in values.items() if v is not None}
    return read_record(SiteProfile, given, str(source))


# --- finding and loading ---------------------------------------------------------------------


def packaged_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def default_profile_name() -> str:
    """The PBS default: ``$FACEFILL_PROFILE``, else ``metacentrum`` where its image repository is
    mounted, else ``generic-pbs``."""
    env = os.environ.get("FACEFILL_PROFILE")
    if env:
        return env
    return "metacentrum" if METACENTRUM_MARKER.is_dir() else "generic-pbs"


def _read_yaml(path: Path) -> dict:
    import yaml  # here: a part reads its spec.json (and the profile in it) on the node's plain python3

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read profile ({exc.strerror}); pass an existing YAML file to --profile") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile must be a YAML mapping; see jobs/profiles/metacentrum.yaml")
    return data


def _profile_mapping(name_or_path: str) -> tuple[dict, Path]:
    """The merged plain mapping of a packaged profile or a YAML file over its ``base:``, and the
    file it came from."""
    packaged = PROFILE_DIR / f"{name_or_path}.yaml"
    if packaged.is_file():
        return _read_yaml(packaged), packaged
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"profile {name_or_path!r} not found: use one of {packaged_profiles()} or a YAML file path")
    data = _read_yaml(path)
    generic = f"generic-{data.get('scheduler') or 'pbs'}"
    base_name = data.pop("base", None) if "base" in data else generic if generic in packaged_profiles() else "generic-pbs"
    base = load_profile(base_name).to_dict() if base_name else {}
    return deep_merge(base, data), path


def load_profile(name_or_path: str | None = None) -> SiteProfile:
    """A checked profile: a packaged name (``metacentrum``), or a YAML file with optional ``base:``."""
    values, source = _profile_mapping(name_or_path or default_profile_name())
    return read_profile(values, source)


def load_profile_for(scheduler: str, name_or_path: str) -> SiteProfile:
    """:func:`load_profile`, refused (one line) when the profile is for another scheduler."""
    profile = load_profile(name_or_path)
    if profile.scheduler != scheduler:
        raise ConfigError(
            f"profile {profile.name or name_or_path!r} is for {profile.scheduler}, not "
            f"--executor {scheduler}: pass a {scheduler} profile (e.g. generic-{scheduler}) to --profile"
        )
    return profile


def site_defaults(profile: SiteProfile) -> SiteDefaults:
    """What a profile gives a submission: its queues and their limits, else the default walltime;
    the margin, resources, image and extra directives."""
    return SiteDefaults(
        queue=profile.default_queue,
        queues={queue: parse_walltime(limits.max_walltime) for queue, limits in profile.queues.items()},
        walltime_s=parse_walltime(profile.default_walltime) if profile.default_walltime else 0,
        margin_s=parse_walltime(profile.safety_margin),
        resources=profile.resources.to_dict(),
        image=profile.container.image,
        directives=list(profile.directives),
    )
