"""The submitit executor: writes a PBS script per job and submits it with ``qsub``.

The select chunk, the job name, ``qsub`` and its job id are ``jobs.pbs``'s, as for the chains."""

from __future__ import annotations

import functools
import inspect
import shlex
import shutil
import sys
import typing as tp
import uuid
from pathlib import Path

from submitit.core import core, utils

from inpaint.core.errors import ConfigError
from jobs import pbs
from jobs.scheduler import unsafe_directive_text
from jobs.submitit_pbs.job import PBSJob
from jobs.submitit_pbs.requeue import ORIGIN_ENV
from jobs.walltime import format_walltime, parse_walltime


class PBSParameterError(ConfigError, ValueError):
    """A parameter PBS cannot take as given: a ValueError for submitit's callers, a one-line
    FacefillError for the project's CLIs."""


def check_directive_value(value: tp.Any, parameter: str) -> None:
    """Refuse text that would break out of a ``#PBS`` line into the job script."""
    for item in [value] if isinstance(value, (str, Path)) else value if isinstance(value, (list, tuple)) else []:
        problem = unsafe_directive_text(str(item))
        if problem:
            raise PBSParameterError(
                f"{parameter}={str(item)!r}: contains {problem}, which would run as shell in the "
                f"PBS script; remove it (only plain directive text is accepted)"
            )


class PBSExecutor(core.PicklingExecutor):
    """PBS Pro executor. ``folder`` must be on storage shared with the compute nodes.

    ``max_num_timeout``: how many times a ``Checkpointable`` callable is requeued at walltime.
    ``python``: the command running Python in the job (e.g. ``singularity exec --nv IMG python``).
    """

    job_class = PBSJob

    def __init__(
        self, folder: str | Path, max_num_timeout: int = 3, max_pickle_size_gb: float = 1.0, python: str | None = None
    ) -> None:
        check_directive_value(str(folder), "folder")  # it becomes the #PBS -o directory
        super().__init__(folder, max_num_timeout=max_num_timeout, max_pickle_size_gb=max_pickle_size_gb)
        self.python = shlex.quote(sys.executable) if python is None else python
        if self.affinity() < 0:
            raise RuntimeError('Could not detect "qsub", are you indeed on a PBS cluster?')

    @classmethod
    def name(cls) -> str:
        return "pbs"

    @classmethod
    def affinity(cls) -> int:
        return -1 if shutil.which("qsub") is None else 2

    @classmethod
    def _equivalence_dict(cls) -> core.EquivalenceDict:
        return {
            "name": "job_name",
            "timeout_min": "time",
            "mem_gb": "mem",
            "nodes": "nodes",
            "cpus_per_task": "ncpus",
            "gpus_per_node": "ngpus",
            "tasks_per_node": "tasks_per_node",
        }

    @classmethod
    def _valid_parameters(cls) -> set[str]:
        return set(_default_parameters())

    def _convert_parameters(self, params: dict[str, tp.Any]) -> dict[str, tp.Any]:
        params = super()._convert_parameters(params)
        if "mem" in params and isinstance(params["mem"], (int, float)):
            gb = float(params["mem"])
            params["mem"] = f"{int(gb)}gb" if gb == int(gb) else f"{int(gb * 1024)}mb"
        return params

    def _internal_update_parameters(self, **kwargs: tp.Any) -> None:
        defaults = _default_parameters()
        invalid = sorted(set(kwargs) - set(defaults))
        if invalid:
            valid = "\n  - ".join(f"{k} (default: {v!r})" for k, v in sorted(defaults.items()))
            raise ValueError(f"Unavailable parameter(s): {invalid}\nValid parameters are:\n  - {valid}")
        if kwargs.get("tasks_per_node", 1) != 1:
            raise ValueError("the PBS executor runs one task per job; start ranks yourself (torchrun)")
        make_qsub_script(command="true", folder=self.folder, **{**self.parameters, **kwargs})  # validates
        super()._internal_update_parameters(**kwargs)

    @property
    def _submitit_command_str(self) -> str:
        return " ".join([self.python, "-u -m submitit.core._submit", shlex.quote(str(self.folder))])

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        return make_qsub_script(command=command, folder=self.folder, **self.parameters)

    def _num_tasks(self) -> int:
        return 1

    def _make_submission_command(self, submission_file_path: Path) -> list[str]:
        raise NotImplementedError("PBSExecutor submits with jobs.pbs.qsub (see _submit_command)")

    @staticmethod
    def _get_job_id_from_submission_command(string: bytes | str) -> str:
        """The id in qsub's output, read by ``jobs.pbs``."""
        try:
            return pbs.parse_job_id(string if isinstance(string, str) else string.decode())
        except pbs.QsubError as exc:
            raise utils.FailedSubmissionError(str(exc)) from None

    def _submit_command(self, command: str) -> core.Job[tp.Any]:
        """submitit's own steps (write the script, submit, move it under the job's id), with
        ``jobs.pbs.qsub`` submitting: a refusal is submitit's FailedJobError with qsub's words."""
        tmp_uuid = uuid.uuid4().hex
        path = utils.JobPaths.get_first_id_independent_folder(self.folder) / f".submission_file_{tmp_uuid}.sh"
        path.write_text(self._make_submission_file_text(command, tmp_uuid))
        try:
            job_id = pbs.qsub(path)
        except pbs.QsubError as exc:
            raise utils.FailedJobError(str(exc)) from None
        job: core.Job[tp.Any] = self.job_class(folder=self.folder, job_id=job_id, tasks=[0])
        job.paths.move_temporary_file(path, "submission_file", keep_as_symlink=True)
        self._write_job_id(job.job_id, tmp_uuid)
        self._set_job_permissions(job.paths.folder)
        return job

    def _internal_process_submissions(self, delayed_submissions: list[utils.DelayedSubmission]) -> list[core.Job[tp.Any]]:
        # no job arrays: PBS array ids ("7[].vm") would need their own bookkeeping; submit one by one
        jobs: list[core.Job[tp.Any]] = []
        for delayed in delayed_submissions:
            jobs.extend(super()._internal_process_submissions([delayed]))
        return jobs


