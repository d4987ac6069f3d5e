"""The rendered PBS script's multi-node branch end to end: two "nodes" that are two network
namespaces joined by one veth link (the network of tests/slurm_two_nodes.py, without its SLURM
daemons), a two-line ``$PBS_NODEFILE`` of names that resolve nowhere, and a stub ``pbsdsh`` that
starts the node task once per line of it, each inside its node's namespace under the node's host
name, as PBS Pro's pbsdsh spawns one task per node of the job (docs/pbs-multinode.md).

The batch script itself runs in the first node's namespace, as on a real job. The real trainer
(smoke config, CPU, gloo) trains with world size 2 across the link, and the part ends and records
as a single-node part does, from rank 0's status.json. Skips without root; runs in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import pytest

from jobs import ledger
from jobs.chain_state import read_chain_state
from jobs.pbs import write_script
from jobs.profiles import load_profile
from jobs.spec import JobSpec
from jobs_support import REPO_ROOT, calls, fake_shards, stub_bin, stub_env

NODES = ("ffnode1", "ffnode2")

# pbsdsh of the namespaces: one task per line of $PBS_NODEFILE (PBS Pro spawns one per node of the
# job, in its order), started in that node's network namespace, named after it, in the home
# directory; like the real one it exits 0 whatever the tasks exit with, saying so for a failed one.
STUB_PBSDSH = "#!/bin/bash\n" + 'printf "%s\\n" "$*" >> "$STUB_LOG/pbsdsh.calls"\n' + r'''
[ "$1" = -- ] || { echo "Usage: pbsdsh [-c copies][-s][-v][-o] -- program [args...]" >&2; exit 1; }
shift
pids=(); task=0
while read -r node; do
  ns=$(awk -v n="$node" '$1 == n { print $2 }' "$STUB_NETNS")
  echo "$node $ns" >> "$STUB_LOG/pbsdsh-tasks.calls"
  ( cd "$HOME" && exec nsenter --net="/run/netns/$ns" unshare --uts -- \
      sh -c 'hostname "$0" && exec "$@"' "$node" "$@" ) &
  pids+=($!)
done < "$PBS_NODEFILE"
for p in "${pids[@]}"; do
  code=0; wait "$p" || code=$?
  [ "$code" = 0 ] || printf 'pbsdsh: task 0x%08X exit status %d\n' "$task" "$code"
  task=$((task + 1))
done
exit 0
'''


@dataclass
class NodeNetwork:
    """What ``slurm_two_nodes._make_network`` fills in: one namespace and address per node."""

    nodes: tuple[str, ...] = NODES
    namespaces: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[NodeNetwork]:
    import slurm_two_nodes

    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must run the two-node PBS test: it needs root for network namespaces")
        pytest.skip("needs root: the two nodes are network namespaces")
    network = NodeNetwork()
    try:
        slurm_two_nodes._make_network(network)
        yield network
    finally:
        for ns in network.namespaces.values():
            slurm_two_nodes.delete_namespace(ns)


@pytest.fixture(scope="module")
def small_shards(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 faces at 64 px with generated masks: packed in about a second."""
    out = tmp_path_factory.mktemp("shards")
    subprocess.run([sys.executable, "-m", "data_prep.pack", "--faces", str(data_root / "faces"), "--masks", "generate",
                    "--mask-count", "120", "--test-masks-per-bucket", "2", "--limit", "120", "--size", "64",
                    "--workers", "1", "--out", str(out)], check=True, capture_output=True, timeout=120, cwd=REPO_ROOT)
    return out


def _spec(tmp_path: Path, data: Path, interface: str | None) -> JobSpec:
    profile = replace(load_profile("generic-pbs"), multinode_launcher="pbsdsh", network_interface=interface)
    return JobSpec(run_dir=str(tmp_path / "run"), config="smoke", data=str(data), executor="pbs", name="ff-run",
                   walltime_s=3600, time_limit_s=3000, max_resubmits=3, queue="gpu", ncpus=2, ngpus=1, nodes=2,
                   image=None, python=sys.executable, project_root=str(REPO_ROOT), profile=profile,
                   train_args=["--device", "cpu", "--max-steps", "2", "--set", "data.workers=0",
                               "--set", "train.batch_size=2"])


def _run_part(tmp_path: Path, spec: JobSpec, network: NodeNetwork | None) -> tuple[subprocess.CompletedProcess, Path]:
    """The batch script, as PBS starts it on the first node of the job."""
    script = write_script(spec)
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("".join(f"{node}\n" for node in NODES))  # one line per chunk, names only
    netns = tmp_path / "netns"
    netns.write_text("".join(f"{n} {ns}\n" for n, ns in (network.namespaces if network else {}).items()))
    bindir, log = stub_bin(tmp_path, pbsdsh=STUB_PBSDSH)
    env = stub_env(bindir, log, PBS_JOBID="9.vm", FACEFILL_PART="1", PBS_NODEFILE=str(nodefile),
                   STUB_NETNS=str(netns), OMP_NUM_THREADS="1", HOME=str(tmp_path))
    env.pop("SCRATCHDIR", None)
    cmd = ["bash", str(script)]
    if network is not None:
        first = NODES[0]
        cmd = ["nsenter", f"--net=/run/netns/{network.namespaces[first]}", "unshare", "--uts", "--",
               "sh", "-c", 'hostname "$0" && exec "$@"', first, *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240), log


def test_the_real_trainer_trains_across_two_nodes_that_meet_only_by_address(tmp_path, two_nodes, small_shards):
    import slurm_two_nodes

    spec = _spec(tmp_path, small_shards, slurm_two_nodes.IFNAME)
    proc, log = _run_part(tmp_path, spec, two_nodes)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    master = two_nodes.addresses[NODES[0]]
    assert f"rendezvous at {master}:29500 via pbsdsh" in out
    [launch] = calls(log, "pbsdsh")
    assert launch.startswith(f"-- /bin/bash {spec.run_dir}/jobs/facefill.pbs.sh --node-launch {master}:29500 ")
    assert calls(log, "pbsdsh-tasks") == [f"{node} {two_nodes.namespaces[node]}" for node in NODES]
    # both ranks trained, one per namespace: the only way between them is the veth link
    assert "2 processes" in (Path(spec.run_dir) / "train.log").read_text()
    part = ledger.read_parts(spec.run_dir)[0]
    assert (part.exit_code, part.step, part.action) == (0, 2, "done"), out[-4000:]
    assert read_chain_state(spec.run_dir).state == "done"
    assert calls(log, "qsub") == []


def test_an_interface_without_an_address_stops_the_part_in_one_line(tmp_path):
    spec = _spec(tmp_path, fake_shards(tmp_path / "shards"), "ffnosuch0")
    proc, log = _run_part(tmp_path, spec, None)
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if "network_interface" in line]
    assert len(lines) == 1 and "no IPv4 address on network_interface 'ffnosuch0'" in lines[0], out
    assert "set network_interface in the site profile" in lines[0]
    assert calls(log, "pbsdsh") == []
    part = ledger.read_parts(spec.run_dir)[0]
    assert (part.exit_code, part.action) == (2, "stop")
    assert proc.returncode == 2
