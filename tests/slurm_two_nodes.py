"""A real two-node SLURM cluster in network namespaces (pytest plugin: fixture ``slurm_two_nodes``).

The one-node cluster of ``slurm_cluster.py`` cannot show what only several nodes show: a job
spread over two hosts, steps launched on the other host, ranks finding each other over a real
link, a node that dies under a running job. Here each node is a Linux network namespace that
the fixture creates (``ip netns add``), and the two are joined by one veth pair whose two ends
carry the only addresses of the cluster::

    netns ff2n<pid>-<n>-1   node ffnode1   ffveth 10.241.0.1/30   slurmctld, slurmd -N ffnode1
    netns ff2n<pid>-<n>-2   node ffnode2   ffveth 10.241.0.2/30   slurmd -N ffnode2

Both ends of the pair are created directly inside the namespaces, so the host namespace never
sees an interface, an address or a route of the cluster; the daemons bind any address *inside*
their namespace (that is loopback and the veth end, nothing else), on the standard ports, which
are private to each namespace. Each daemon also gets its own UTS namespace named after its node,
so ``hostname`` in a job step prints the node's name (slurmd is told which node it is with
``-N``). One munged, started in the host namespace exactly as for the one-node cluster, serves
every daemon and client: its socket is a unix socket reached by path, which network namespaces
do not isolate. The interface has the same name (``ffveth``, :data:`IFNAME`) in both nodes, so one
``GLOO_SOCKET_IFNAME`` serves every rank.

Clients. A process in the host namespace cannot reach 10.241.0.1 (and must not try: its default
route would send the packets out of the machine). Rather than a third veth pair giving the host
an address and a route (which would touch the host namespace, and collide between two test
sessions running at once), the cluster ships wrapper scripts named ``sbatch``, ``srun``,
``squeue``, ``scancel``, ``scontrol``, ``sinfo``, ``salloc`` and ``sacct`` in ``<root>/bin``; each runs
the real client inside node 1's namespace (``nsenter --net``) unless it already runs there.
``cluster.env`` puts that folder first on ``PATH`` and sets ``SLURM_CONF``, so code under test
that calls a plain ``sbatch`` or ``squeue`` from ``PATH`` (as ``jobs.submit`` does) reaches the
controller unchanged, and an ``srun`` started from the host runs on node 1's side of the link,
where the steps on both nodes can connect back to it. ``cluster.client_cmd([...])`` gives the
same prefix for any other command.

Choices forced by SLURM 22.05 here: the namespaces are entered with ``nsenter --net`` only, not
``ip netns exec``, which also remounts /sys privately and so hides /sys/fs/cgroup, without which
slurmd refuses to start; no ``NoInAddrAny``, since srun would then bind to the address of its
host's name, and the nodes' names resolve nowhere (as on clusters whose private link has no DNS:
whatever needs an address, torchrun's rendezvous for one, must be given it); KillWait is 5 s and a
node that stops answering is DOWN after about three MessageTimeouts (5 s each), to keep the tests
short; cgroups are not available, so processes are tracked with proctrack/linuxproc.

Teardown, also after a failed test or a failed start: jobs cancelled, each daemon stopped by its
pid, every process still in a namespace (job steps) stopped by its pid, then both namespaces
deleted, which deletes the veth pair with them. Namespaces left by a session that died (their
name carries its pid) are removed at the next start. Without root the tests skip with that
reason; in CI (``CI=true``) they must run, so an unavailable cluster is a failure there.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from slurm_cluster import (ClusterUnavailable, SlurmCluster, alive, base_settings, conf_text, listening_addresses,
                           node_state, prepare_root, serve_cluster, start_daemon, start_munged, stop_cluster, terminate,
                           wait_for, _which)

NODES = ("ffnode1", "ffnode2")
IFNAME = "ffveth"  # the veth end's name in every node's namespace
SUBNET = "10.241.0"  # a /30 that exists only inside the namespaces: .1 is node 1, .2 node 2
CTLD_PORT = 6817  # SLURM's standard ports: each namespace has its own
SLURMD_PORT = 6818
PARTITION = "two"
SLURMD_TIMEOUT_S = 5  # a node that stops answering is marked down after this (kept low for the tests)
MESSAGE_TIMEOUT_S = 5  # how long one message may take (default 10): a dead node is noticed in ~15 s, not ~25
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo", "salloc", "sacct")
NS_PREFIX = "ff2n"  # namespaces are named ff2n<pid>-<cluster>-<node>
_clusters = itertools.count(1)
WRAPPER = """#!/bin/sh
# {name} of the two-node test cluster: run inside node 1's network namespace, where slurmctld is.
[ "$(ip netns identify 2>/dev/null)" = "{ns}" ] || exec nsenter --net=/run/netns/{ns} {real} "$@"
exec {real} "$@"
"""


@dataclass
class TwoNodeCluster(SlurmCluster):
    nodes: tuple[str, ...] = NODES
    namespaces: dict[str, str] = field(default_factory=dict)  # node -> network namespace
    addresses: dict[str, str] = field(default_factory=dict)  # node -> its veth address
    ifname: str = IFNAME

    @property
    def env(self) -> dict[str, str]:
        """``SLURM_CONF`` and the client wrappers first on ``PATH`` (for subprocesses)."""
        env = super().env
        env["PATH"] = os.pathsep.join([str(self.root / "bin"), env["PATH"]])
        return env

    def client_cmd(self, cmd: list[str]) -> list[str]:
        """``cmd`` run in node 1's network namespace (where the controller is reachable)."""
        return ["nsenter", f"--net=/run/netns/{self.namespaces[self.nodes[0]]}", *cmd]

    def node_cmd(self, node: str, cmd: list[str]) -> list[str]:
        """``cmd`` run as on ``node``: in its network namespace and a UTS namespace named after it
        (the same pid all along: each wrapper execs the next)."""
        return ["nsenter", f"--net=/run/netns/{self.namespaces[node]}", "unshare", "--uts", "--",
                "sh", "-c", 'hostname "$0" && exec "$@"', node, *cmd]

    def start_slurmd(self, node: str) -> None:
        start_daemon(self, f"slurmd-{node}", self.node_cmd(node, [_which("slurmd"), "-D", "-f", str(self.conf), "-N", node]))

    def kill_slurmd(self, node: str, sig: int = signal.SIGKILL) -> None:
        """Kill ``node``'s slurmd by its pid (its job steps live on, as on a real node)."""
        pid = self.pids.pop(f"slurmd-{node}")
        os.kill(pid, sig)
        while alive(pid):
            time.sleep(0.05)

    def job_processes(self, node: str) -> list[int]:
        """Pids in ``node``'s namespace other than its daemons: job steps and their tasks."""
        return sorted(set(_ns_pids(self.namespaces[node])) - set(self.pids.values()))

    def states(self) -> dict[str, str]:
        """``{node: sinfo state}`` (``*`` appended while a node does not respond)."""
        return {node: node_state(self, node) for node in self.nodes}


