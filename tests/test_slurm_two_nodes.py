"""The real two-node SLURM cluster (tests/slurm_two_nodes.py): jobs spread over both nodes, the
nodes reach each other over their veth link only, torchrun's c10d rendezvous and gloo across the
nodes, and a node whose slurmd dies under a running job.

Every command below is a plain ``sbatch``/``srun``/``squeue``/``scontrol`` from ``PATH`` with
``cluster.env``, as ``jobs.submit`` calls them. Skips without root; runs in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from slurm_cluster import _our_processes

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED")
ALLREDUCE = Path(__file__).with_name("two_nodes_allreduce.py")


def submit(cluster, tmp_path: Path, body: str, *options: str) -> str:
    """sbatch a two-node job script (one task per node) running ``body``; returns its id."""
    script = tmp_path / f"job{len(list(tmp_path.glob('job*.sh')))}.sh"
    script.write_text(f"#!/bin/sh\n#SBATCH --nodes=2 --ntasks-per-node=1\n{body}\n")
    out = cluster.run("sbatch", "--parsable", f"--chdir={tmp_path}", f"--output={tmp_path}/%j.out", *options,
                      str(script), timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def job_field(cluster, job: str, name: str) -> str:
    out = cluster.run("scontrol", "show", "job", "-o", job, timeout=30)
    m = re.search(rf"\b{name}=(\S+)", out.stdout)
    return m.group(1) if m else ""


def wait_job(cluster, job: str, timeout: float) -> str:
    """The job's final state, polled; cancelled (and the test failed) past ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job_field(cluster, job, "JobState")
        if state in TERMINAL:
            return state
        time.sleep(0.3)
    cluster.run("scancel", job)
    pytest.fail(f"job {job} did not end within {timeout:.0f} s (last state {state})")


def run_job(cluster, tmp_path: Path, body: str, *options: str, timeout: float = 60) -> tuple[str, str]:
    job = submit(cluster, tmp_path, body, *options)
    state = wait_job(cluster, job, timeout)
    out = tmp_path / f"{job}.out"
    return state, out.read_text(errors="replace") if out.is_file() else ""


