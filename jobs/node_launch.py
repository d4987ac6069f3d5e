"""One node's start of a multi-node part: ``srun`` runs this once per node, it execs the torchrun
command it is given with what only the node itself knows.

    python3 -m jobs.node_launch [--interface IF] -- <torchrun command, in the image if any>

Standard library only (it runs on the node's plain ``python3``, outside any image). What it adds,
as torchrun's own ``PET_*`` environment variables (so the command stays the same on every node
and the image's torchrun reads them), and why:

- ``PET_RDZV_CONF=is_host=1`` on the first node of the allocation (``SLURM_NODEID`` 0, the batch
  node, where the rendezvous endpoint is), 0 elsewhere: torchrun's own guess resolves the node's
  name, which on a private network without DNS resolves nowhere and crashes it;
- ``PET_LOCAL_ADDR``: this node's address on ``--interface``, or torchrun hands the workers an
  unresolvable ``MASTER_ADDR`` and they wait forever;
- ``GLOO_SOCKET_IFNAME``/``NCCL_SOCKET_IFNAME``: the same interface for the collectives (gloo
  otherwise falls back to 127.0.0.1 and never connects).

SIGUSR2 (the scheduler's walltime warning, sent to every process of the step) is ignored before
the exec: torchrun has no handler for it and would die of it before its trainer checkpoints; the
trainer installs its own handler, so it still hears the warning.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import struct
import sys
from collections.abc import Mapping, Sequence

from inpaint.core.errors import ConfigError

SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address
IFNAME_ENV = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")


def interface_address(ifname: str) -> str:
    """The IPv4 address of ``ifname`` on this node; a one-line error naming the profile key when
    the node has no such interface (or it has no address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
        except OSError as exc:
            names = ", ".join(name for _, name in socket.if_nameindex())
            raise ConfigError(
                f"network_interface {ifname!r} of the site profile: no IPv4 address on "
                f"{socket.gethostname()} ({exc.strerror}); this node has: {names}"
            ) from None
    return socket.inet_ntoa(packed[20:24])


def rendezvous_host(ifname: str | None) -> str:
    """Where the other nodes reach this one (the batch node, which hosts the rendezvous): its
    address on the private network when one is named, else its host name."""
    return interface_address(ifname) if ifname else socket.gethostname()


def node_environment(environ: Mapping[str, str], ifname: str | None) -> dict[str, str]:
    """The variables this node adds to the torchrun command's environment."""
    first = environ.get("SLURM_NODEID", "0") == "0"
    env = {"PET_RDZV_CONF": f"is_host={1 if first else 0}"}
    if ifname:
        env["PET_LOCAL_ADDR"] = interface_address(ifname)
        env.update({name: ifname for name in IFNAME_ENV})
    return env


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m jobs.node_launch", description=__doc__.splitlines()[0])
    p.add_argument("--interface", help="the nodes' private-network interface (profile: network_interface)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the torchrun command")
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("give the command to run after --")
    try:
        env = {**os.environ, **node_environment(os.environ, a.interface)}
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # kept across exec: see the module docstring
    os.execvpe(command[0], command, env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
