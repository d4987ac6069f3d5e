"""Shared helpers for the job-layer tests: a stub trainer and stub PBS/Singularity executables.

Stubs are written into a temporary folder put first on PATH; each records its arguments (one
call per line in ``<log>/<name>.calls``) so tests can assert what the job layer ran.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "openpbs"

# The trainer CLI's options as a stub trainer reads them (the rest of each stub follows this).
STUB_TRAINER_OPTIONS = r'''
import argparse, json, os, signal, sys, time
p = argparse.ArgumentParser()
for name in ("--config", "--data", "--run-dir", "--device", "--deadline", "--time-limit", "--max-steps"):
    p.add_argument(name)
p.add_argument("--set", action="append", default=[])
a, _ = p.parse_known_args()
'''

# A trainer with the contract's CLI and exit codes. STUB_PLAN="75,75,0" gives the exit code of
# each successive call (the last one repeats); each call that does not fail advances 10 steps.
STUB_TRAINER = r'''
import argparse, json, os, sys, time
p = argparse.ArgumentParser()
for name in ("--config", "--data", "--run-dir", "--device", "--deadline"):
    p.add_argument(name)
p.add_argument("--time-limit", type=float)
p.add_argument("--max-steps", type=int, default=30)
p.add_argument("--set", action="append", default=[])
p.add_argument("--force", action="store_true")
p.add_argument("--deterministic", action="store_true")
a = p.parse_args()
os.makedirs(a.run_dir, exist_ok=True)
calls_path = os.path.join(a.run_dir, "stub_calls.jsonl")
calls = open(calls_path).read().count("\n") if os.path.exists(calls_path) else 0
plan = [int(x) for x in os.environ.get("STUB_PLAN", "0").split(",")]
code = plan[min(calls, len(plan) - 1)]
status_path = os.path.join(a.run_dir, "status.json")
step = start = json.load(open(status_path))["step"] if os.path.exists(status_path) else 0
if code in (0, 75):
    step = min(a.max_steps, step + int(os.environ.get("STUB_STEPS", "10")))
with open(calls_path, "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "exit": code,
                         "rank": os.environ.get("RANK"), "world": os.environ.get("WORLD_SIZE")}) + "\n")
with open(os.path.join(a.run_dir, "train.log"), "a") as fh:  # like the trainer: its progress lines
    if start:
        fh.write(f"2026-01-01 00:00:00 resumed from step {start}/{a.max_steps}\n")
    fh.write(f"2026-01-01 00:00:00 epoch 1/2 step {step}/{a.max_steps} (50.0%) | 12.5 img/s | ETA 0:00:07 | G 0.1 (stub) | D 0.7\n")
time.sleep(float(os.environ.get("STUB_SLEEP", "0")))
state = {0: "finished", 75: "stopped"}.get(code, "failed")
json.dump({"state": state, "exit_code": code, "epoch": 0, "step": step, "total_steps": a.max_steps,
           "message": "stub", "time": time.time()}, open(status_path, "w"))
print(f"{state} (exit {code}) step {step}/{a.max_steps}: stub")
sys.exit(code)
'''


def write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def make_stub_trainer(folder: Path, module: str = "stubtrainer") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(STUB_TRAINER)
    return folder


RECORD = 'printf "%s\\n" "$*" >> "$STUB_LOG/$(basename "$0").calls"\n'

# singularity (or, installed under that name, apptainer): records its arguments and the two
# variables that carry PYTHONPATH into the image, then runs the command with the one it reads.
STUB_SINGULARITY = "#!/bin/bash\n" + RECORD + r'''
printf 'SINGULARITYENV_PYTHONPATH=%s APPTAINERENV_PYTHONPATH=%s\n' "${SINGULARITYENV_PYTHONPATH:-}" \
  "${APPTAINERENV_PYTHONPATH:-}" >> "$STUB_LOG/$(basename "$0").env.calls"
[ "$1" = exec ] || { echo "stub $(basename "$0"): only exec is supported" >&2; exit 64; }
shift
while [ $# -gt 0 ]; do
  case "$1" in --nv) shift ;; -B|--bind) shift 2 ;; -*) shift ;; *) break ;; esac
done
image="$1"; shift
[ -e "$image" ] || { echo "FATAL: could not open image $image" >&2; exit 255; }
inner="$SINGULARITYENV_PYTHONPATH"; [ "$(basename "$0")" = apptainer ] && inner="$APPTAINERENV_PYTHONPATH"
export PYTHONPATH="${inner:-}${PYTHONPATH:+:$PYTHONPATH}"
exec "$@"
'''

# qsub that queues instead of running: prints the next id of a fake server "vm".
STUB_QSUB_QUEUE = "#!/bin/bash\n" + RECORD + r'''
n=$(( $(cat "$STUB_LOG/next_id" 2>/dev/null || echo 100) + 1 ))
echo "$n" > "$STUB_LOG/next_id"
printf '%s\n' "$*" > "$STUB_LOG/queued.$n"
echo "$n.vm"
'''

STUB_NVIDIA_SMI = "#!/bin/bash\n" + RECORD + 'echo "0, NVIDIA H100 80GB HBM3 (stub), 81559 MiB, 550.54"\n'


# The grid node's plain python3, outside the container: this interpreter WITHOUT site-packages
# (-S), so whatever the job script runs with it must need only the standard library + the project.
PLAIN_PYTHON3 = f"#!/bin/bash\nexec {sys.executable} -S \"$@\"\n"


def stub_bin(tmp: Path, **extra: str) -> tuple[Path, Path]:
    """A PATH folder with stub singularity/nvidia-smi/qsub (+ ``extra`` name → script text), a
    ``python`` pointing at this interpreter, a ``python3`` without site-packages, and the folder
    their call records go to."""
    bindir, log = tmp / "stubbin", tmp / "stublog"
    bindir.mkdir(parents=True, exist_ok=True)
    log.mkdir(parents=True, exist_ok=True)
    scripts = {"singularity": STUB_SINGULARITY, "nvidia-smi": STUB_NVIDIA_SMI, "qsub": STUB_QSUB_QUEUE,
               "python3": PLAIN_PYTHON3, **extra}
    for name, text in scripts.items():
        write_exe(bindir / name, text)
    python = bindir / "python"
    if not python.exists():
        python.symlink_to(sys.executable)
    return bindir, log


def stub_env(bindir: Path, log: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["STUB_LOG"] = str(log)
    env.update(extra)
    return env


def calls(log: Path, name: str) -> list[str]:
    path = log / f"{name}.calls"
    return path.read_text().splitlines() if path.exists() else []


def fake_shards(folder: Path, size: int = 64, train: int = 10) -> Path:
    """A folder that passes the job layer's shards check (the stub trainer never reads it): an
    ``index.json`` of ``size`` px with ``train`` training faces and masks, and no shard files."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = [{"file": f"{kind}-train-000.h5", "kind": kind, "split": "train", "count": train, "sha256": "0" * 64}
              for kind in ("faces", "masks")]
    index = {"format": 1, "size": size, "encoding": "raw", "shards": shards,
             "counts": {"faces": {"train": train, "test": 0, "eval_balanced": 0}, "masks": {"train": train, "test": 0}}}
    (folder / "index.json").write_text(json.dumps(index) + "\n")
    return folder