def two_node_conf(cluster: TwoNodeCluster, munge_socket: Path) -> str:
    root = cluster.root
    first = cluster.nodes[0]
    settings = {
        "SlurmctldHost": f"{first}({cluster.addresses[first]})",
        "SlurmctldPort": str(CTLD_PORT),
        "SlurmdPort": str(SLURMD_PORT),
        **base_settings(root, munge_socket),
        "SlurmdSpoolDir": f"{root}/spool/%n",  # one per node: both share this file system
        "SlurmdPidFile": f"{root}/run/slurmd-%n.pid",
        "SlurmdLogFile": f"{root}/log/slurmd-%n.log",
        "ProctrackType": "proctrack/linuxproc",  # no cgroups here
        "SlurmdTimeout": str(SLURMD_TIMEOUT_S),
        "MessageTimeout": str(MESSAGE_TIMEOUT_S),
        "KillWait": "5",
    }
    nodes = [f"NodeName={node} NodeAddr={cluster.addresses[node]} NodeHostname={node} CPUs=1 RealMemory=500 State=UNKNOWN"
             for node in cluster.nodes]
    return conf_text(settings, *nodes,
                     f"PartitionName={PARTITION} Nodes={','.join(cluster.nodes)} Default=YES MaxTime=INFINITE State=UP")


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise ClusterUnavailable(f"`ip {' '.join(args)}` failed: {out.stderr.strip()}")


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def _ns_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30)
    return [int(p) for p in out.stdout.split()]


def delete_namespace(ns: str) -> None:
    """Stop every process left in ``ns`` by its pid, then delete it (and so its veth end)."""
    if ns not in _namespaces():
        return
    terminate(_ns_pids(ns), timeout=5)
    subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)


def _remove_stale_namespaces() -> None:
    """Namespaces of an earlier session that died without its teardown (its pid is in their name)."""
    for ns in _namespaces():
        m = re.fullmatch(rf"{NS_PREFIX}(\d+)-\d+-\d+", ns)
        if m and int(m.group(1)) != os.getpid() and not alive(int(m.group(1))):
            delete_namespace(ns)


