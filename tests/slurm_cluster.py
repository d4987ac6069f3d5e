"""A real one-node SLURM cluster on loopback for the tests (pytest plugin: fixture ``slurm_cluster``).

Why a real one: stubs cannot show what SLURM itself does (which states ``squeue`` and ``scontrol``
report, what ``scancel`` kills, how ``sbatch`` refuses a job). Debian's ``slurmctld slurmd
slurm-client munge`` start in seconds as root. Everything lives in a private temporary folder
(config, state, spool, logs, munge socket) on free ports bound to 127.0.0.1 only, so two test
sessions never share a cluster and nothing is reachable from outside; every daemon is stopped by
its pid at the end. Without root the tests skip with that reason; in CI (``CI=true``) they must
run, so an unavailable cluster is a failure there.

Clients find the cluster through ``SLURM_CONF``: pass ``cluster.env`` to subprocesses, or
``monkeypatch.setenv("SLURM_CONF", cluster.conf)`` for in-process calls.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
NODE = "facefill1"
PARTITION = "debug"
SBIN = "/usr/sbin"
START_TIMEOUT_S = 60


class ClusterUnavailable(Exception):
    """The cluster cannot start here; the message says why (skip, or fail in CI)."""


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    partition: str = PARTITION
    node: str = NODE
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """This process's environment pointed at the cluster (for subprocesses)."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), SBIN])
        return env

    def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout)

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.is_file() else ""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SBIN)


