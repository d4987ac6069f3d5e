"""Site profiles (YAML): which scheduler, queue limits, default resources, image path, scratch handling.

A profile names the scheduler it is for (``scheduler: pbs|slurm``); that scheduler turns it into
its defaults (``Scheduler.defaults``, mostly :func:`site_defaults`). A user profile file may name a
packaged one as ``base:`` (default: ``generic-<its scheduler>``) and override any key, so a new
grid is a few lines of YAML rather than a code change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from inpaint.core.errors import ConfigError
from inpaint.core.merge import deep_merge
from jobs.scheduler import SiteDefaults, names
from jobs.walltime import parse_walltime

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
METACENTRUM_MARKER = Path("/cvmfs/singularity.metacentrum.cz")

_SCHEMA: dict[str, Any] = {
    "name": str, "scheduler": str, "default_queue": str, "queues": dict, "default_walltime": str, "resources": dict,
    "container": dict, "scratch": dict, "multinode_launcher": str, "safety_margin": str,
    "directives": list, "network_interface": str,
}
_RESOURCE_KEYS = {"ncpus", "ngpus", "mem", "scratch", "gpu_cap"}
_CONTAINER_KEYS = {"image"}
_SCRATCH_KEYS = {"env", "cleanup", "stage_data"}
_LAUNCHERS = {"pbsdsh", "mpiexec"}


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
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read profile ({exc.strerror}); pass an existing YAML file to --profile") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile must be a YAML mapping; see jobs/profiles/metacentrum.yaml")
    return data


def _validate(profile: dict, source: Path) -> dict:
    for key, value in profile.items():
        if key not in _SCHEMA:
            raise ConfigError(f"{source}: unknown profile key {key!r}; known: {', '.join(sorted(_SCHEMA))}")
        if value is not None and not isinstance(value, _SCHEMA[key]):
            raise ConfigError(f"{source}: {key} must be a {_SCHEMA[key].__name__}")
    for section, known in (("resources", _RESOURCE_KEYS), ("container", _CONTAINER_KEYS),
                           ("scratch", _SCRATCH_KEYS)):
        unknown = set(profile.get(section) or {}) - known
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)} in {section}; known: {sorted(known)}")
    for queue, limits in (profile.get("queues") or {}).items():
        if not isinstance(limits, dict) or "max_walltime" not in limits:
            raise ConfigError(f"{source}: queue {queue!r} needs max_walltime (HH:MM:SS)")
        parse_walltime(limits["max_walltime"], f"{source}: queues.{queue}.max_walltime")
    if profile.get("scheduler") not in names():
        raise ConfigError(f"{source}: scheduler must be one of {list(names())}, not {profile.get('scheduler')!r}")
    launcher = profile.get("multinode_launcher")
    if launcher is not None and launcher not in _LAUNCHERS:
        raise ConfigError(f"{source}: multinode_launcher must be one of {sorted(_LAUNCHERS)}, not {launcher!r}")
    parse_walltime(profile.get("safety_margin", "00:15:00"), f"{source}: safety_margin")
    if profile.get("queues"):
        if profile.get("default_queue") not in profile["queues"]:
            raise ConfigError(f"{source}: default_queue {profile.get('default_queue')!r} is not among its queues")
    elif not profile.get("default_walltime"):
        raise ConfigError(f"{source}: list queues (each with max_walltime) or give default_walltime (HH:MM:SS)")
    if profile.get("default_walltime"):
        parse_walltime(profile["default_walltime"], f"{source}: default_walltime")
    return profile


def load_profile(name_or_path: str | None = None) -> dict:
    """A validated profile: a packaged name (``metacentrum``), or a YAML file with optional ``base:``."""
    name_or_path = name_or_path or default_profile_name()
    packaged = PROFILE_DIR / f"{name_or_path}.yaml"
    if packaged.is_file():
        return _validate(_read_yaml(packaged), packaged)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"profile {name_or_path!r} not found: use one of {packaged_profiles()} or a YAML file path")
    data = _read_yaml(path)
    generic = f"generic-{data.get('scheduler') or 'pbs'}"
    base_name = data.pop("base", None) if "base" in data else generic if generic in packaged_profiles() else "generic-pbs"
    base = load_profile(base_name) if base_name else {}
    return _validate(deep_merge(base, data), path)


def load_profile_for(scheduler: str, name_or_path: str) -> dict:
    """:func:`load_profile`, refused (one line) when the profile is for another scheduler."""
    profile = load_profile(name_or_path)
    if profile.get("scheduler") != scheduler:
        raise ConfigError(f"profile {profile.get('name') or name_or_path!r} is for {profile.get('scheduler')}, not "
                          f"--executor {scheduler}: pass a {scheduler} profile (e.g. generic-{scheduler}) to --profile")
    return profile


def site_defaults(profile: dict) -> SiteDefaults:
    """What a profile gives a submission: its queues and their limits, else the default walltime;
    the margin, resources, image and extra directives."""
    queues = {queue: parse_walltime(limits["max_walltime"]) for queue, limits in (profile.get("queues") or {}).items()}
    return SiteDefaults(
        queue=profile.get("default_queue"), queues=queues,
        walltime_s=parse_walltime(profile["default_walltime"]) if profile.get("default_walltime") else 0,
        margin_s=parse_walltime(profile.get("safety_margin", "00:15:00")),
        resources=dict(profile.get("resources") or {}), image=(profile.get("container") or {}).get("image"),
        directives=list(profile.get("directives") or []))