@functools.lru_cache
def _default_parameters() -> dict[str, tp.Any]:
    spec = inspect.getfullargspec(make_qsub_script)
    return dict(zip(spec.kwonlyargs, [spec.kwonlydefaults[k] for k in spec.kwonlyargs], strict=True))  # type: ignore


def _job_folder_expr(folder: str | Path) -> str:
    """The job's folder as a bash expression: submitit's ``%j`` becomes the (original) job id."""
    parts = str(Path(folder).expanduser().absolute()).split("%j")
    return '"${JOB}"'.join(shlex.quote(p) if p else "" for p in parts) or "."


def make_qsub_script(
    command: str,
    folder: str | Path,
    *,
    job_name: str = "submitit",
    queue: str | None = None,
    time: float = 5,
    walltime: str | None = None,
    nodes: int = 1,
    ncpus: int = 1,
    ngpus: int = 0,
    mem: str | None = None,
    select_extra: str | None = None,
    gpu_cap: str | None = None,
    account: str | None = None,
    tasks_per_node: int = 1,
    additional_directives: tp.Sequence[str] = (),
    setup: tp.Sequence[str] = (),
    signal_delay_s: int = 90,
    stderr_to_stdout: bool = False,
) -> str:
    """The PBS script for one submitit job; raises ValueError on unusable parameters."""
    check_directive_value(str(folder), "folder")
    check_directive_value(mem or "", "mem")  # mem_gb is numeric; a text mem comes only from PBSExecutor(mem=...)
    for key, value in (
        ("queue", queue),
        ("account", account),
        ("select_extra", select_extra),
        ("gpu_cap", gpu_cap),
        ("additional_directives", additional_directives),
    ):
        check_directive_value(value or "", f"pbs_{key}")  # named as AutoExecutor users pass it
    try:
        walltime_s = parse_walltime(walltime, "pbs_walltime") if walltime else int(round(float(time) * 60))
    except ConfigError as exc:  # submitit reports parameter errors as ValueError
        raise ValueError(str(exc)) from None
    if walltime_s <= 0:
        raise ValueError(f"timeout_min/pbs_walltime must be positive, got {walltime or time}")
    if not 0 <= signal_delay_s:
        raise ValueError("signal_delay_s must be >= 0")
    independent = utils.JobPaths.get_first_id_independent_folder(folder)
    lines = ["#!/bin/bash", "# Parameters"]
    lines += [f"#PBS {d.strip()}" for d in additional_directives]
    lines += [f"#PBS -N {pbs.job_name(job_name or 'submitit', 's')}"]
    if queue:
        lines.append(f"#PBS -q {queue}")
    if account:
        lines.append(f"#PBS -A {account}")
    lines += [
        f"#PBS -l {pbs.select_chunk(nodes, ncpus, ngpus, mem, select_extra, gpu_cap)}",
        f"#PBS -l walltime={format_walltime(walltime_s)}",
    ]
    if nodes > 1:
        lines.append("#PBS -l place=scatter")
    lines += ["#PBS -j oe", f"#PBS -o {independent}/", ""]
    if setup:
        lines += ["# setup", *setup, ""]
    redirect = "2>&1" if stderr_to_stdout else '2>> "$FOLDER/${JOB}_0_log.err"'
    # USR2 is submitit's "timed out: checkpoint and requeue" signal; PBS sends none, so we do.
    signal_at = max(1, walltime_s - int(signal_delay_s))
    lines += [
        "# command",
        "export SUBMITIT_EXECUTOR=pbs",
        f'JOB="${{{ORIGIN_ENV}:-$PBS_JOBID}}"',
        f"FOLDER={_job_folder_expr(folder)}",
        'mkdir -p "$FOLDER"',
        'cd "${PBS_O_WORKDIR:-$HOME}"',
        f'exec >> "$FOLDER/${{JOB}}_0_log.out" {redirect}',
        f"{command} &",
        "PID=$!",
        f"( trap 'kill \"$S\" 2>/dev/null; exit 0' TERM; sleep {signal_at} & S=$!; "
        'wait "$S" && kill -USR2 "$PID" 2>/dev/null ) &',
        "TIMER=$!",
        "trap 'kill -TERM \"$PID\" 2>/dev/null' TERM",
        'code=0; wait "$PID" || code=$?',
        'while kill -0 "$PID" 2>/dev/null; do code=0; wait "$PID" || code=$?; done',
        'kill "$TIMER" 2>/dev/null || true',
        'exit "$code"',
        "",
    ]
    return "\n".join(lines)
