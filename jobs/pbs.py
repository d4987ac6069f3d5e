"""PBS Pro / OpenPBS: everything the job layer and the submitit plugin (``jobs.submitit_pbs``) do
differently on PBS, in one place.

The chain's parts are one rendered script (``jobs.pbs_script``) submitted with ``qsub`` — the
first ones by ``jobs.submit``, each successor by ``python3 -m jobs.part end`` inside the part
before it; ``jobs.pbs_commands`` is the layer that runs ``qsub``/``qstat``/``qdel`` and reads
their answers. The plugin uses the same select chunk, job name, job-id parsing and commands.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from inpaint.core.atomic import atomic_open
from inpaint.core.errors import ConfigError
from jobs import pbs_commands
from jobs.paths import LOGS_DIR, PBS_SCRIPT, under
from jobs.pbs_commands import (
    JOB_ID_RE,
    SIGNAL_EXIT_BASE,
    WALLTIME_EXIT,
    JobState,
    QstatError,
    QsubError,
    describe_exit,
    job_states,
    parse_job_id,
    parse_qstat_json,
)
from jobs.profiles import SiteProfile
from jobs.records import OwnerRecord
from jobs.scheduler import Seen, SiteDefaults, job_name
from jobs.spec import JobSpec
from jobs.walltime import format_walltime

__all__ = [
    "JOB_ID_RE",
    "SIGNAL_EXIT_BASE",
    "WALLTIME_EXIT",
    "JobState",
    "QstatError",
    "QsubError",
    "SCHEDULER",
    "describe_exit",
    "job_name",
    "job_states",
    "parse_job_id",
    "parse_qstat_json",
    "qdel",
    "qsub",
    "select_chunk",
]

NAME = "pbs"
WORDS = {"Q": "queued", "H": "held", "R": "running", "E": "exiting", "W": "waiting"}
PATH_UNSAFE = r"[\s:'\"\\]"  # what PBS's "-o PATH" directive cannot take (qsub refuses it)
# A part's qsub of its successor is retried on a busy server: waits between the tries, in seconds
# (FACEFILL_QSUB_RETRY_DELAYS="0,0" in tests, where nothing is busy).
RETRY_DELAYS_S = (10.0, 20.0)
RETRY_DELAYS_ENV = "FACEFILL_QSUB_RETRY_DELAYS"


def qsub(script: Path | str, extra_args: Sequence[str] = ()) -> str:
    """Submit ``script``; its job id (QsubError with qsub's words when refused)."""
    return pbs_commands.qsub(script, extra_args)


def qdel(job_ids: Sequence[str]) -> tuple[list[str], str]:
    """Delete jobs; (ids qdel accepted, its error text)."""
    return pbs_commands.qdel(job_ids)


def select_chunk(
    nodes: int, ncpus: int, ngpus: int = 0, mem: str | None = None, extra: str | None = None, gpu_cap: str | None = None
) -> str:
    """``select=N:ncpus=…[:ngpus=…][:mem=…][:extra][:gpu_cap=…]``."""
    chunk = [str(int(nodes)), f"ncpus={int(ncpus)}"]
    if ngpus:
        chunk.append(f"ngpus={int(ngpus)}")
    if mem:
        chunk.append(f"mem={mem}")
    if extra:
        chunk.append(extra.strip(":"))
    if gpu_cap:
        chunk.append(f"gpu_cap={gpu_cap}")
    return "select=" + ":".join(chunk)


def qsub_args(spec: JobSpec, part: int, kind: str) -> list[str]:
    """``qsub`` arguments of part ``part`` (the first ones and every successor): its number, mode
    and chain, which the script reads as FACEFILL_PART, FACEFILL_MODE and FACEFILL_CHAIN; an
    evaluation gets its own walltime (the command line overrides the script's ``#PBS -l walltime``)."""
    from jobs.part import EVALUATE

    variables = f"FACEFILL_PART={part},FACEFILL_MODE={kind}" + (f",FACEFILL_CHAIN={spec.chain_id}" if spec.chain_id else "")
    args = ["-v", variables]
    if kind == EVALUATE and spec.eval_walltime_s:
        args += ["-l", f"walltime={format_walltime(spec.eval_walltime_s)}"]
    return args


def write_script(spec: JobSpec) -> Path:
    """Save the spec the parts read and render the PBS script beside it (executable)."""
    from jobs.pbs_script import render

    spec.save()
    path = under(spec.run_dir, PBS_SCRIPT)
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(render(spec))
        os.fchmod(f.fileno(), 0o755)
    return path


def _retry_delays() -> tuple[float, ...]:
    text = os.environ.get(RETRY_DELAYS_ENV)
    if not text:
        return RETRY_DELAYS_S
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"{RETRY_DELAYS_ENV}={text!r}: write seconds separated by commas, e.g. 10,20") from None


