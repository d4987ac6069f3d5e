"""A PBS Pro executor for submitit, registered as a plugin (``cluster="pbs"``).

``submitit.AutoExecutor(folder, cluster="pbs")`` then works for any picklable callable, with the
shared parameters (``timeout_min``, ``gpus_per_node``, ``cpus_per_task``, ``mem_gb``, ``nodes``,
``name``) and ``pbs_*`` ones (``pbs_queue``, ``pbs_walltime``, ``pbs_select_extra``,
``pbs_additional_directives``, ``pbs_setup``, ``pbs_signal_delay_s``, ``pbs_account``).

PBS gives no warning before the walltime kill, so the job script raises submitit's own timeout
signal (USR2) itself ``signal_delay_s`` before the walltime: a ``Checkpointable`` callable is
checkpointed and requeued — on PBS that means submitting a new job that takes over the original
job's files, which :class:`PBSJob` follows transparently.
"""

from jobs.submitit_pbs.environment import PBSJobEnvironment
from jobs.submitit_pbs.executor import PBSExecutor
from jobs.submitit_pbs.job import PBSInfoWatcher, PBSJob

__all__ = ["PBSExecutor", "PBSJob", "PBSInfoWatcher", "PBSJobEnvironment"]
