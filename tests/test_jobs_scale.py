"""Scale-out launch arguments, proven by running the rendered script: ``--ngpus 2`` starts two
ranks through torchrun (the real trainer on CPU/gloo), ``--nodes 2`` one torchrun per node with
a shared rendezvous (nodes simulated by a stub ``pbsdsh`` on this machine)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from jobs import ledger
from jobs.chain_state import read_chain_state
from jobs.profiles import load_profile
from jobs.spec import JobSpec
from jobs.pbs import write_script
from jobs_support import REPO_ROOT, calls, fake_shards, make_stub_trainer, stub_bin, stub_env

STUB_PBSDSH = "#!/bin/bash\n" + 'printf "%s\\n" "$*" >> "$STUB_LOG/pbsdsh.calls"\n' + r'''
[ "$1" = -u ] && shift; [ "$1" = -- ] && shift
n=$(sort -u "$PBS_NODEFILE" | wc -l); [ "$n" -lt 2 ] && n=2
codes=0; pids=()
for i in $(seq "$n"); do "$@" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || codes=$?; done
exit $codes
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spec(tmp_path: Path, data: Path, **over) -> JobSpec:
    base = dict(run_dir=str(tmp_path / "run"), config="smoke", data=str(data), executor="pbs", name="ff-run",
                walltime_s=3600, time_limit_s=3000, max_resubmits=3, queue="gpu", ncpus=4, ngpus=2,
                image=None, python=sys.executable, project_root=str(REPO_ROOT),
                profile=load_profile("metacentrum"))
    base.update(over)
    return JobSpec(**base)


def test_two_gpus_launch_two_ranks_of_the_real_trainer(tmp_path, shards64):
    spec = _spec(tmp_path, shards64, train_args=["--device", "cpu", "--max-steps", "2", "--set", "data.workers=0",
                                                 "--set", "train.batch_size=2"])
    script = write_script(spec)
    bindir, log = stub_bin(tmp_path)
    env = stub_env(bindir, log, PBS_JOBID="7.vm", FACEFILL_PART="1", OMP_NUM_THREADS="1")
    env.pop("SCRATCHDIR", None)
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    part = ledger.read_parts(spec.run_dir)[0]
    assert (part.exit_code, part.step, part.action) == (0, 2, "done")
    assert read_chain_state(spec.run_dir).state == "done"
    assert "2 processes" in (Path(spec.run_dir) / "train.log").read_text()  # the trainer saw world size 2


def test_two_nodes_start_one_torchrun_each_with_a_shared_rendezvous(tmp_path):
    stubs = make_stub_trainer(tmp_path / "stubpkg")
    spec = _spec(tmp_path, fake_shards(tmp_path / "shards"), nodes=2, ngpus=1, trainer_module="stubtrainer",
                 train_args=["--device", "cpu"])
    script = write_script(spec)
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("localhost\nlocalhost\n")
    bindir, log = stub_bin(tmp_path, pbsdsh=STUB_PBSDSH)
    env = stub_env(bindir, log, PBS_JOBID="8.vm", FACEFILL_PART="1", PBS_NODEFILE=str(nodefile),
                   PYTHONPATH=str(stubs), STUB_PLAN="75", FACEFILL_RDZV_PORT=str(_free_port()))
    env.pop("SCRATCHDIR", None)
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [launch] = calls(log, "pbsdsh")  # the command comes from jobs.part, deadline included
    assert launch.startswith(f"-- /bin/bash {script} --node-launch localhost:{env['FACEFILL_RDZV_PORT']} {spec.data} 8.vm "
                             "stubtrainer --config smoke ")
    assert " --deadline " in launch and launch.endswith(" --device cpu")
    ranks = [json.loads(l) for l in (Path(spec.run_dir) / "stub_calls.jsonl").read_text().splitlines()]
    assert sorted(r["rank"] for r in ranks) == ["0", "1"] and {r["world"] for r in ranks} == {"2"}
    # the exit code that decides comes from the trainer's status.json (launchers do not pass 75 on)
    part = ledger.read_parts(spec.run_dir)[0]
    assert (part.exit_code, part.action) == (75, "resubmit")
    assert calls(log, "qsub") == [f"-v FACEFILL_PART=2,FACEFILL_MODE=train {script}"]
