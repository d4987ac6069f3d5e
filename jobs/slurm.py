"""SLURM: parts are submitit jobs (``jobs.submitit_chain``) queued with ``sbatch``, watched with
``squeue``/``scontrol`` and cancelled with ``scancel`` (the command layer: ``jobs.slurm_commands``).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from jobs import container
from jobs.profiles import SiteProfile
from jobs.records import OwnerRecord
from jobs.scheduler import Seen, SiteDefaults
from jobs.spec import JobSpec
from jobs.submitit_chain import SubmititParts

NAME = "slurm"
DEFAULT_PROFILE = "generic-slurm"
# The sbatch script's shell ignores SIGTERM: on a plain `scancel` SLURM signals every process of the
# job, and a shell that dies of it ends the job at once, so SLURM SIGKILLs the trainer ~3 s later,
# before its checkpoint, and the part never records its end. Ignoring it (the Python below handles
# its own) leaves the trainer the whole KillWait to checkpoint and jobs.part to record why it
# stopped; SIGKILL still ends everything.
SLURM_SETUP = ["trap '' TERM  # facefill: the part checkpoints and records its end on SIGTERM (jobs/slurm.py)"]
# A part over several nodes (or GPUs) starts one torchrun per node with srun; its c10d rendezvous
# listens on the batch node (the allocation's first) on a port derived from the job id, so two
# multi-node jobs that share a first node do not collide; FACEFILL_RDZV_PORT fixes it instead.
RDZV_PORT_BASE, RDZV_PORT_SPAN = 29400, 1000
GONE = "gone from SLURM (ended longer ago than its MinJobAge, 5 min by default)"


def mem_gb(mem: str) -> float:
    """A PBS-style size (``32gb``, ``500mb``) in GB, as submitit's ``mem_gb`` takes it."""
    units = {"kb": 1 / 1024**2, "mb": 1 / 1024, "gb": 1, "tb": 1024, "b": 1 / 1024**3}
    text = mem.lower()
    for unit, factor in units.items():
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * factor, 3)
    return float(text)


def rendezvous_port(job_id: str) -> int:
    """The c10d rendezvous port of job ``job_id``: ``$FACEFILL_RDZV_PORT``, else derived from its id."""
    fixed = os.environ.get("FACEFILL_RDZV_PORT")
    if fixed:
        return int(fixed)
    return RDZV_PORT_BASE + int(re.sub(r"\D", "", job_id) or 0) % RDZV_PORT_SPAN


def distributed(spec: JobSpec) -> bool:
    """Whether a training part runs several processes (several nodes, or several GPUs on one)."""
    return spec.nodes > 1 or spec.ngpus > 1


