"""Site profiles name their scheduler; each scheduler fills in its defaults from its own profile."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from inpaint.core.errors import ConfigError
from jobs.options import parse, resolve
from jobs.profiles import PROFILE_DIR, load_profile, packaged_profiles, read_profile, site_defaults
from jobs_support import fake_shards


def _spec(tmp_path, *argv: str):
    return resolve(parse(["--model", "smoke", "--data", str(fake_shards(tmp_path / "shards")),
                          "--run-dir", str(tmp_path / "run"), *argv]), check_paths=False)


def test_slurm_takes_generic_slurm_by_default_and_it_keeps_the_old_slurm_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFILL_PROFILE", "metacentrum")  # a PBS site's choice: PBS only
    spec = _spec(tmp_path, "--executor", "slurm", "--queue", "debug")
    assert spec.profile.name == "generic-slurm" and spec.profile.scheduler == "slurm"
    assert (spec.queue, spec.walltime_s, spec.time_limit_s) == ("debug", 24 * 3600, 24 * 3600 - 900)
    assert (spec.ngpus, spec.ncpus, spec.mem, spec.image) == (0, 1, None, None)
    assert _spec(tmp_path, "--executor", "pbs").profile.name == "metacentrum"


def test_a_profile_for_another_scheduler_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="profile 'metacentrum' is for pbs, not --executor slurm"):
        _spec(tmp_path, "--executor", "slurm", "--profile", "metacentrum")
    with pytest.raises(ConfigError, match="profile 'generic-slurm' is for slurm, not --executor pbs"):
        _spec(tmp_path, "--executor", "pbs", "--profile", "generic-slurm")
    assert _spec(tmp_path, "--executor", "local", "--profile", "metacentrum").profile is None  # no site here


def test_a_slurm_site_profile_with_partitions_checks_the_queue_and_its_limit(tmp_path):
    site = tmp_path / "cluster.yaml"
    site.write_text("name: cluster\nscheduler: slurm\ndefault_queue: gpu\nqueues:\n  gpu: {max_walltime: '48:00:00'}\n"
                    "resources: {ngpus: 2, mem: 64gb}\n")
    profile = load_profile(str(site))
    assert profile.default_walltime == "24:00:00"  # built on generic-slurm
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


# --- the profile record -----------------------------------------------------------------------


@pytest.mark.parametrize("name", packaged_profiles())
def test_a_packaged_profile_reads_as_its_yaml_says(name):
    """The record keeps every value the YAML gives (sections key by key); keys it leaves out take
    their defaults, and the plain form reads back as the same record."""
    raw = yaml.safe_load((PROFILE_DIR / f"{name}.yaml").read_text())
    profile = load_profile(name)
    as_dict = profile.to_dict()
    for section, value in raw.items():
        if isinstance(value, dict) and section != "queues":
            assert {k: as_dict[section][k] for k in value} == value, section
        else:
            assert as_dict[section] == value, section
    assert read_profile(as_dict, "copy") == profile and profile.network_interface is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.name = "other"  # type: ignore[misc]


def test_site_defaults_of_the_packaged_profiles():
    meta = site_defaults(load_profile("metacentrum"))
    assert (meta.queue, meta.queues, meta.walltime_s, meta.margin_s) == ("gpu", {"gpu": 86400, "gpu_long": 336 * 3600}, 0, 900)
    assert meta.resources == {"ncpus": 8, "ngpus": 1, "mem": "32gb", "scratch": "scratch_local=20gb", "gpu_cap": None}
    assert meta.image.endswith("PyTorch:24.04-py3.SIF") and meta.directives == []
    slurm = site_defaults(load_profile("generic-slurm"))
    assert (slurm.queue, slurm.queues, slurm.walltime_s, slurm.image) == (None, {}, 86400, None)


def test_a_site_names_its_network_interface(tmp_path):
    site = tmp_path / "cluster.yaml"
    site.write_text("name: cluster\nscheduler: slurm\nnetwork_interface: ib0\n")
    assert load_profile(str(site)).network_interface == "ib0"
    assert load_profile("generic-slurm").network_interface is None


@pytest.mark.parametrize("text,needle", [
    ("gpus: 2\n", r"unknown key 'gpus': use one of name, scheduler, default_queue, queues, .*network_interface"),
    ("resources: {gpus: 2}\n", "unknown key 'resources.gpus': use one of ncpus, ngpus, mem, scratch, gpu_cap"),
    ("container: {path: x.sif}\n", "unknown key 'container.path': use one of image"),
    ("scratch: {stage: true}\n", "unknown key 'scratch.stage': use one of env, cleanup, stage_data"),
    ("directives: '-m ae'\n", "directives = '-m ae' must be a list of strings"),
    ("resources: {ngpus: two}\n", "resources.ngpus = 'two' must be an integer >= 0 or null"),
    ("scratch: {stage_data: 1}\n", "scratch.stage_data = 1 must be true or false"),
    ("network_interface: 3\n", "network_interface = 3 must be a string or null"),
    ("queues: {cpu: {}}\n", "queue 'cpu' needs max_walltime"),
    ("queues: {cpu: 24}\n", "queue 'cpu' needs max_walltime"),
    ("queues: {cpu: {max_walltime: soon}}\n", "queues.cpu.max_walltime = 'soon' is not a walltime"),
    ("queues: {cpu: {max_walltime: '1:00:00', nodes: 2}}\n", "unknown key 'queues.cpu.nodes': use one of max_walltime"),
    ("multinode_launcher: srun\n", "multinode_launcher = 'srun' must be one of mpiexec, pbsdsh"),
    ("default_queue: cpu\n", "default_queue 'cpu' is not among its queues"),
    ("safety_margin: soon\n", "safety_margin = 'soon' is not a walltime"),
    ("safety_margin: 900\n", "safety_margin = 900 must be a string HH:MM:SS"),
])
def test_a_bad_profile_is_one_line_naming_the_file(tmp_path, text, needle):
    site = tmp_path / "site.yaml"
    site.write_text("name: site\nscheduler: pbs\n" + text)  # over generic-pbs
    with pytest.raises(ConfigError, match=needle) as caught:
        load_profile(str(site))
    assert str(caught.value).startswith(str(site)) and "\n" not in str(caught.value)


def test_a_profile_without_queues_needs_a_default_walltime(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("base: null\nname: site\nscheduler: slurm\n")
    with pytest.raises(ConfigError, match="list queues .each with max_walltime. or give default_walltime"):
        load_profile(str(site))
    site.write_text("base: null\nname: site\nscheduler: slurm\ndefault_walltime: never\n")
    with pytest.raises(ConfigError, match="default_walltime = 'never' is not a walltime"):
        load_profile(str(site))