# A tiny PBS "server" made of stubs: qsub runs the script in the background with the job's PBS
# environment (and -v variables), qstat answers in the `qstat -x -f -F json` format of the real
# server recorded in the fixtures, qdel sends SIGTERM like PBS does.
STUB_QSUB_RUN = "#!/bin/bash\n" + RECORD + r'''
vars=""; script=""
while [ $# -gt 0 ]; do
  case "$1" in -v) vars="$2"; shift 2 ;; -W|-q|-N|-l|-o|-e|-j|-A|-m) shift 2 ;; *) script="$1"; shift ;; esac
done
[ -f "$script" ] || { echo "qsub: script file cannot be loaded - No such file or directory" >&2; exit 2; }
n=$(( $(cat "$STUB_LOG/next_id" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$STUB_LOG/next_id"
id="$n.vm"; jobs="$STUB_LOG/jobs"; mkdir -p "$jobs"
echo Q > "$jobs/$id.state"
cp "$script" "$jobs/$id.script"  # like PBS: the script is copied at submission
(
  export PBS_JOBID="$id" PBS_O_WORKDIR="$PWD" PBS_JOBNAME=stub PBS_QUEUE=workq
  IFS=,; for kv in $vars; do export "$kv"; done; unset IFS
  echo R > "$jobs/$id.state"
  cd "$HOME" 2>/dev/null || cd /
  bash "$jobs/$id.script" > "$jobs/$id.out" 2>&1 &
  echo $! > "$jobs/$id.pid"
  code=0; wait $! || code=$?
  [ -f "$jobs/$id.killed" ] && code=$((256 + 15))
  echo "F $code" > "$jobs/$id.state"
) </dev/null >/dev/null 2>&1 &
echo "$id"
'''