def test_without_root_the_two_nodes_cannot_start_and_say_why(monkeypatch, tmp_path):
    import slurm_two_nodes

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(slurm_two_nodes.ClusterUnavailable, match="needs root"):
        slurm_two_nodes.start_two_nodes(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written, no namespace made


def test_a_failed_start_leaves_no_daemon_namespace_or_link(monkeypatch):
    import slurm_two_nodes

    if os.geteuid() != 0:
        pytest.skip("needs root, like the cluster")
    real = slurm_two_nodes._which
    monkeypatch.setattr(slurm_two_nodes, "_which", lambda name: "/bin/false" if name == "slurmctld" else real(name))
    before = set(slurm_two_nodes._namespaces())
    root = Path(tempfile.mkdtemp(prefix="facefill-slurm2-"))  # munged (user munge) must reach it
    root.chmod(0o755)
    try:
        with pytest.raises(slurm_two_nodes.ClusterUnavailable, match="slurmctld exited"):
            slurm_two_nodes.start_two_nodes(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert set(slurm_two_nodes._namespaces()) == before
    assert _our_processes(root / "slurm.conf") == []  # munged and both slurmds stopped too


def test_a_job_runs_one_step_on_each_node(slurm_two_nodes, tmp_path):
    cluster = slurm_two_nodes
    state, out = run_job(cluster, tmp_path, """srun sh -c 'echo "task $SLURM_PROCID node $SLURMD_NODENAME host $(hostname)"'""")
    assert state == "COMPLETED", out
    assert sorted(line for line in out.splitlines() if line.startswith("task ")) == [
        "task 0 node ffnode1 host ffnode1", "task 1 node ffnode2 host ffnode2"], out
    # an srun started from the test process itself (it runs on node 1's side of the link)
    direct = cluster.run("srun", "--nodes=2", "--ntasks-per-node=1", "hostname", timeout=60)
    assert direct.returncode == 0 and sorted(direct.stdout.split()) == ["ffnode1", "ffnode2"], direct.stderr


PROBE = r'''
import os, socket, sys, time
node, first, port = os.environ["SLURMD_NODENAME"], sys.argv[1], int(sys.argv[2])
names = sorted(name for _, name in socket.if_nameindex())
if os.environ["SLURM_NODEID"] == "0":
    srv = socket.create_server((first, port))
    conn, peer = srv.accept()
    print(f"{node} interfaces {names} accepted {peer[0]} saying {conn.recv(100).decode()}", flush=True)
else:
    for _ in range(100):
        try:
            conn = socket.create_connection((first, port), timeout=5)
            break
        except ConnectionRefusedError:
            time.sleep(0.1)
    conn.sendall(f"hello from {node}".encode())
    print(f"{node} interfaces {names} connected from {conn.getsockname()[0]}", flush=True)
'''


def test_the_nodes_reach_each_other_over_their_veth_only(slurm_two_nodes, tmp_path):
    cluster = slurm_two_nodes
    first, second = (cluster.addresses[n] for n in cluster.nodes)
    (tmp_path / "probe.py").write_text(PROBE)
    state, out = run_job(cluster, tmp_path, f"srun {sys.executable} probe.py {first} 29411")
    assert state == "COMPLETED", out
    ifaces = str(sorted(["lo", cluster.ifname]))
    assert f"ffnode1 interfaces {ifaces} accepted {second} saying hello from ffnode2" in out, out
    assert f"ffnode2 interfaces {ifaces} connected from {second}" in out, out
    # nothing of it in the host's namespace: no veth end, no address, no daemon but munged
    host_links = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert cluster.ifname not in host_links and f" {first}/" not in host_links and f" {second}/" not in host_links
    own = os.readlink("/proc/self/ns/net")
    assert [name for name, pid in cluster.pids.items() if os.readlink(f"/proc/{pid}/ns/net") == own] == ["munged"]


def test_torchrun_c10d_rendezvous_and_gloo_allreduce_across_the_nodes(slurm_two_nodes, tmp_path):
    """One torchrun agent per node (srun), c10d rendezvous on node 1's veth address, gloo over the
    veth. The nodes' names resolve nowhere (as on many clusters' private links), so each agent is
    told its own address (``--local-addr``, else MASTER_ADDR is node 1's unresolvable hostname and
    node 2 waits forever), node 1 is told it hosts the rendezvous store (``is_host``: torchrun's
    guess resolves the hostname), and gloo its interface (``GLOO_SOCKET_IFNAME``, else it falls
    back to 127.0.0.1 and the ranks never connect)."""
    cluster = slurm_two_nodes
    first = cluster.addresses[cluster.nodes[0]]
    body = f"""export GLOO_SOCKET_IFNAME={cluster.ifname}
srun sh -c 'addr=$(ip -4 -o addr show dev "$GLOO_SOCKET_IFNAME" | sed "s/.* inet \\([0-9.]*\\).*/\\1/")
host=0; [ "$SLURM_NODEID" = 0 ] && host=1
exec {sys.executable} -m torch.distributed.run --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d \\
  --rdzv-endpoint {first}:29400 --rdzv-id "$SLURM_JOB_ID" --rdzv-conf "is_host=$host,join_timeout=30" \\
  --local-addr "$addr" {ALLREDUCE}'"""
    state, out = run_job(cluster, tmp_path, body, "--time=2", timeout=120)
    assert state == "COMPLETED", out[-3000:]
    assert f"rank 0/2 node ffnode1 sum 3 master {first}:" in out, out[-3000:]
    assert f"rank 1/2 node ffnode2 sum 3 master {first}:" in out, out[-3000:]


def test_a_node_whose_slurmd_dies_goes_down_and_its_job_fails(slurm_two_nodes, tmp_path):
    """slurmd of node 2 killed (SIGKILL, by its pid) under a running two-node job: after about one
    MessageTimeout node 2 no longer responds, after about three it is DOWN and the job ends NODE_FAIL
    (``--no-requeue``; by default SLURM would requeue a batch job instead). The step on node 2
    outlives its slurmd; a restarted slurmd brings the node back to idle (ReturnToService=2) and
    ends that orphaned step within seconds."""
    cluster = slurm_two_nodes
    node = cluster.nodes[1]
    job = submit(cluster, tmp_path, "srun sleep 300", "--no-requeue", "--time=5")
    try:
        deadline = time.monotonic() + 30
        while cluster.run("scontrol", "show", "step", f"{job}.0").returncode != 0:  # the step runs on both
            assert time.monotonic() < deadline, f"job {job} never started its step"
            time.sleep(0.2)
        cluster.kill_slurmd(node)
        start = time.monotonic()
        seen: dict[str, float] = {}
        while time.monotonic() - start < 90:
            now = time.monotonic() - start
            state, job_state = cluster.states()[node], job_field(cluster, job, "JobState")
            if state.endswith("*"):
                seen.setdefault("not responding", now)
            if state.startswith("down"):
                seen.setdefault("down", now)
            if job_state in TERMINAL:
                seen.setdefault(job_state, now)
            if "down" in seen and job_state in TERMINAL:
                break
            time.sleep(0.5)
        print(f"\nslurmd of {node} killed: " + ", ".join(f"{k} after {v:.1f} s" for k, v in seen.items()))
        assert "NODE_FAIL" in seen and "down" in seen, seen
        assert seen["NODE_FAIL"] < 60, seen
    finally:
        cluster.run("scancel", job)
        if f"slurmd-{node}" not in cluster.pids:
            cluster.start_slurmd(node)
        deadline = time.monotonic() + 60
        while (cluster.states()[node] != "idle" or cluster.job_processes(node)) and time.monotonic() < deadline:
            time.sleep(0.3)
    assert cluster.states()[node] == "idle"
    assert cluster.job_processes(node) == [], "the orphaned step of the failed job still runs on node 2"
