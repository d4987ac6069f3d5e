"""Multi-node training through ``jobs.submit --executor slurm --nodes 2`` on the real two-node
cluster (tests/slurm_two_nodes.py): one torchrun per node (srun + ``jobs.node_launch``), c10d
rendezvous on the batch node's private address, gloo over the nodes' veth.

What it proves: both nodes train (world size 2, rank 0 alone writes); the losses are the same,
step for step, as two processes on one machine (``torchrun --standalone``); a chain of
walltime-limited parts resumes across the nodes; a rank that dies ends the part within seconds,
recorded, with the checkpoints still loadable. Skips without root; runs in CI.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from jobs import ledger
from jobs.chain_state import ENDED, read_chain_state
from jobs.profiles import load_profile
from jobs_support import REPO_ROOT, bisect_part_walltime

SIZE = 32
BATCH = 4  # per process: the global batch is 8 either way
TRAIN = ["--device", "cpu", "--set", f"data.size={SIZE}", "--set", "data.workers=0",
         "--set", f"train.batch_size={BATCH}", "--set", "train.log_every_steps=1",
         "--set", "train.checkpoint_every_steps=2", "--set", "train.seed=3"]
STEPS = 4


def _spec(tmp_path, **extra):
    from jobs.spec import JobSpec

    return JobSpec(run_dir=str(tmp_path), config="smoke", data="/d", executor="slurm", name="ff", walltime_s=600,
                   time_limit_s=540, max_resubmits=3, **extra)


def test_a_multi_node_part_is_srun_of_one_launcher_per_node_around_torchrun_in_the_image(tmp_path, monkeypatch):
    from jobs import node_launch, slurm

    monkeypatch.delenv("FACEFILL_RDZV_PORT", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(node_launch, "interface_address", lambda ifname: {"ib0": "10.0.0.7"}[ifname])
    spec = _spec(tmp_path, nodes=2, ngpus=4, ncpus=16, image="/img.sif",
                 profile=replace(load_profile("generic-slurm"), network_interface="ib0"))
    cmd, env = slurm.SCHEDULER.launch(spec, ["inpaint.train", "--config", "smoke"], "1234", "train")
    launcher = cmd.index("jobs.node_launch")
    assert cmd[:6] == ["srun", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=16", "--gpus-per-node=4",
                       "--kill-on-bad-exit=1"]
    assert cmd[launcher + 1:launcher + 4] == ["--interface", "ib0", "--"]
    inner = cmd[launcher + 4:]
    assert inner[:3] == ["singularity", "exec", "--nv"] and "/img.sif" in inner  # the image inside srun
    torchrun = inner[inner.index("/img.sif") + 1:]
    assert torchrun == ["python", "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "4",
                        "--max-restarts", "0", "--rdzv-backend", "c10d", "--rdzv-endpoint", "10.0.0.7:29634",
                        "--rdzv-id", "1234", "-m", "inpaint.train", "--config", "smoke"]
    assert env["OMP_NUM_THREADS"] == "4"
    assert slurm.SCHEDULER.submitit_parameters(spec)["slurm_additional_parameters"] == {"no_requeue": True}
    assert "slurm_additional_parameters" not in slurm.SCHEDULER.submitit_parameters(_spec(tmp_path))
    monkeypatch.setenv("FACEFILL_RDZV_PORT", "29500")
    assert slurm.rendezvous_port("1234") == 29500
    # one node, several GPUs: torchrun --standalone, no srun; one process, one node: the trainer itself
    alone, _ = slurm.SCHEDULER.launch(_spec(tmp_path, ngpus=2, ncpus=8), ["inpaint.train"], "9", "train")
    assert alone[:3] == ["python", "-m", "torch.distributed.run"] and "--standalone" in alone
    assert slurm.SCHEDULER.launch(_spec(tmp_path, ngpus=1), ["inpaint.train"], "9", "train")[0] == [
        "python", "-m", "inpaint.train"]
    assert slurm.SCHEDULER.launch(spec, ["inpaint.evaluate"], "9", "evaluate")[0][0] == "singularity"


def test_each_node_is_told_its_own_address_and_whether_it_hosts_the_rendezvous(monkeypatch):
    from jobs import node_launch

    monkeypatch.setattr(node_launch, "interface_address", lambda ifname: "10.0.0.9")
    first = node_launch.node_environment({"SLURM_NODEID": "0"}, "ib0")
    assert first == {"PET_RDZV_CONF": "is_host=1", "PET_LOCAL_ADDR": "10.0.0.9", "GLOO_SOCKET_IFNAME": "ib0",
                     "NCCL_SOCKET_IFNAME": "ib0"}
    assert node_launch.node_environment({"SLURM_NODEID": "1"}, None) == {"PET_RDZV_CONF": "is_host=0"}


def test_a_missing_interface_is_one_line_naming_the_profile_key():
    from inpaint.core.errors import ConfigError
    from jobs import node_launch

    assert node_launch.interface_address("lo") == "127.0.0.1"
    with pytest.raises(ConfigError, match="network_interface 'nosuch0' of the site profile: no IPv4 address"):
        node_launch.interface_address("nosuch0")


def test_a_node_failure_is_resubmitted_once_per_chain():
    from jobs import chain

    once = chain.Interruption(chain.NODE_FAILED, "SLURM job 7: DUE TO NODE FAILURE", 40)
    assert chain.decide(75, 2, 5, interrupted=once).action == chain.RESUBMIT
    again = chain.Interruption(chain.NODE_FAILED, "SLURM job 8: NODE_FAIL", 50, preempted_before=True)
    decision = chain.decide(75, 3, 5, interrupted=again)
    assert decision.action == chain.STOP and decision.reason.startswith("a node failed again")


@pytest.fixture(scope="module")
def shards32(data_root, tmp_path_factory) -> Path:
    """120 faces with generated masks at 32 px: enough for a global batch of 8 and a few steps."""
    out = tmp_path_factory.mktemp("shards32")
    proc = subprocess.run([sys.executable, "-m", "data_prep.pack", "--faces", str(data_root / "faces"), "--masks",
                           "generate", "--mask-count", "60", "--limit", "120", "--size", str(SIZE), "--out", str(out),
                           "--test-masks-per-bucket", "2", "--min-per-cell", "1", "--workers", "1", "--seed", "0"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def profile(slurm_two_nodes, tmp_path_factory) -> Path:
    """A site profile naming the nodes' private interface (what a real site's profile says)."""
    path = tmp_path_factory.mktemp("profile") / "two-nodes.yaml"
    path.write_text(f"scheduler: slurm\nnetwork_interface: {slurm_two_nodes.ifname}\nsafety_margin: '00:00:05'\n")
    return path


def submit(cluster, profile: Path, run: Path, *extra: str, env_extra: dict | None = None) -> None:
    argv = [sys.executable, "-m", "jobs.submit", "--executor", "slurm", "--profile", str(profile), "--nodes", "2",
            "--ncpus", "1", "--queue", cluster.partition, "--model", "smoke", "--run-dir", str(run), *extra]
    proc = subprocess.run(argv, env={**cluster.env, **(env_extra or {})}, capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def wait_ended(run: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (read_chain_state(run) and read_chain_state(run).state in ENDED):
        if time.monotonic() > deadline:
            pytest.fail(f"chain in {run} did not end within {timeout:.0f} s: {read_chain_state(run)}\n{part_log(run)}")
        time.sleep(0.5)


def part_log(run: Path) -> str:
    """Every submitit log of the run, whole: the launch line is near the top, and torch's shutdown
    warnings (a c10d stack trace when a rendezvous store closes) can follow it by many kB."""
    return "\n".join(p.read_text(errors="replace") for p in sorted((run / "jobs" / "submitit").glob("*_log.*")))


def losses(run: Path) -> list[tuple[int, float, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["g_total"], r["d_loss"]) for r in records]


def status_text(cluster, run: Path) -> str:
    return subprocess.run([sys.executable, "-m", "jobs.status", str(run)], env=cluster.env, capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=60).stdout


@pytest.fixture(scope="module")
def two_node_run(slurm_two_nodes, profile, shards32, tmp_path_factory) -> Path:
    """One uninterrupted 2-node chain of STEPS steps."""
    run = tmp_path_factory.mktemp("two-nodes") / "run"
    submit(slurm_two_nodes, profile, run, "--data", str(shards32), "--max-steps", str(STEPS), *TRAIN)
    wait_ended(run, 240)
    return run


def test_two_nodes_train_one_model_and_status_shows_both(slurm_two_nodes, two_node_run):
    import torch

    run = two_node_run
    log = part_log(run)
    state = read_chain_state(run)
    assert state.state == "done", (state, log)
    (part,) = ledger.read_parts(run)
    assert (part.exit_code, part.step) == (0, STEPS), (part, log)
    assert part.host == ",".join(slurm_two_nodes.nodes), part
    assert "srun --nodes=2 --ntasks-per-node=1" in log and "--kill-on-bad-exit=1" in log, log
    assert f"--rdzv-endpoint {slurm_two_nodes.addresses[slurm_two_nodes.nodes[0]]}:" in log, log
    # rank 0 alone writes: one metrics record per step, one train.log, checkpoints of a 2-process world
    assert [s for s, _, _ in losses(run)] == list(range(1, STEPS + 1))
    assert "2 processes" in (run / "train.log").read_text()
    newest = sorted(run.glob("checkpoints/*.pt"))[-1]
    assert torch.load(newest, map_location="cpu", weights_only=False)["world_size"] == 2
    assert json.loads((run / "status.json").read_text())["world_size"] == 2  # what the part ran as
    shown = status_text(slurm_two_nodes, run)
    assert shown.startswith("chain: done") and "(nodes ffnode1,ffnode2)" in shown, shown


def test_two_nodes_lose_the_same_as_two_processes_on_one_machine(two_node_run, shards32, tmp_path):
    """Same config, data, seed and global batch: a 2-node run and ``torchrun --standalone
    --nproc-per-node 2`` give the same losses, step for step (gloo sums two values in the same
    order on every rank, and both worlds run the same CPU kernels, so bit for bit)."""
    local = tmp_path / "local"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "inpaint.train", "--config", "smoke", "--data", str(shards32), "--run-dir", str(local),
                           "--max-steps", str(STEPS), *TRAIN], env=env, capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert losses(local) == losses(two_node_run)


def test_a_chain_of_walltime_limited_parts_resumes_across_the_nodes(slurm_two_nodes, profile, shards32, two_node_run,
                                                                    tmp_path):
    """Parts cut by their walltime resume from the checkpoint on both nodes until the last step.
    How many steps fit in a part depends on this machine's speed now, so the walltime is
    calibrated from the uninterrupted run's timing (start-up + half the steps), then bisected."""
    steps = 40  # a wide window between "no progress" and "all in one part": the first guess mostly holds
    whole = ledger.read_parts(two_node_run)[0]
    times = [json.loads(line)["time"] for line in (two_node_run / "metrics.jsonl").read_text().splitlines()]
    step_s = statistics.median(b - a for a, b in zip(times, times[1:]))
    part_s = ledger.iso_seconds(whole.end_time) - ledger.iso_seconds(whole.start_time) + 1
    overhead_s = max(1.0, part_s - (times[-1] - times[0]))
    walltime = int((overhead_s + steps / 2 * step_s) / 0.9) + 1

    def run_split(attempt: int, walltime: int):
        split = tmp_path / f"split{attempt}"
        submit(slurm_two_nodes, profile, split, "--data", str(shards32), "--max-steps", str(steps), "--walltime",
               str(walltime), "--allow-short-walltime", "--max-resubmits", "6", "--set", "train.epochs=10", *TRAIN)
        wait_ended(split, 300)
        parts = ledger.read_parts(split)
        return read_chain_state(split).state == "done" and len(parts) >= 2, parts, str(read_chain_state(split).reason)

    ok, parts, tries = bisect_part_walltime(run_split, walltime, attempts=3)
    split = tmp_path / f"split{len(tries) - 1}"
    assert ok, f"tries (walltime, steps, reason): {tries}\n{part_log(split)}"
    print(f"\ntries (walltime, steps, reason): {tries}")
    assert [p.exit_code for p in parts] == [75] * (len(parts) - 1) + [0]
    assert all(p.host == ",".join(slurm_two_nodes.nodes) for p in parts), parts
    assert parts[-1].step == steps and all(a.step < b.step for a, b in zip(parts, parts[1:]))
    assert [s for s, _, _ in losses(split)] == list(range(1, steps + 1))  # each part went on where the last stopped
    # the first steps are the uninterrupted run's, to the bit (same seed, same world)
    assert losses(split)[:STEPS] == losses(two_node_run)