def _make_network(cluster: TwoNodeCluster) -> None:
    """Two namespaces joined by a veth pair created inside them; only ``lo`` and ``ffveth`` there."""
    _remove_stale_namespaces()
    serial = next(_clusters)
    for i, node in enumerate(cluster.nodes, start=1):
        ns = f"{NS_PREFIX}{os.getpid()}-{serial}-{i}"
        _ip("netns", "add", ns)
        cluster.namespaces[node] = ns  # recorded at once: deleted at teardown whatever fails next
        cluster.addresses[node] = f"{SUBNET}.{i}"
    (a, b) = (cluster.namespaces[n] for n in cluster.nodes)
    _ip("link", "add", IFNAME, "netns", a, "type", "veth", "peer", "name", IFNAME, "netns", b)
    for node in cluster.nodes:
        ns = cluster.namespaces[node]
        _ip("-n", ns, "addr", "add", f"{cluster.addresses[node]}/30", "dev", IFNAME)
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", IFNAME, "up")


def _write_wrappers(cluster: TwoNodeCluster) -> None:
    bindir = cluster.root / "bin"
    bindir.mkdir()
    for name in CLIENTS:
        real = _which(name)
        if real:
            path = bindir / name
            path.write_text(WRAPPER.format(name=name, ns=cluster.namespaces[cluster.nodes[0]], real=real))
            path.chmod(0o755)


def _netns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


def _check_isolated(cluster: TwoNodeCluster) -> None:
    """Nothing of the cluster listens in the host's network namespace: only munged lives there
    (on a unix socket), every SLURM daemon is inside a node's namespace."""
    host = _netns(os.getpid())
    in_host = {pid for pid in cluster.pids.values() if _netns(pid) == host}
    if in_host - {cluster.pids["munged"]}:
        raise ClusterUnavailable(f"daemons in the host network namespace: {sorted(in_host)}")
    bound = listening_addresses(in_host)
    if bound:
        raise ClusterUnavailable(f"the cluster listens in the host network namespace ({', '.join(bound)})")


def start_two_nodes(root: Path) -> TwoNodeCluster:
    """Create the namespaces and the link, start munged, slurmctld and both slurmds; return once
    both nodes are idle."""
    munge_socket = prepare_root(root)  # root only: checked before anything is created
    for tool in ("ip", "nsenter", "unshare"):
        if not shutil.which(tool):
            raise ClusterUnavailable(f"no `{tool}` here: the two-node cluster needs iproute2 and util-linux")
    cluster = TwoNodeCluster(root=root, conf=root / "slurm.conf", partition=PARTITION, node=NODES[0])
    try:
        _make_network(cluster)
        cluster.conf.write_text(two_node_conf(cluster, munge_socket))
        for node in cluster.nodes:
            (root / "spool" / node).mkdir()
        _write_wrappers(cluster)
        start_munged(cluster, munge_socket)
        start_daemon(cluster, "slurmctld", cluster.node_cmd(cluster.nodes[0], [_which("slurmctld"), "-D", "-f", str(cluster.conf)]))
        wait_for("slurmctld to listen", lambda: any(
            a.endswith(f":{CTLD_PORT}") for a in listening_addresses({cluster.pids["slurmctld"]})), cluster)
        for node in cluster.nodes:
            cluster.start_slurmd(node)
        wait_for("both nodes to be idle", lambda: all(s == "idle" for s in cluster.states().values()), cluster)
        _check_isolated(cluster)
    except BaseException:
        stop_two_nodes(cluster)
        raise
    return cluster


def stop_two_nodes(cluster: TwoNodeCluster) -> None:
    """Stop the cluster by pid (as the one-node one), then whatever still runs in a namespace,
    then delete the namespaces and with them the veth pair."""
    try:
        if cluster.namespaces:
            stop_cluster(cluster)
        elif "munged" in cluster.pids:
            terminate([cluster.pids["munged"]])
    finally:
        for ns in cluster.namespaces.values():
            delete_namespace(ns)


@pytest.fixture(scope="session")
def slurm_two_nodes() -> Iterator[TwoNodeCluster]:
    """A started two-node cluster for the session; skips with the reason where it cannot start
    (fails in CI)."""
    yield from serve_cluster("facefill-slurm2-", start_two_nodes, stop_two_nodes)
