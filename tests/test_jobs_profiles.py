"""Site profiles name their scheduler; each scheduler fills in its defaults from its own profile."""

from __future__ import annotations

import pytest

from inpaint.core.errors import ConfigError
from jobs.options import parse, resolve
from jobs.profiles import load_profile
from jobs_support import fake_shards


def _spec(tmp_path, *argv: str):
    return resolve(parse(["--model", "smoke", "--data", str(fake_shards(tmp_path / "shards")),
                          "--run-dir", str(tmp_path / "run"), *argv]), check_paths=False)


def test_slurm_takes_generic_slurm_by_default_and_it_keeps_the_old_slurm_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFILL_PROFILE", "metacentrum")  # a PBS site's choice: PBS only
    spec = _spec(tmp_path, "--executor", "slurm", "--queue", "debug")
    assert spec.profile["name"] == "generic-slurm" and spec.profile["scheduler"] == "slurm"
    assert (spec.queue, spec.walltime_s, spec.time_limit_s) == ("debug", 24 * 3600, 24 * 3600 - 900)
    assert (spec.ngpus, spec.ncpus, spec.mem, spec.image) == (0, 1, None, None)
    assert _spec(tmp_path, "--executor", "pbs").profile["name"] == "metacentrum"


def test_a_profile_for_another_scheduler_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="profile 'metacentrum' is for pbs, not --executor slurm"):
        _spec(tmp_path, "--executor", "slurm", "--profile", "metacentrum")
    with pytest.raises(ConfigError, match="profile 'generic-slurm' is for slurm, not --executor pbs"):
        _spec(tmp_path, "--executor", "pbs", "--profile", "generic-slurm")
    assert _spec(tmp_path, "--executor", "local", "--profile", "metacentrum").profile == {}  # no site here


def test_a_slurm_site_profile_with_partitions_checks_the_queue_and_its_limit(tmp_path):
    site = tmp_path / "cluster.yaml"
    site.write_text("name: cluster\nscheduler: slurm\ndefault_queue: gpu\nqueues:\n  gpu: {max_walltime: '48:00:00'}\n"
                    "resources: {ngpus: 2, mem: 64gb}\n")
    profile = load_profile(str(site))
    assert profile["default_walltime"] == "24:00:00"  # built on generic-slurm
    spec = _spec(tmp_path, "--executor", "slurm", "--profile", str(site))
    assert (spec.queue, spec.walltime_s, spec.ngpus, spec.ncpus, spec.mem) == ("gpu", 48 * 3600, 2, 8, "64gb")
    with pytest.raises(ConfigError, match="--queue 'cpu' is unknown to profile cluster"):
        _spec(tmp_path, "--executor", "slurm", "--profile", str(site), "--queue", "cpu")
    with pytest.raises(ConfigError, match="exceeds queue gpu's limit 48:00:00"):
        _spec(tmp_path, "--executor", "slurm", "--profile", str(site), "--walltime", "72:00:00")


def test_a_profile_names_a_known_scheduler(tmp_path):
    site = tmp_path / "sge.yaml"
    site.write_text("base: null\nname: sge\nscheduler: sge\ndefault_walltime: '01:00:00'\n")
    with pytest.raises(ConfigError, match="scheduler must be one of"):
        load_profile(str(site))