def torchrun_command(spec: JobSpec, module_argv: list[str], job_id: str) -> tuple[list[str], dict[str, str]]:
    """(command, extra environment) of a part over ``spec.nodes`` nodes x ``max(ngpus, 1)``
    processes: on one node, torchrun ``--standalone``; over several, srun starts one
    ``jobs.node_launch`` per node (which adds what only the node knows and execs torchrun, in the
    image if any), rendezvous on the batch node. ``--kill-on-bad-exit``: a rank that dies ends
    every node's launcher at once, rather than leaving the others waiting in a collective until
    the process group's timeout."""
    from jobs.node_launch import rendezvous_host

    nproc = max(spec.ngpus, 1)
    torchrun = [
        spec.python,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(spec.nodes),
        "--nproc-per-node",
        str(nproc),
        "--max-restarts",
        "0",
    ]
    # each rank's share of the node's cores (torchrun itself says 1 whenever it starts several)
    threads = {} if "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": str(max(1, spec.ncpus // nproc))}
    if spec.nodes == 1:
        cmd, env = container.wrap(spec, [*torchrun, "--standalone", "-m", *module_argv])
        return cmd, {**threads, **env}
    ifname = spec.profile.network_interface if spec.profile else None
    endpoint = f"{rendezvous_host(ifname)}:{rendezvous_port(job_id)}"
    inner, env = container.wrap(
        spec, [*torchrun, "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", job_id, "-m", *module_argv]
    )
    env = {**threads, **env}
    srun = [
        "srun",
        f"--nodes={spec.nodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={spec.ncpus}",
        *([f"--gpus-per-node={spec.ngpus}"] if spec.ngpus else []),
        "--kill-on-bad-exit=1",
    ]
    return [*srun, sys.executable, "-m", "jobs.node_launch", *(["--interface", ifname] if ifname else []), "--", *inner], env


class SLURM(SubmititParts):
    name = NAME
    submit_command = "sbatch"
    queued = True
    runs_here = False
    presubmits_chain = False  # each part submits its successor
    multi_node = True
    container_by_default = False
    checks_container_here = True
    tracks_ended_jobs = True

    def chosen_by_default(self) -> bool:
        return False  # --executor slurm is always asked for

    def profile(self, name: str | None) -> SiteProfile:
        from jobs.profiles import load_profile_for

        return load_profile_for(self.name, name or DEFAULT_PROFILE)

    def defaults(self, profile: SiteProfile | None) -> SiteDefaults:
        from jobs.profiles import site_defaults

        return site_defaults(profile if profile is not None else self.profile(None))

    def submitit_parameters(self, spec: JobSpec) -> dict[str, Any]:
        params: dict[str, Any] = dict(
            cpus_per_task=spec.ncpus,
            gpus_per_node=spec.ngpus or None,
            nodes=spec.nodes,
            slurm_use_srun=False,  # a job inside srun cannot sbatch its successor reliably
            slurm_setup=list(SLURM_SETUP),
        )
        if spec.nodes > 1:
            # a failed node ends the job (NODE_FAIL) instead of SLURM rerunning it under the same id
            # later: the batch node, still alive, records why and the chain resubmits once
            # (jobs.slurm_commands.ending_cause); one node's job keeps SLURM's requeue, as there
            # the failed node is the batch node and nothing could record the end
            params["slurm_additional_parameters"] = {"no_requeue": True}
        if spec.queue:
            params["slurm_partition"] = spec.queue
        if spec.mem:
            params["mem_gb"] = mem_gb(spec.mem)
        return {k: v for k, v in params.items() if v is not None}

    def launch(self, spec: JobSpec, module_argv: list[str], job_id: str, kind: str) -> tuple[list[str], dict[str, str]]:
        from jobs.part import TRAIN

        if kind == TRAIN and distributed(spec):
            return torchrun_command(spec, module_argv, job_id)
        return super().launch(spec, module_argv, job_id, kind)

    def part_hosts(self) -> str | None:
        """Every node of the job (``SLURM_JOB_NODELIST``, expanded), when it has several."""
        from jobs.slurm_commands import hostnames

        nodelist = os.environ.get("SLURM_JOB_NODELIST", "")
        nodes = hostnames(nodelist) if nodelist else []
        return ",".join(nodes) if len(nodes) > 1 else None

    def announce(self, spec: JobSpec, ids: list[str]) -> str:
        return (
            f"[facefill] {spec.executor} chain for {spec.run_dir}: part 1 is job {ids[0]} "
            f"(parts of {spec.walltime}, trainer --time-limit {spec.time_limit_s}s, max {spec.max_resubmits} "
            f"resubmits)\nstatus: python -m jobs.status {spec.run_dir}"
        )

    def states(self, ids: list[str]) -> tuple[dict[str, Seen], str | None]:
        """``squeue``, then ``scontrol show job`` (which keeps ended jobs for ``MinJobAge``)."""
        from jobs.slurm_commands import SlurmQueryError, job_state

        seen: dict[str, Seen] = {}
        try:
            for job_id in ids:
                job = job_state(job_id)
                seen[job_id] = Seen(GONE, True) if job is None else Seen(job.describe(), job.ended)
        except SlurmQueryError as exc:
            return {}, f"SLURM did not answer ({exc}); job states unknown, jobs are NOT presumed lost"
        return seen, None

    def is_alive(self, owner: OwnerRecord) -> tuple[bool, str]:
        from jobs.slurm_commands import SlurmQueryError, job_state

        job_id = owner.job_id
        try:
            job = job_state(job_id)
        except SlurmQueryError as exc:
            return True, f"SLURM job {job_id} (SLURM could not answer: {exc})"
        if job is None or job.ended:
            return False, f"SLURM job {job_id}"
        return True, f"SLURM job {job_id} ({job.describe()})"

    def owner_pid(self, job_id: str) -> int | None:
        return None

    def ending_cause(self, job_id: str) -> tuple[str, str] | None:
        from jobs.slurm_commands import ending_cause

        return ending_cause(job_id)

    def cancel(self, owner: OwnerRecord | None, ids: list[str]) -> list[str]:
        from jobs.slurm_commands import scancel

        cancelled, err = scancel(ids)
        if err:
            print(f"scancel: {err}")
        return cancelled


SCHEDULER = SLURM()