STUB_QSTAT_FROM_STATE = "#!/bin/bash\n" + RECORD + r'''
ids=(); for a in "$@"; do case "$a" in -*|json) ;; *) ids+=("$a") ;; esac; done
jobs="$STUB_LOG/jobs"; rc=0; first=1
printf '{\n\t"timestamp":\t%s,\n\t"pbs_version":\t"23.06.06",\n\t"pbs_server":\t"vm",\n\t"Jobs":\t{\n' "$(date +%s)"
for id in "${ids[@]}"; do
  if [ ! -f "$jobs/$id.state" ]; then echo "qstat: Unknown Job Id $id" >&2; rc=153; continue; fi
  read -r st code < "$jobs/$id.state"
  [ $first = 1 ] || printf ',\n'; first=0
  printf '\t\t"%s":\t{\n\t\t\t"Job_Name":\t"stub",\n\t\t\t"job_state":\t"%s",\n\t\t\t"queue":\t"workq"' "$id" "$st"
  [ -n "$code" ] && printf ',\n\t\t\t"Exit_status":\t%s' "$code"
  printf '\n\t\t}'
done
printf '\n\t}\n}\n'
exit $rc
'''

STUB_QDEL_KILL = "#!/bin/bash\n" + RECORD + r'''
for id in "$@"; do
  pid=$(cat "$STUB_LOG/jobs/$id.pid" 2>/dev/null) || { echo "qdel: Unknown Job Id $id" >&2; continue; }
  touch "$STUB_LOG/jobs/$id.killed"; pkill -TERM -P "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null
done
exit 0
'''


def stub_pbs_server(tmp: Path) -> tuple[Path, Path]:
    return stub_bin(tmp, qsub=STUB_QSUB_RUN, qstat=STUB_QSTAT_FROM_STATE, qdel=STUB_QDEL_KILL)


# SLURM stubs: sbatch runs the script in the background with the job's SLURM environment.
STUB_SBATCH_RUN = "#!/bin/bash\n" + RECORD + r'''
script="${@: -1}"
n=$(( $(cat "$STUB_LOG/next_slurm_id" 2>/dev/null || echo 500) + 1 )); echo "$n" > "$STUB_LOG/next_slurm_id"
mkdir -p "$STUB_LOG/slurm"; cp "$script" "$STUB_LOG/slurm/$n.sh"; echo RUNNING > "$STUB_LOG/slurm/$n.state"
(
  export SLURM_JOB_ID=$n SLURM_NTASKS=1 SLURM_JOB_NUM_NODES=1 SLURM_NODEID=0 SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_JOB_NODELIST=localhost
  code=0; bash "$STUB_LOG/slurm/$n.sh" > "$STUB_LOG/slurm/$n.out" 2>&1 || code=$?
  echo "COMPLETED $code" > "$STUB_LOG/slurm/$n.state"
) </dev/null >/dev/null 2>&1 &
echo "Submitted batch job $n"
'''
STUB_SQUEUE = "#!/bin/bash\n" + RECORD + r'''
while [ $# -gt 0 ]; do case "$1" in -j) id="$2"; shift 2 ;; *) shift ;; esac; done
read -r st _ < "$STUB_LOG/slurm/$id.state" 2>/dev/null || { echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; }
[ "$st" = RUNNING ] && echo RUNNING
exit 0
'''
STUB_SACCT = "#!/bin/bash\n" + RECORD + 'echo "JobID|State|NodeList"\n'


def bisect_part_walltime(run_split, walltime: int, attempts: int) -> tuple[bool, list, list]:
    """Find a part walltime that splits a real training run, on a machine whose speed varies.

    ``run_split(attempt, walltime) -> (ok, parts, reason)`` runs one split chain. Too short a
    walltime makes no progress, too long one needs too few parts: bisect between the two.
    Returns (ok, parts of the last try, [(walltime, steps per part, reason) per try]).
    """
    tries: list = []
    too_short, too_long = 0, None
    ok, parts = False, []
    for attempt in range(attempts):
        ok, parts, reason = run_split(attempt, walltime)
        tries.append((walltime, [p.step for p in parts], reason))
        if ok:
            break
        if "no progress" in reason:
            too_short = walltime
        else:
            too_long = walltime
        nxt = (too_short + too_long) // 2 if too_long else int(walltime * 1.5) + 2
        if nxt in (too_short, too_long):
            break
        walltime = nxt
    return ok, parts, tries
