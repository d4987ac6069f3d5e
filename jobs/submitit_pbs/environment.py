"""What a submitit task sees inside a PBS job (ids, nodes) and how it requeues itself."""

from __future__ import annotations

import os
from pathlib import Path

from submitit.core import job_environment, logger, utils

from jobs import pbs
from jobs.submitit_pbs.requeue import ORIGIN_ENV, add_requeue


class PBSJobEnvironment(job_environment.JobEnvironment):
    _env = {"job_id": "PBS_JOBID"}

    @property
    def job_id(self) -> str:
        """The id whose files this task uses: the original job's, also after requeues."""
        return os.environ.get(ORIGIN_ENV) or os.environ[self._env["job_id"]]

    @property
    def raw_job_id(self) -> str:
        return os.environ[self._env["job_id"]]

    @property
    def hostnames(self) -> list[str]:
        nodefile = os.environ.get("PBS_NODEFILE")
        if not nodefile or not Path(nodefile).is_file():
            return [self.hostname]
        seen: list[str] = []
        for line in Path(nodefile).read_text().split():
            if line not in seen:
                seen.append(line)
        return seen or [self.hostname]

    @property
    def num_nodes(self) -> int:
        return len(self.hostnames)

    @property
    def num_tasks(self) -> int:
        return 1  # one Python process per job; multi-node work launches its own ranks

    @property
    def node(self) -> int:
        return 0

    @property
    def global_rank(self) -> int:
        return 0

    @property
    def local_rank(self) -> int:
        return 0

    def _requeue(self, countdown: int) -> None:
        """Submit the same script again as a new job that takes over this job's files."""
        folder = Path(os.environ["SUBMITIT_FOLDER"])
        original = self.job_id
        script = utils.JobPaths(folder, job_id=original).submission_file
        try:
            new_id = pbs.qsub(script, ["-v", f"{ORIGIN_ENV}={original}"])
        except pbs.QsubError as exc:
            raise utils.UncompletedJobError(f"requeue of {original} refused: {exc}") from None
        add_requeue(utils.JobPaths(folder, job_id=original).folder, original, new_id)
        logger.get_logger().info(f"Requeued job {original} as {new_id} ({countdown} remaining timeouts)")
