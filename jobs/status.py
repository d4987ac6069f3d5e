"""``python -m jobs.status RUN_DIR``: where a chain stands, part by part.

PBS states come from ONE batched ``qstat -x -f -F json`` call (finished jobs included); a qstat
that keeps failing is reported as "unknown", never as a lost job.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from inpaint.cli import run_cli
from inpaint.errors import ConfigError
from inpaint.process import pid_alive
from jobs import ledger, lock
from jobs.chain_state import read_chain_state
from jobs.paths import LEDGER, under


def scheduler_states(parts: list[dict]) -> tuple[dict[str, str], str | None]:
    """job id -> state words, for every PBS part at once; (states, warning)."""
    pbs_ids = [p["job_id"] for p in parts if p.get("executor") == "pbs" and p.get("job_id")]
    states: dict[str, str] = {}
    warning = None
    if pbs_ids:
        from jobs.pbs_commands import QstatError, describe_exit, job_states
        try:
            found = job_states(pbs_ids)
        except QstatError as exc:
            return {}, f"qstat did not answer ({exc}); job states unknown, jobs are NOT presumed lost"
        for job_id in pbs_ids:
            st = found.get(job_id)
            if st is None:
                states[job_id] = "gone from PBS history"
            elif st.finished:
                states[job_id] = f"F: {describe_exit(st.exit_status)}"
            else:
                words = {"Q": "queued", "H": "held", "R": "running", "E": "exiting", "W": "waiting"}
                states[job_id] = f"{st.state}: {words.get(st.state, st.state)}" + (f" ({st.comment})" if st.state == "Q" and st.comment else "")
    for p in parts:
        if p.get("executor") == "local" and p.get("job_id") and "exit_code" not in p:
            alive = pid_alive(int(p["job_id"])) if str(p["job_id"]).isdigit() else False
            states[p["job_id"]] = "running" if alive else "gone"
    return states, warning


def summarize_outputs(run_dir: Path | str) -> str:
    """What the run has produced so far, for the end of a chain and for status."""
    run = Path(run_dir)
    status = ledger.read_status_json(run)
    ckpts = sorted((run / "checkpoints").glob("step-*.pt"))
    lines = [f"run dir: {run}"]
    if status:
        lines.append(f"  trainer: {status.get('state')} at step {status.get('step')}/{status.get('total_steps')}"
                     f" (epoch {status.get('epoch')}): {status.get('message', '')}")
    if ckpts:
        lines.append(f"  latest checkpoint: {ckpts[-1]} ({len(ckpts)} kept)")
    samples = sorted((run / "samples").glob("*.png"))
    if samples:
        lines.append(f"  samples: {samples[-1]} ({len(samples)} images)")
    if (run / "eval").is_dir():
        lines.append(f"  evaluation: {run / 'eval'}")
    return "\n".join(lines)


def render_status(run_dir: Path | str) -> tuple[str, dict]:
    run = Path(run_dir)
    if not under(run, LEDGER).is_file():
        raise ConfigError(f"{under(run, LEDGER)}: no chain recorded here; is {run} a run dir made by jobs.submit?")
    parts = ledger.read_parts(run)
    states, warning = scheduler_states(parts)
    chain = read_chain_state(run)
    lines = [f"chain: {chain.get('state', '?')} — {chain.get('reason', '')}"]
    if warning:
        lines.append(f"warning: {warning}")
    lines.append(f"{'part':>4}  {'kind':8}  {'job id':22}  {'submitted':20}  {'started':20}  {'ended':20}  {'exit':>4}  {'step':>8}  state / action")
    for p in parts:
        job = str(p.get("job_id", "?"))
        what = p.get("action") or states.get(job, "")
        if p.get("action") and job in states:
            what = f"{p['action']} [{states[job]}]"
        lines.append(f"{p['part']:>4}  {p.get('kind', 'train'):8}  {job:22}  {p.get('submit_time', ''):20}  "
                     f"{p.get('start_time', ''):20}  {p.get('end_time', ''):20}  {str(p.get('exit_code', '')):>4}  "
                     f"{str(p.get('step', '')):>8}  {what}")
    owner = lock.read_owner(run)
    if owner:
        lines.append(f"owner: {owner.get('executor')} job {owner.get('job_id')}")
    lines.append(summarize_outputs(run))
    return "\n".join(lines), {"chain": chain, "parts": parts, "scheduler": states, "warning": warning}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.status", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    text, data = render_status(args.run_dir)
    print(json.dumps(data, indent=1) if args.json else text)
    return 0


if __name__ == "__main__":
    run_cli(main)
