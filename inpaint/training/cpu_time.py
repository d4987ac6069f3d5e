"""CPU time of a training process and its DataLoader workers: what a run costs, measured by the
run itself, so that a model's card can say how many CPU-minutes it took however many parts,
resubmissions or scheduler jobs the training was spread over.

user + sys seconds of this process, of its children that have exited (``os.times``) and of its
live children (``/proc/<pid>/stat``: DataLoader workers run for a whole epoch, so a checkpoint
written mid-epoch would otherwise miss them). The same quantity ``/usr/bin/time`` reports for a
trainer that runs to its end.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _live_children_seconds() -> float:
    """user+sys (and their reaped children's) of this process's live children; 0 off Linux."""
    total = 0
    for tasks in Path("/proc/self/task").glob("*/children"):
        try:
            pids = tasks.read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:  # exited since
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
            total += sum(int(v) for v in fields[11:15])    # utime stime cutime cstime
    return total / _TICKS


def process_tree_cpu_seconds() -> float:
    """user+sys CPU seconds of this process and all its children, live or exited."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + _live_children_seconds()


class CpuMeter:
    """CPU seconds of a run: those of earlier parts (from the checkpoint) plus this process's."""

    def __init__(self, carried: float = 0.0, baseline: float | None = None) -> None:
        self.carried = float(carried)
        self.start = process_tree_cpu_seconds() if baseline is None else float(baseline)

    def total(self) -> float:
        return self.carried + process_tree_cpu_seconds() - self.start