class PBS:
    name = NAME
    queued = True
    runs_here = False
    presubmits_chain = True
    multi_node = True
    container_by_default = True
    checks_container_here = False  # the script runs the image on the node
    tracks_ended_jobs = True

    def chosen_by_default(self) -> bool:
        return shutil.which("qsub") is not None

    def profile(self, name: str | None) -> SiteProfile:
        from jobs.profiles import default_profile_name, load_profile_for

        return load_profile_for(self.name, name or default_profile_name())

    def defaults(self, profile: SiteProfile | None) -> SiteDefaults:
        from jobs.profiles import site_defaults

        if profile is None or not profile.queues:
            raise ConfigError(f"profile {profile and profile.name}: a PBS profile lists its queues, each with max_walltime")
        return site_defaults(profile)

    def check_run_dir(self, run_dir: str) -> None:
        if re.search(PATH_UNSAFE, run_dir):
            raise ConfigError(f"--run-dir {run_dir!r}: PBS's -o cannot take a path with spaces, quotes or ':'; pick another path")

    def submit(self, spec: JobSpec) -> list[str]:
        """qsub the first part (or the K parts of ``--chain K``); nothing stays queued on error."""
        from jobs.part import TRAIN

        script = write_script(spec)
        (Path(spec.run_dir) / LOGS_DIR).mkdir(parents=True, exist_ok=True)
        ids: list[str] = []
        try:
            for part in range(1, max(spec.chain, 1) + 1):
                extra = qsub_args(spec, part, TRAIN)
                if ids:
                    extra = ["-W", f"depend=afterany:{ids[-1]}", *extra]
                ids.append(qsub(script, extra))
        except QsubError:
            if ids:
                qdel(list(reversed(ids)))
            raise
        return ids

    def submit_successor(self, spec: JobSpec, part: int, kind: str) -> str:
        """qsub the chain's script again for part ``part``, retrying a busy server."""
        script = under(spec.run_dir, PBS_SCRIPT)
        delays = _retry_delays()
        for attempt in range(len(delays) + 1):
            try:
                return qsub(script, qsub_args(spec, part, kind))
            except QsubError as exc:
                if attempt == len(delays):
                    raise QsubError(exc.said) from None  # the chain's reason quotes qsub, not the script path
                print(f"[facefill] qsub failed (try {attempt + 1}): {exc}", file=sys.stderr, flush=True)
                time.sleep(delays[attempt])
        raise AssertionError("unreachable")

    def announce(self, spec: JobSpec, ids: list[str]) -> str:
        held = f" (+{len(ids) - 1} held: {' '.join(ids[1:])})" if len(ids) > 1 else ""
        return f"submitted {ids[0]}{held}\nrun dir: {spec.run_dir}   status: python -m jobs.status {spec.run_dir}"

    def preview(self, spec: JobSpec) -> str:
        from jobs.pbs_script import render

        return render(spec)

    def states(self, ids: list[str]) -> tuple[dict[str, Seen], str | None]:
        """One batched ``qstat -x -f -F json`` (finished jobs included)."""
        try:
            found = job_states(ids)
        except QstatError as exc:
            return {}, f"qstat did not answer ({exc}); job states unknown, jobs are NOT presumed lost"
        seen: dict[str, Seen] = {}
        for job_id in ids:
            st = found.get(job_id)
            if st is None:
                seen[job_id] = Seen("gone from PBS history", True)
                continue
            detail = {
                "state": st.state,
                "exit_status": st.exit_status,
                "walltime_used": st.walltime_used,
                "walltime_limit": st.walltime_limit,
            }
            if st.finished:
                seen[job_id] = Seen(f"F: {describe_exit(st.exit_status)}", True, detail)
            else:
                comment = f" ({st.comment})" if st.state == "Q" and st.comment else ""
                seen[job_id] = Seen(f"{st.state}: {WORDS.get(st.state, st.state)}{comment}", False, detail)
        return seen, None

    def is_alive(self, owner: OwnerRecord) -> tuple[bool, str]:
        job_id = owner.job_id
        try:
            state = job_states([job_id]).get(job_id)
        except QstatError as exc:
            return True, f"PBS job {job_id} (qstat could not answer: {exc})"
        if state is None or state.finished:
            return False, f"PBS job {job_id}"
        return True, f"PBS job {job_id} (state {state.state})"

    def owner_pid(self, job_id: str) -> int | None:
        return None

    def ending_cause(self, job_id: str) -> tuple[str, str] | None:
        return pbs_commands.ending_cause(job_id)

    def cancel(self, owner: OwnerRecord | None, ids: list[str]) -> list[str]:
        deleted, err = qdel(ids)
        if err:
            print(f"qdel: {err}")
        return deleted

    def logs_dir(self, run_dir: Path | str) -> Path:
        return under(run_dir, LOGS_DIR)

    def log_files(self, run_dir: Path | str, job_id: str) -> list[Path]:
        """``-o`` names the folder: PBS writes ``<seq>.<server>.OU``-style or ``<name>.o<seq>`` files there."""
        seq = job_id.split(".", 1)[0]
        return [
            p
            for p in sorted(self.logs_dir(run_dir).glob("*"))
            if p.name.startswith(job_id) or p.name.startswith(seq + ".") or p.name.endswith((f".o{seq}", f".e{seq}"))
        ]


SCHEDULER = PBS()
