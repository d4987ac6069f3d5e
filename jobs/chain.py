"""The exit-code → next-action table of a resubmission chain, in one place.

Every executor follows it through ``jobs.part``: the PBS script calls ``python3 -m jobs.part end``
after the trainer, the local and SLURM parts call the same function in-process. Exit codes are the
trainer's contract (:mod:`inpaint.core.contract`).
"""

from __future__ import annotations

from dataclasses import dataclass

from inpaint.core.contract import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_FINISHED, EXIT_STOPPED

DONE = "done"  # training finished; nothing more to submit
EVALUATE = "evaluate"  # training finished; submit the evaluation job
RESUBMIT = "resubmit"  # submit the next part of the chain
CONTINUE = "continue"  # the next part is already queued (pre-submitted --chain); just exit
STOP = "stop"  # stop the chain; the reason is written into the run dir

REASONS = {
    EXIT_FINISHED: (DONE, "training finished"),
    EXIT_STOPPED: (RESUBMIT, "trainer stopped at its time limit with a checkpoint"),
    EXIT_FAILED: (STOP, "trainer failed (exit 1): read train.log in the run dir, fix the cause, submit again"),
    EXIT_BAD_INPUT: (STOP, "trainer refused its input (exit 2): fix the config or data, submit again"),
}
SIGNAL_REASON = "trainer killed by signal {signal} (exit {code}): resubmit to resume from the last checkpoint"
UNKNOWN_REASON = "trainer exited with unexpected code {code}: read train.log in the run dir"
LIMIT_REASON = "--max-resubmits {max_resubmits} reached after part {part}: submit again to continue"
EVALUATE_REASON = "training finished; evaluation submitted"
CONTINUE_REASON = "trainer stopped at its time limit; the next part is already queued"
STALLED_REASON = "part {part} made no progress: the walltime leaves no room for a step and a checkpoint; raise --walltime"
CANCELLED_REASON = "cancelled with jobs.cancel"
SUPERSEDED_REASON = "chain {chain} was followed by a new submission ({current}) on this run dir; this part hands nothing on"
# A stop asked for by a signal before the part's deadline is not the walltime: someone or something
# ended the job. Only jobs.cancel stops a chain on purpose; these say what happened and how to go on.
SCANCEL_REASON = (
    "cancelled by the scheduler ({detail}), not with jobs.cancel: the checkpoint at step {step} is kept; submit again to continue"
)
SIGNALLED_REASON = (
    "stopped by {detail}, not at its time limit: a qdel, a preemption or a kill; the checkpoint at "
    "step {step} is kept; submit again to continue (jobs.cancel is the way to stop a chain)"
)
PREEMPTED_REASON = "preempted ({detail}): resubmitted once, with the checkpoint at step {step}"
PREEMPTED_AGAIN_REASON = (
    "preempted again ({detail}): a chain is resubmitted after one preemption only; the "
    "checkpoint at step {step} is kept; submit again to continue"
)
NODE_FAILED_REASON = "a node of the job failed ({detail}): resubmitted once, with the checkpoint at step {step}"
NODE_FAILED_AGAIN_REASON = (
    "a node failed again ({detail}): a chain is resubmitted after one preemption or node "
    "failure only; the checkpoint at step {step} is kept; submit again to continue"
)
REQUEUED_REASON = "requeued by the scheduler ({detail}): the same job runs this part again"

# What ended a part early, as ``jobs.part`` finds out (the scheduler's word, else the clock).
CANCELLED_BY_SCHEDULER = "scancel"
PREEMPTED = "preempted"
NODE_FAILED = "node_failed"
RESUBMITTED_ONCE = (PREEMPTED, NODE_FAILED)  # resubmitted once per chain, whichever came first
REQUEUED = "requeued"
SIGNALLED = "signal"


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str


@dataclass(frozen=True)
class Interruption:
    """A part stopped by a signal before its deadline: ``cause`` is one of CANCELLED_BY_SCHEDULER,
    PREEMPTED, NODE_FAILED, REQUEUED, SIGNALLED; ``detail`` what was seen (for the reason); ``step``
    the checkpoint kept; ``preempted_before`` whether this chain was already resubmitted after a
    preemption or a node failure."""

    cause: str
    detail: str
    step: int | None = None
    preempted_before: bool = False


def _interrupted(stop: Interruption, part: int, max_resubmits: int) -> Decision:
    words = {"detail": stop.detail, "step": stop.step}
    if stop.cause == REQUEUED:
        return Decision(CONTINUE, REQUEUED_REASON.format(**words))
    if stop.cause == PREEMPTED and not stop.preempted_before and part <= max_resubmits:
        return Decision(RESUBMIT, PREEMPTED_REASON.format(**words))
    if stop.cause == NODE_FAILED and not stop.preempted_before and part <= max_resubmits:
        return Decision(RESUBMIT, NODE_FAILED_REASON.format(**words))
    if stop.cause == PREEMPTED:
        return Decision(STOP, PREEMPTED_AGAIN_REASON.format(**words))
    if stop.cause == NODE_FAILED:
        return Decision(STOP, NODE_FAILED_AGAIN_REASON.format(**words))
    if stop.cause == CANCELLED_BY_SCHEDULER:
        return Decision(STOP, SCANCEL_REASON.format(**words))
    return Decision(STOP, SIGNALLED_REASON.format(**words))


def decide(
    exit_code: int,
    part: int,
    max_resubmits: int,
    then_evaluate: bool = False,
    successor_queued: bool = False,
    progressed: bool = True,
    cancelled: bool = False,
    interrupted: Interruption | None = None,
) -> Decision:
    """What a finished part must do next, given the trainer's exit code.

    ``part`` counts from 1, so ``part - 1`` resubmissions have happened; another one is allowed
    while ``part <= max_resubmits``. ``successor_queued`` is true for the pre-submitted parts of a
    ``--chain K`` (a held job follows this one already). ``progressed`` is false when the part
    ended at the same step it started from: resubmitting it would loop until the limit. A
    ``cancelled`` chain never hands on (nor evaluates), and says so rather than blaming the walltime
    or the signal that ended the part. A part ``interrupted`` by a signal before its deadline (a
    qdel, scancel or preemption; the trainer's exit 75) stops, except that a SLURM preemption or node
    failure is resubmitted once per chain and a SLURM requeue runs the part again by itself.
    """
    if exit_code in REASONS:
        action, reason = REASONS[exit_code]
    elif 128 < exit_code < 160:
        action, reason = STOP, SIGNAL_REASON.format(signal=exit_code - 128, code=exit_code)
    else:
        action, reason = STOP, UNKNOWN_REASON.format(code=exit_code)
    if cancelled and action != DONE:
        return Decision(STOP, CANCELLED_REASON)
    if interrupted is not None and action == RESUBMIT:
        return _interrupted(interrupted, part, max_resubmits)
    if action == DONE and then_evaluate and not cancelled:
        return Decision(EVALUATE, EVALUATE_REASON)
    if action != RESUBMIT:
        return Decision(action, reason)
    if not progressed:
        return Decision(STOP, STALLED_REASON.format(part=part))
    if successor_queued:
        return Decision(CONTINUE, CONTINUE_REASON)
    if part > max_resubmits:
        return Decision(STOP, LIMIT_REASON.format(max_resubmits=max_resubmits, part=part))
    return Decision(action, reason)
