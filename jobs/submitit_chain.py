"""Local and SLURM chains through submitit's own executors.

Each part is a submitit job running :func:`run_part`: it starts the trainer CLI and hands the
rest to ``jobs.part`` (the decision and every record, exactly as the PBS script does) and, when
told to, submits its successor from inside the job — the same self-resubmission as on PBS, so
no process has to watch the chain.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from inpaint.core.errors import ConfigError
from jobs import container
from jobs import part as chain_part
from jobs.paths import SUBMITIT_DIR, under
from jobs.scheduler import scheduler
from jobs.spec import JobSpec

TIMEOUT_GRACE_MIN = 5  # submitit's hard kill comes this long after the part's walltime


class SubmititParts:
    """What the schedulers whose parts are submitit jobs (local, SLURM) share: submission through
    :func:`submit_part`, logs in ``run_dir/jobs/submitit``. A subclass says which submitit
    ``cluster`` it is (its ``name``), the command that queues a part (for errors) and its
    executor parameters."""

    name: str
    submit_command: str

    def submitit_parameters(self, spec: JobSpec) -> dict[str, Any]:
        """submitit executor parameters for a part of ``spec`` beyond its time limit and name."""
        raise NotImplementedError

    def submit(self, spec: JobSpec) -> list[str]:
        return [submit_part(spec, 1)]

    def submit_successor(self, spec: JobSpec, part: int, kind: str) -> str:
        return submit_part(spec, part, kind)

    def logs_dir(self, run_dir: Path | str) -> Path:
        return under(run_dir, SUBMITIT_DIR)

    def log_files(self, run_dir: Path | str, job_id: str) -> list[Path]:
        """submitit's ``<job id>_<task>_log.out|err`` files that are not empty."""
        return sorted(p for p in self.logs_dir(run_dir).glob(f"{job_id}_*_log.*") if p.stat().st_size)

    def preview(self, spec: JobSpec) -> str:
        return ""

    def launch(self, spec: JobSpec, module_argv: list[str], job_id: str, kind: str) -> tuple[list[str], dict[str, str]]:
        """(command, extra environment) that runs ``python -m <module_argv>`` for a part: here one
        process, in the submission's image if any; a scheduler that spreads a part over several
        processes or nodes says how."""
        return container.wrap(spec, [spec.python, "-m", *module_argv])

    def part_hosts(self) -> str | None:
        """The nodes this part runs on, for the ledger (None: this host)."""
        return None

    def check_run_dir(self, run_dir: str) -> None:
        return None


def _parts_of(spec: JobSpec) -> SubmititParts:
    found = scheduler(spec.executor)
    if not isinstance(found, SubmititParts):
        raise ConfigError(f"--executor {spec.executor}: its parts are not submitit jobs")
    return found


def make_executor(spec: JobSpec, kind: str = chain_part.TRAIN) -> Any:
    """A submitit executor for ``spec.executor`` (a :class:`SubmititParts` scheduler) with the
    part's resources; an evaluation part gets its own walltime."""
    import submitit

    folder = under(spec.run_dir, SUBMITIT_DIR)  # flat: <job id>_0_log.out beside the pickles
    executor = submitit.AutoExecutor(folder=folder, cluster=spec.executor)
    walltime_s = spec.eval_walltime_s if kind == chain_part.EVALUATE and spec.eval_walltime_s else spec.walltime_s
    params: dict[str, Any] = {
        "timeout_min": int(walltime_s // 60) + TIMEOUT_GRACE_MIN,
        "name": spec.name,
        **_parts_of(spec).submitit_parameters(spec),
    }
    executor.update_parameters(**params)
    return executor


def submit_part(spec: JobSpec, part: int, kind: str = chain_part.TRAIN) -> str:
    """Queue part ``part`` (or the evaluation) with submitit; its id. The caller records it
    (``jobs.part.record_submission`` for the first part, ``jobs.part.submitted`` for successors)."""
    from jobs.slurm_commands import refused_submission

    what = f"{_parts_of(spec).submit_command} (part {part})"
    with refused_submission(under(spec.run_dir, SUBMITIT_DIR), what):  # a refusal: one line, no files left
        return str(make_executor(spec, kind).submit(run_part, spec, part, kind).job_id)


def _current_job_id() -> str:
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except RuntimeError:  # called outside submitit (tests, debugging)
        return f"pid-{os.getpid()}"


def _run(cmd: list[str], container_env: dict[str, str], spec: JobSpec) -> tuple[int, str]:
    """Run a part's command (from :meth:`SubmititParts.launch`) with the project importable; echo
    its output into the part's log.

    Returns (exit code, last non-empty output line — the trainer's one-line status).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (spec.project_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(container_env)
    print("[facefill] $ " + " ".join(cmd), flush=True)
    last = ""
    with subprocess.Popen(
        cmd, env=env, cwd=spec.project_root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.strip():
                last = line.strip()
    code = proc.returncode
    return (128 - code if code < 0 else code), last[:300]  # killed by signal N: 128+N, as a shell says


def run_part(spec: JobSpec, part: int, kind: str = chain_part.TRAIN) -> dict:
    """Body of one submitit job: start, run the trainer (or the evaluation), decide, hand on."""
    job_id = _current_job_id()
    parts = _parts_of(spec)
    skip = chain_part.guarded(
        spec, part, job_id, lambda: chain_part.start(spec, part, kind, job_id, pid=os.getpid(), host=parts.part_hosts())
    )
    if skip:
        print(f"[facefill] {skip}", flush=True)
        return {"exit_code": None, "action": "skip", "reason": skip}
    code, last = _run(*parts.launch(spec, chain_part.command(spec, part, kind, job_id), job_id, kind), spec)
    ending = chain_part.guarded(spec, part, job_id, lambda: chain_part.end(spec, part, kind, job_id, code, status_line=last))
    next_id, error = chain_part.hand_on(spec, part, job_id, ending.next_kind) if ending.next_kind else (None, None)
    if error is not None:
        return {"exit_code": code, "action": "stop", "reason": error}
    return {"exit_code": code, "action": ending.decision.action, "reason": ending.decision.reason, "next_job_id": next_id}