def _missing_programs() -> list[str]:
    return [p for p in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel") if not _which(p)]


def ensure_packages() -> None:
    """Install the Debian packages when they are missing (as root, quietly)."""
    if not _missing_programs():
        return
    if not shutil.which("apt-get"):
        raise ClusterUnavailable(f"SLURM programs missing ({', '.join(_missing_programs())}) and no apt-get to install "
                                 f"{' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *PACKAGES]
    out = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:  # a fresh image has no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, env=env, timeout=900)
        out = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0 or _missing_programs():
        tail = " ".join((out.stderr or out.stdout).split())[-300:]
        raise ClusterUnavailable(f"`{' '.join(install)}` failed (exit {out.returncode}): {tail}")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _mem_mb() -> int:
    text = Path("/proc/meminfo").read_text()
    return int(re.search(r"MemTotal:\s+(\d+)", text).group(1)) // 1024


def base_settings(root: Path, munge_socket: Path) -> dict[str, str]:
    """The slurm.conf settings every test cluster shares (no accounting, quick kills, root daemons
    writing into ``root``); a cluster adds its hosts, ports and nodes, or overrides one."""
    return {
        "ClusterName": "facefilltest",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={munge_socket},cred_expire=10",
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "StateSaveLocation": f"{root}/state",
        "SlurmdSpoolDir": f"{root}/spool",
        "SlurmctldPidFile": f"{root}/run/slurmctld.pid",
        "SlurmdPidFile": f"{root}/run/slurmd.pid",
        "SlurmctldLogFile": f"{root}/log/slurmctld.log",
        "SlurmdLogFile": f"{root}/log/slurmd.log",
        "SlurmctldDebug": "info",
        "SlurmdDebug": "info",
        "ProctrackType": "proctrack/pgid",
        "TaskPlugin": "task/none",
        "MpiDefault": "none",
        "SwitchType": "switch/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "JobCompType": "jobcomp/none",
        "SchedulerType": "sched/builtin",
        "SchedulerParameters": "sched_interval=2",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_CPU",
        "SlurmdParameters": "config_overrides",
        "ReturnToService": "2",
        "KillWait": "15",
        "MinJobAge": "300",
        "InactiveLimit": "0",
    }


def conf_text(settings: dict[str, str], *lines: str) -> str:
    """``Key=value`` lines in order, then the node and partition ``lines``."""
    return "".join(f"{key}={value}\n" for key, value in settings.items()) + "".join(f"{line}\n" for line in lines)


def slurm_conf(root: Path, ports: list[int], munge_socket: Path) -> str:
    """slurm.conf of a loopback-only cluster tuned for fast tests (no accounting, quick kills)."""
    settings = {
        "SlurmctldHost": "localhost(127.0.0.1)",
        "SlurmctldPort": str(ports[0]),
        "SlurmdPort": str(ports[1]),
        "CommunicationParameters": "NoCtldInAddrAny,NoInAddrAny",
        **base_settings(root, munge_socket),
        "GresTypes": "gpu",
    }
    return conf_text(
        settings,
        f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=32 RealMemory={max(1024, _mem_mb() // 2)} "
        "Gres=gpu:1 State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP")


def start_daemon(cluster: SlurmCluster, name: str, cmd: list[str], **kwargs) -> None:
    log = open(cluster.root / "log" / f"{name}.out", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=cluster.env,
                            start_new_session=True, **kwargs)
    log.close()
    cluster.pids[name] = proc.pid


def wait_for(what: str, ready, cluster: SlurmCluster, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        for name, pid in cluster.pids.items():
            if not alive(pid):
                raise ClusterUnavailable(f"{name} exited while waiting for {what}: "
                                         f"{(cluster.log(name) + _read(cluster.root / 'log' / f'{name}.out'))[-600:]}")
        if time.monotonic() > deadline:
            raise ClusterUnavailable(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap our own child if it has exited
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _hex_address(text: str) -> str:
    """``0100007F:1A85`` (from /proc/net/tcp) → ``127.0.0.1:6789``; IPv6 in brackets."""
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        addr = "[" + socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))) + "]"
    return f"{addr}:{int(port, 16)}"


def listening_addresses(pids: set[int]) -> list[str]:
    """Every ``address:port`` a process in ``pids`` listens on (TCP) or is bound to (UDP), read
    from /proc as ``ss -ltunp`` would show it (no iproute2 needed), each in the process's own
    network namespace (``/proc/<pid>/net``)."""
    found: dict[str, None] = {}
    for pid in sorted(pids):
        inodes: set[str] = set()
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
        for table, listen_only in (("tcp", True), ("tcp6", True), ("udp", False), ("udp6", False)):
            try:
                rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                if cols[9] in inodes and (not listen_only or cols[3] == "0A"):  # 0A: LISTEN
                    found[_hex_address(cols[1])] = None
    return list(found)


def munge_user() -> pwd.struct_passwd:
    """The ``munge`` account munged runs as (root only: checked first, nothing written before)."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("starting a SLURM cluster needs root (munged runs as user munge, slurmd as root)")
    ensure_packages()
    try:
        return pwd.getpwnam("munge")
    except KeyError:
        raise ClusterUnavailable("no `munge` user: the munge package is not installed properly") from None


def prepare_root(root: Path) -> Path:
    """The cluster's folders in ``root``; returns the path its munge socket will have."""
    user = munge_user()
    for sub in ("state", "spool", "run", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    munge_dir = root / "munge"
    munge_dir.mkdir(mode=0o755)
    os.chown(munge_dir, user.pw_uid, user.pw_gid)
    Path("/run/munge").mkdir(mode=0o755, exist_ok=True)  # munged's default home for its pid and seed
    return munge_dir / "munge.socket"


def start_munged(cluster: SlurmCluster, munge_socket: Path) -> None:
    """munged as user munge on a unix socket in the cluster's folder (its own fresh key); returns
    once the socket exists. It binds no network address: every daemon and client reaches it by path."""
    user = munge_user()
    munge_dir = munge_socket.parent
    start_daemon(cluster, "munged", [_which("munged"), "--foreground", f"--socket={munge_socket}",
                                     f"--log-file={munge_dir}/munged.log", f"--pid-file={munge_dir}/munged.pid",
                                     f"--seed-file={munge_dir}/munged.seed"],
                 user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    wait_for("the munge socket", munge_socket.exists, cluster)


def node_state(cluster: SlurmCluster, node: str) -> str:
    """``sinfo``'s state of ``node`` (``idle``, ``down``, ...; ``*`` when not responding), or ``""``."""
    out = cluster.run("sinfo", "-h", "-n", node, "-o", "%T", timeout=20)
    return out.stdout.strip() if out.returncode == 0 else ""


def start_cluster(root: Path) -> SlurmCluster:
    """Start munged, slurmctld and slurmd in ``root``; return once the node is idle."""
    munge_socket = prepare_root(root)
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, _free_ports(2), munge_socket))
    (root / "gres.conf").write_text(f"NodeName={NODE} Name=gpu File=/dev/null\n")  # a fake GPU
    cluster = SlurmCluster(root=root, conf=conf)
    try:
        start_munged(cluster, munge_socket)
        start_daemon(cluster, "slurmctld", [_which("slurmctld"), "-D", "-f", str(conf)])
        start_daemon(cluster, "slurmd", [_which("slurmd"), "-D", "-f", str(conf), "-N", NODE])
        wait_for(f"node {NODE} to be idle", lambda: node_state(cluster, NODE).rstrip("*") == "idle", cluster)
        outside = [a for a in listening_addresses(set(cluster.pids.values()))
                   if not a.startswith(("127.0.0.1:", "[::1]:"))]
        if outside:
            raise ClusterUnavailable(f"the cluster listens beyond loopback ({', '.join(outside)}); check slurm.conf")
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def _our_processes(conf: Path) -> list[int]:
    """Processes started for this cluster (job steps, jobs): their environment names its config."""
    marker = f"SLURM_CONF={conf}".encode()
    mine = {os.getpid(), os.getppid()}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def terminate(pids: list[int], timeout: float = 10) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            alive(pid)


def stop_cluster(cluster: SlurmCluster) -> None:
    """Cancel every job, then stop each daemon (slurmd, slurmctld, munged) and any straggler by pid."""
    if cluster.pids.get("slurmctld") and alive(cluster.pids["slurmctld"]):
        cluster.run("scancel", "--user", "root", timeout=20)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            out = cluster.run("squeue", "-h", "-o", "%i", timeout=20)
            if out.returncode != 0 or not out.stdout.strip():
                break
            time.sleep(0.3)
    for name in [n for n in cluster.pids if n.startswith("slurmd")] + ["slurmctld"]:  # every node's slurmd
        if name in cluster.pids:
            terminate([cluster.pids[name]])
    terminate([p for p in _our_processes(cluster.conf) if p != cluster.pids.get("munged")])
    if "munged" in cluster.pids:
        terminate([cluster.pids["munged"]])


def serve_cluster(prefix: str, start: Callable[[Path], SlurmCluster],
                  stop: Callable[[SlurmCluster], None]) -> Iterator[SlurmCluster]:
    """Body of a session fixture: ``start(root)`` in a fresh private folder, yield the cluster, then
    ``stop`` it and remove the folder; skips with the reason where it cannot start (fails in CI)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # munged (user munge) must reach its socket folder inside
    try:
        cluster = start(root)
    except ClusterUnavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        if in_ci():
            pytest.fail(f"CI must run the SLURM tests: {exc}")
        pytest.skip(f"no SLURM cluster: {exc}")
    try:
        yield cluster
    finally:
        stop(cluster)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A started cluster for the session; skips with the reason where it cannot start (fails in CI)."""
    yield from serve_cluster("facefill-slurm-", start_cluster, stop_cluster)
