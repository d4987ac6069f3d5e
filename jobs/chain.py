"""The exit-code → next-action table of a resubmission chain, in one place.

Every executor follows the same table: the local and SLURM paths call :func:`decide` in Python,
and the rendered PBS script embeds :func:`bash_decide_function`, which is generated from the
same rules (a test runs both over a grid of inputs and demands identical answers).
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_FINISHED = 0
EXIT_STOPPED_EARLY = 75  # EX_TEMPFAIL: a valid checkpoint was written, run again to continue
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

DONE = "done"            # training finished; nothing more to submit
EVALUATE = "evaluate"    # training finished; submit the evaluation job
RESUBMIT = "resubmit"    # submit the next part of the chain
CONTINUE = "continue"    # the next part is already queued (pre-submitted --chain); just exit
STOP = "stop"            # stop the chain; the reason is written into the run dir

ACTIONS = (DONE, EVALUATE, RESUBMIT, CONTINUE, STOP)


@dataclass(frozen=True)
class Rule:
    code: int
    action: str
    reason: str


# Reasons are single-line, contain no quotes or backslashes (the bash side prints them verbatim).
RULES: tuple[Rule, ...] = (
    Rule(EXIT_FINISHED, DONE, "training finished"),
    Rule(EXIT_STOPPED_EARLY, RESUBMIT, "trainer stopped at its time limit with a checkpoint"),
    Rule(EXIT_FAILED, STOP, "trainer failed (exit 1): read train.log in the run dir, fix the cause, submit again"),
    Rule(EXIT_BAD_INPUT, STOP, "trainer refused its input (exit 2): fix the config or data, submit again"),
)
SIGNAL_REASON = "trainer killed by signal {signal} (exit {code}): resubmit to resume from the last checkpoint"
UNKNOWN_REASON = "trainer exited with unexpected code {code}: read train.log in the run dir"
LIMIT_REASON = "--max-resubmits {max_resubmits} reached after part {part}: submit again to continue"
EVALUATE_REASON = "training finished; evaluation submitted"
CONTINUE_REASON = "trainer stopped at its time limit; the next part is already queued"
STALLED_REASON = "part {part} made no progress: the walltime leaves no room for a step and a checkpoint; raise --walltime"


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str


def decide(exit_code: int, part: int, max_resubmits: int, then_evaluate: bool = False,
           successor_queued: bool = False, progressed: bool = True) -> Decision:
    """What a finished part must do next, given the trainer's exit code.

    ``part`` counts from 1, so ``part - 1`` resubmissions have happened; another one is allowed
    while ``part <= max_resubmits``. ``successor_queued`` is true for the pre-submitted parts of a
    ``--chain K`` (a held job follows this one already). ``progressed`` is false when the part
    ended at the same step it started from: resubmitting it would loop until the limit.
    """
    rule = next((r for r in RULES if r.code == exit_code), None)
    if rule is None:
        if 128 < exit_code < 160:
            return Decision(STOP, SIGNAL_REASON.format(signal=exit_code - 128, code=exit_code))
        return Decision(STOP, UNKNOWN_REASON.format(code=exit_code))
    if rule.action == DONE and then_evaluate:
        return Decision(EVALUATE, EVALUATE_REASON)
    if rule.action == RESUBMIT:
        if not progressed:
            return Decision(STOP, STALLED_REASON.format(part=part))
        if successor_queued:
            return Decision(CONTINUE, CONTINUE_REASON)
        if part > max_resubmits:
            return Decision(STOP, LIMIT_REASON.format(max_resubmits=max_resubmits, part=part))
    return Decision(rule.action, rule.reason)


def _bash_fmt(template: str, mapping: dict[str, str]) -> str:
    out = template
    for key, value in mapping.items():
        out = out.replace("{" + key + "}", value)
    return out


def bash_decide_function() -> str:
    """Bash twin of :func:`decide`: ``facefill_decide CODE PART MAX THEN_EVAL QUEUED PROGRESSED`` prints
    ``ACTION<TAB>REASON``. Generated from :data:`RULES` so the two cannot drift apart."""
    lines = [
        "facefill_decide() {",
        '  local code="$1" part="$2" max="$3" then_eval="$4" queued="$5" progressed="${6:-1}" action reason',
        '  case "$code" in',
    ]
    for rule in RULES:
        lines.append(f"    {rule.code}) action={rule.action}; reason='{rule.reason}' ;;")
    sig = _bash_fmt(SIGNAL_REASON, {"signal": "$((code - 128))", "code": "$code"})
    unknown = _bash_fmt(UNKNOWN_REASON, {"code": "$code"})
    lines += [
        "    *)",
        '      action=stop',
        '      if [ "$code" -gt 128 ] && [ "$code" -lt 160 ]; then',
        f'        reason="{sig}"',
        "      else",
        f'        reason="{unknown}"',
        "      fi ;;",
        "  esac",
        f'  if [ "$action" = {DONE} ] && [ "$then_eval" = 1 ]; then',
        f"    action={EVALUATE}; reason='{EVALUATE_REASON}'",
        "  fi",
        f'  if [ "$action" = {RESUBMIT} ]; then',
        '    if [ "$progressed" != 1 ]; then',
        f'      action={STOP}; reason="{_bash_fmt(STALLED_REASON, {"part": "$part"})}"',
        '    elif [ "$queued" = 1 ]; then',
        f"      action={CONTINUE}; reason='{CONTINUE_REASON}'",
        '    elif [ "$part" -gt "$max" ]; then',
        f'      action={STOP}; reason="{_bash_fmt(LIMIT_REASON, {"max_resubmits": "$max", "part": "$part"})}"',
        "    fi",
        "  fi",
        '  printf "%s\\t%s\\n" "$action" "$reason"',
        "}",
    ]
    return "\n".join(lines)
