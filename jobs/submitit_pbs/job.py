"""Job handles and the shared qstat watcher (one batched ``qstat -x -f -F json`` per refresh, plus one
call per id the server left unanswered)."""

from __future__ import annotations

import time

from submitit.core import core, logger

from jobs.pbs import SIGNAL_EXIT_BASE, WALLTIME_EXIT, JobState, QstatError, job_states, parse_qstat_json, qdel
from jobs.submitit_pbs.requeue import latest_id

# PBS one-letter states in submitit's (SLURM-flavoured) vocabulary, so that InfoWatcher.is_done
# and user code reading ``job.state`` behave as on SLURM.
ACTIVE_STATES = {
    "Q": "PENDING",
    "H": "PENDING",
    "W": "PENDING",
    "T": "PENDING",
    "S": "PENDING",
    "U": "PENDING",
    "M": "PENDING",
    "R": "RUNNING",
    "B": "RUNNING",
    "E": "COMPLETING",
    "X": "COMPLETED",
}


def submitit_state(state: JobState) -> str:
    if not state.finished:
        return ACTIVE_STATES.get(state.state, "UNKNOWN")
    code = state.exit_status
    if code is None:
        return "CANCELLED"  # deleted before it ran
    if code == 0:
        return "COMPLETED"
    if code == WALLTIME_EXIT:
        return "TIMEOUT"
    if code >= SIGNAL_EXIT_BASE:
        return "CANCELLED" if code - SIGNAL_EXIT_BASE in (9, 15) else "FAILED"
    return "FAILED"


def _info(state: JobState) -> dict[str, str]:
    """A job's entry in the watcher's info dict: submitit's ``State`` beside PBS's own words."""
    return {
        "State": submitit_state(state),
        "job_state": state.state,
        "Exit_status": "" if state.exit_status is None else str(state.exit_status),
        "comment": state.comment,
    }


class PBSInfoWatcher(core.InfoWatcher):
    """Job states through :func:`jobs.pbs.job_states` (``update`` replaces submitit's own
    single-command refresh: OpenPBS 23.06 answers a multi-id qstat for the first id only)."""

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        if isinstance(string, bytes):
            string = string.decode()
        if not string.strip():
            return {}
        return {jid: _info(st) for jid, st in parse_qstat_json(string).items()}

    def get_state(self, job_id: str, mode: str = "standard") -> str:
        return self.get_info(job_id, mode=mode).get("State") or "UNKNOWN"

    def update(self) -> None:
        """One batched qstat; unknown ids stay UNKNOWN and a failing qstat changes nothing."""
        to_check = sorted(self._registered - self._finished)
        if not to_check:
            return
        self._num_calls += 1
        try:
            states = job_states(to_check, retry_delays=())
        except QstatError as exc:
            logger.get_logger().warning(f"qstat failed ({exc}); PBS job states may be stale")
        else:
            self._info_dict.update({jid: _info(st) for jid, st in states.items()})
        self._last_status_check = time.time()
        for job_id in to_check:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)


class PBSJob(core.Job[core.R]):
    _cancel_command = "qdel"
    watcher = PBSInfoWatcher(delay_s=60)

    def current_job_id(self) -> str:
        """The PBS job now doing this job's work (a requeue submits a new one)."""
        return latest_id(self.paths.folder, self.job_id)

    def get_info(self, mode: str = "force") -> dict[str, str]:
        return self.watcher.get_info(self.current_job_id(), mode=mode)

    @property
    def state(self) -> str:
        return self.watcher.get_state(self.current_job_id(), mode="standard")

    def done(self, force_check: bool = False) -> bool:
        if self.paths.result_pickle.exists():
            return True
        current = self.current_job_id()
        if not self.watcher.is_done(current, mode="force" if force_check else "standard"):
            return False
        # the job may have requeued itself just before it ended: then its successor carries on
        return self.current_job_id() == current

    def cancel(self, check: bool = True) -> None:
        """``qdel`` the job now doing this job's work; with ``check``, a refusal is an error."""
        current = self.current_job_id()
        deleted, err = qdel([current])
        if check and current not in deleted:
            raise RuntimeError(f"qdel {current} refused: {err or 'no message'}")