def start_endless_run(cluster, profile: Path, shards32: Path, run: Path) -> None:
    """Submit a 2-node part that would train for hours; return once it wrote its first checkpoint."""
    submit(cluster, profile, run, "--data", str(shards32), "--max-steps", "100000", "--set", "train.epochs=10000", *TRAIN)
    deadline = time.monotonic() + 180
    while not list(run.glob("checkpoints/*.pt")):
        assert time.monotonic() < deadline, f"no checkpoint within 180 s\n{part_log(run)}"
        time.sleep(0.3)


def _step_pids(cluster, node: str, marker: str) -> list[int]:
    """Pids on ``node`` whose command line has ``marker``."""
    found = []
    for pid in cluster.job_processes(node):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def test_a_rank_killed_on_the_second_node_ends_the_part_fast_and_keeps_the_checkpoints(
        slurm_two_nodes, profile, shards32, tmp_path):
    """The trainer on node 2 killed outright mid-part: srun's --kill-on-bad-exit ends node 1's
    launcher and rank within seconds (not the process group's 30-minute timeout); the part records
    its end and the chain stops saying why; every checkpoint written still loads."""
    import torch

    cluster = slurm_two_nodes
    run = tmp_path / "run"
    start_endless_run(cluster, profile, shards32, run)
    ranks = [pid for pid in _step_pids(cluster, cluster.nodes[1], "inpaint.train")
             if b"torch.distributed.run" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert ranks, "no trainer process on node 2"
    killed = time.monotonic()
    for pid in ranks:
        os.kill(pid, signal.SIGKILL)
    wait_ended(run, 120)
    took = time.monotonic() - killed
    (part,) = ledger.read_parts(run)
    state = read_chain_state(run)
    assert took < 60, f"the part took {took:.0f} s to end after its rank on node 2 died"
    assert part.ended and part.exit_code != 0 and part.action == "stop", (part, part_log(run))
    assert state.state == "stopped", state
    assert not any(_step_pids(cluster, node, "inpaint.train") for node in cluster.nodes)
    for path in run.glob("checkpoints/*.pt"):
        assert "step" in torch.load(path, map_location="cpu", weights_only=False), path
    print(f"\nrank on node 2 killed: the part ended {took:.1f} s later: {part.reason}")


def test_a_node_that_fails_mid_part_is_resubmitted_once_from_its_checkpoint(slurm_two_nodes, profile, shards32,
                                                                          tmp_path):
    """slurmd of node 2 killed under a running part (as when the node dies): SLURM marks the node
    DOWN and ends the job (NODE_FAIL; ``--no-requeue``, so it is never rerun behind the chain's
    back under the same id) within seconds; the ranks checkpoint on SLURM's SIGTERM, the part
    records why it ended and the chain resubmits it once (a node failure is nobody's choice);
    once the node is back the next part resumes from that checkpoint. Every checkpoint loads."""
    import torch

    cluster = slurm_two_nodes
    node = cluster.nodes[1]
    run = tmp_path / "run"
    try:
        start_endless_run(cluster, profile, shards32, run)
        cluster.kill_slurmd(node)
        killed = time.monotonic()
        while not ledger.read_parts(run)[0].ended:
            assert time.monotonic() < killed + 90, f"the part did not end within 90 s\n{part_log(run)}"
            time.sleep(0.5)
        took = time.monotonic() - killed
        first = ledger.read_parts(run)[0]
        print(f"\nslurmd of {node} killed: part 1 ended {took:.1f} s later: {first.reason}")
        assert (first.exit_code, first.action, first.interrupted) == (75, "resubmit", "node_failed"), first
        assert first.reason.startswith("a node of the job failed (SLURM job"), first.reason
        for path in run.glob("checkpoints/*.pt"):
            assert "step" in torch.load(path, map_location="cpu", weights_only=False), path
        cluster.start_slurmd(node)
        while len(ledger.read_parts(run)) < 2 or not ledger.read_parts(run)[1].start_time:
            assert time.monotonic() < killed + 150, f"part 2 never started\n{status_text(cluster, run)}"
            time.sleep(0.5)
        second = ledger.read_parts(run)[1]
        assert second.start_step == first.step and second.host == ",".join(cluster.nodes), second
    finally:
        subprocess.run([sys.executable, "-m", "jobs.cancel", str(run)], env=cluster.env, capture_output=True,
                       cwd=REPO_ROOT, timeout=60)
        if f"slurmd-{node}" not in cluster.pids:
            cluster.start_slurmd(node)
        deadline = time.monotonic() + 60
        while (cluster.states()[node] != "idle" or cluster.job_processes(node)) and time.monotonic() < deadline:
            time.sleep(0.3)
    assert cluster.states()[node] == "idle" and not cluster.job_processes(node)


def test_the_walltime_warning_signal_reaches_the_ranks_not_their_launchers(slurm_two_nodes, profile, shards32,
                                                                         tmp_path):
    """SIGUSR2 (submitit's warning before SLURM's time limit) sent to every process of the running
    step: the ranks checkpoint and stop together (exit 75); torchrun on each node ignores it
    (jobs.node_launch), so no launcher dies of the signal under its ranks."""
    cluster = slurm_two_nodes
    run = tmp_path / "run"
    start_endless_run(cluster, profile, shards32, run)
    job = ledger.read_parts(run)[0].job_id
    assert cluster.run("scancel", "--signal=USR2", job).returncode == 0
    wait_ended(run, 120)
    (part,) = ledger.read_parts(run)
    log = part_log(run)
    status = json.loads((run / "status.json").read_text())
    assert part.exit_code == 75 and "received SIGUSR2" in status["message"], (part, status, log)
    assert status["step"] == part.step and (run / "checkpoints" / f"step-{part.step:09d}.pt").is_file(), status
    assert "User defined signal 2" not in log and "exit code 140" not in log, log
